package broker

import "time"

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

// deadlineHeap orders outstanding entries by ack deadline (earliest first).
type deadlineHeap []*entry

func (h deadlineHeap) less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }

func (h deadlineHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}

func (h *deadlineHeap) push(e *entry) {
	e.hidx = len(*h)
	*h = append(*h, e)
	h.up(e.hidx)
}

func (h *deadlineHeap) remove(e *entry) {
	i := e.hidx
	if i < 0 {
		return
	}
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	e.hidx = -1
	if i != last {
		h.fix(i)
	}
}

// fix restores the order after the deadline of the entry at i changed.
func (h deadlineHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h deadlineHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h deadlineHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && h.less(r, l) {
			c = r
		}
		if !h.less(c, i) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}

func (h deadlineHeap) earliest() (time.Time, bool) {
	if len(h) == 0 {
		return time.Time{}, false
	}
	return h[0].deadline, true
}

// seqHeap orders retained-only messages by publication (oldest first), so that
// the byte cap evicts the oldest of them.
type seqHeap []*message

func (h seqHeap) less(i, j int) bool { return h[i].seq < h[j].seq }

func (h seqHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].roIdx = i
	h[j].roIdx = j
}

func (h *seqHeap) push(m *message) {
	m.roIdx = len(*h)
	*h = append(*h, m)
	h.up(m.roIdx)
}

func (h *seqHeap) remove(m *message) {
	i := m.roIdx
	if i < 0 {
		return
	}
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	m.roIdx = -1
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h seqHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h seqHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && h.less(r, l) {
			c = r
		}
		if !h.less(c, i) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}
