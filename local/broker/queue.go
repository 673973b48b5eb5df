package broker

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

// indexedHeap is a binary min-heap whose elements record their own index in
// it, so that any of them can be removed or re-ordered in O(log n). The
// deadline heap and the retained heap differ only in their element type.
type indexedHeap[T heapElem[T]] []T

// heapElem is what an element of an indexedHeap provides.
type heapElem[T any] interface {
	before(T) bool  // the heap's order: the least first
	heapIndex() int // the index last set, -1 when not in the heap
	setHeapIndex(int)
}

// deadlineHeap orders outstanding entries by ack deadline (earliest first).
type deadlineHeap = indexedHeap[*entry]

func (e *entry) before(o *entry) bool { return e.deadline.Before(o.deadline) }
func (e *entry) heapIndex() int       { return e.hidx }
func (e *entry) setHeapIndex(i int)   { e.hidx = i }

// seqHeap orders retained-only messages by publication (oldest first), so that
// the byte cap evicts the oldest of them.
type seqHeap = indexedHeap[*message]

func (m *message) before(o *message) bool { return m.seq < o.seq }
func (m *message) heapIndex() int         { return m.roIdx }
func (m *message) setHeapIndex(i int)     { m.roIdx = i }

func (h indexedHeap[T]) less(i, j int) bool { return h[i].before(h[j]) }

func (h indexedHeap[T]) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].setHeapIndex(i)
	h[j].setHeapIndex(j)
}

func (h *indexedHeap[T]) push(x T) {
	i := len(*h)
	x.setHeapIndex(i)
	*h = append(*h, x)
	h.up(i)
}

// remove takes x out of the heap; it does nothing when x is not in it.
func (h *indexedHeap[T]) remove(x T) {
	i := x.heapIndex()
	if i < 0 {
		return
	}
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	var zero T
	(*h)[last] = zero
	*h = (*h)[:last]
	x.setHeapIndex(-1)
	if i != last {
		h.fix(i)
	}
}

// fix restores the order after the key of the element at i changed.
func (h indexedHeap[T]) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h indexedHeap[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h indexedHeap[T]) down(i int) bool {
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
