package broker

import "container/heap"

// entryQueue is a ring-buffer deque of entries ready for delivery. Entries that
// leave the ready state while queued (acked through a seek, evicted, expired)
// are marked gone and skipped when they reach the head, so removal from the
// middle costs nothing; the head is compacted eagerly so that a drained queue
// holds no references.
type entryQueue struct {
	buf  []*entry
	head int
	n    int
}

func (q *entryQueue) len() int { return q.n }

func (q *entryQueue) grow() {
	size := 2 * len(q.buf)
	if size < 16 {
		size = 16
	}
	q.resize(size)
}

func (q *entryQueue) resize(size int) {
	nb := make([]*entry, size)
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

func (q *entryQueue) pushBack(e *entry) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
}

func (q *entryQueue) pushFront(e *entry) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
	q.buf[q.head] = e
	q.n++
}

// front returns the head without removing it, or nil.
func (q *entryQueue) front() *entry {
	if q.n == 0 {
		return nil
	}
	return q.buf[q.head]
}

func (q *entryQueue) popFront() *entry {
	if q.n == 0 {
		return nil
	}
	e := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	// Give memory back once a large backlog has drained.
	if len(q.buf) > 1024 && q.n < len(q.buf)/8 {
		q.resize(len(q.buf) / 4)
	}
	return e
}

// dropGone pops entries at the head that are no longer ready.
func (q *entryQueue) dropGone() {
	for e := q.front(); e != nil && e.state != stateReady; e = q.front() {
		q.popFront()
	}
}

// deadlineHeap orders outstanding entries by ack deadline (earliest first);
// seqHeap orders retained-only messages by publication (oldest first), so that
// the byte cap evicts the oldest of them. Both are container/heap heaps whose
// elements record their own index, so that any of them can be removed or
// re-ordered in O(log n).
type (
	deadlineHeap []*entry
	seqHeap      []*message
)

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *deadlineHeap) Push(x any) {
	e := x.(*entry)
	e.hidx = len(*h)
	*h = append(*h, e)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.hidx = -1
	return e
}

func (h *deadlineHeap) push(e *entry) { heap.Push(h, e) }

// remove takes e out of the heap; it does nothing when e is not in it.
func (h *deadlineHeap) remove(e *entry) {
	if e.hidx >= 0 {
		heap.Remove(h, e.hidx)
	}
}

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h seqHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].roIdx, h[j].roIdx = i, j
}
func (h *seqHeap) Push(x any) {
	m := x.(*message)
	m.roIdx = len(*h)
	*h = append(*h, m)
}
func (h *seqHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	m.roIdx = -1
	return m
}

func (h *seqHeap) push(m *message) { heap.Push(h, m) }

// remove takes m out of the heap; it does nothing when m is not in it.
func (h *seqHeap) remove(m *message) {
	if m.roIdx >= 0 {
		heap.Remove(h, m.roIdx)
	}
}
