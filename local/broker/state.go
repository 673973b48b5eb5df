package broker

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"math/bits"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Everything in this file runs with Server.mu held (expire takes it).

// entryCost is what one subscription's reference to a message counts against
// the byte cap (the entry, its map slot and its queue slot), so that memory stays
// bounded however many subscriptions a topic has.
const entryCost = 128

// messageOverhead is what a message counts against the byte cap on top of its
// data, attributes and ordering key (structs, id, timestamp), and attrOverhead
// what each attribute costs in its map on top of its key and value. With them
// the count is within 5 % of the heap a record message takes.
const (
	messageOverhead = 256
	attrOverhead    = 48
)

// message is one published message, stored once whatever the number of
// subscriptions holding it. Its PubsubMessage is never modified after Publish,
// so several streams may marshal it at once. A message kept only for Seek is
// compacted into two pointer-free buffers (its data as it is, its attributes
// encoded), which the garbage collector need not scan: a PubsubMessage with
// its attribute map is a dozen objects to mark at every cycle, and a topic may
// keep hundreds of thousands. A Seek that replays it counts it at its full
// size again at once but decodes it only when it is delivered, so that the
// Seek is quick.
type message struct {
	seq     uint64
	pm      *pb.PubsubMessage // nil while compacted
	data    []byte            // pm.Data, while compacted
	attrs   []byte            // pm.Attributes and OrderingKey encoded, while compacted
	size    int64             // counted against the cap
	full    int64             // size when decoded
	pubTime time.Time
	topic   *topic
	refs    int32 // subscription entries holding it
	inLog   bool  // kept by the topic for Seek
	roIdx   int   // index in Server.retained when inLog && refs == 0, else -1

	logPrev, logNext *message // topic log, publication order
	allPrev, allNext *message // every held message, publication order
}

type topic struct {
	name      string
	proto     *pb.Topic
	retention time.Duration   // message_retention_duration; 0: none
	keep      time.Duration   // how long the log keeps messages (retention, or longer for retain_acked_messages)
	subs      []*subscription // attached subscriptions (kept after the topic is deleted, for eviction)
	deleted   bool

	logHead, logTail *message
	logN             int
	logBytes         int64
}

// flow is the flow-control state of one streaming-pull client (streams that
// share a client_id share it, as after a reconnect).
type flow struct {
	id      string
	maxN    int64 // 0: no limit
	maxB    int64
	outN    int64
	outB    int64
	blocked bool // a stream stopped sending because of this flow's limits
	streams int
}

func (f *flow) full() bool {
	return (f.maxN > 0 && f.outN >= f.maxN) || (f.maxB > 0 && f.outB >= f.maxB)
}

const (
	stateReady uint8 = iota
	stateOutstanding
	stateGone
)

// entry is one subscription's hold on one message.
type entry struct {
	m        *message
	state    uint8
	attempts int32
	delivery uint64 // delivery number in the current ack id
	deadline time.Time
	hidx     int   // index in the deadline heap, -1 when not outstanding
	fl       *flow // flow it counts against while outstanding (streaming pull only)
	sentAt   time.Time
}

type subscription struct {
	name        string
	proto       *pb.Subscription
	topic       *topic
	ackDeadline time.Duration
	retention   time.Duration
	retainAcked bool
	ttl         time.Duration // expiration after inactivity; 0: never
	created     time.Time
	lastActive  time.Time
	ackedBefore time.Time // a Seek acknowledged everything published before this
	gone        chan struct{}

	entries    map[uint64]*entry
	ready      entryQueue
	deadlines  deadlineHeap
	timer      *time.Timer
	timerAt    time.Time
	timerArmed bool
	flows      map[string]*flow
	streams    int
	deliveries uint64

	wake       chan struct{}
	wakeWaited bool

	backlogBytes int64
	outstanding  int
	delivered    uint64
	redelivered  uint64
	acked        uint64
	expired      uint64 // ack deadlines that passed
	dropped      uint64 // older than the subscription's retention
	evicted      uint64 // removed by the byte cap
}

// signal wakes whoever waits for messages of s.
func (s *subscription) signal() {
	if s.wakeWaited {
		close(s.wake)
		s.wake = make(chan struct{})
		s.wakeWaited = false
	}
}

// waitChan returns a channel closed at the next signal.
func (s *subscription) waitChan() <-chan struct{} {
	s.wakeWaited = true
	return s.wake
}

// horizon is how long an unacknowledged message stays in the backlog: the
// subscription's retention, or the topic's when it is longer (a Seek may replay
// messages as old as the topic keeps).
func (s *subscription) horizon() time.Duration {
	h := s.retention
	if s.topic != nil && !s.topic.deleted && s.topic.retention > h {
		h = s.topic.retention
	}
	return h
}

func (s *subscription) topicName() string {
	if s.topic == nil || s.topic.deleted {
		return deletedTopic
	}
	return s.topic.name
}

// deletedTopic is what the service reports as the topic of a subscription
// whose topic was deleted.
const deletedTopic = "_deleted-topic_"

func ackID(seq, delivery uint64) string {
	return strconv.FormatUint(seq, 36) + "-" + strconv.FormatUint(delivery, 36)
}

func parseAckID(id string) (seq, delivery uint64, ok bool) {
	a, b, found := strings.Cut(id, "-")
	if !found {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseUint(a, 36, 64)
	delivery, err2 := strconv.ParseUint(b, 36, 64)
	return seq, delivery, err1 == nil && err2 == nil
}

func messageSize(pm *pb.PubsubMessage) int64 {
	n := int64(len(pm.Data) + len(pm.OrderingKey) + messageOverhead)
	if len(pm.Attributes) > 0 {
		n += 64
	}
	for k, v := range pm.Attributes {
		n += int64(len(k) + len(v) + attrOverhead)
	}
	return n
}

// wallNow is the publish clock, never going backwards.
func (b *Server) wallNow() time.Time {
	t := b.now()
	if t.Before(b.lastPub) {
		t = b.lastPub
	}
	return t
}

// publish stores msgs on t and hands them to every subscription of t.
func (b *Server) publish(t *topic, msgs []*pb.PubsubMessage) []string {
	now := b.wallNow()
	b.lastPub = now
	need := int64(0)
	sizes := make([]int64, len(msgs))
	for i, pm := range msgs {
		sizes[i] = messageSize(pm)
		need += sizes[i] + int64(len(t.subs))*entryCost
	}
	b.makeRoom(need)
	ts := timestamppb.New(now)
	ids := make([]string, len(msgs))
	for i, pm := range msgs {
		b.seq++
		pm.MessageId = strconv.FormatUint(b.seq, 10)
		pm.PublishTime = ts
		ids[i] = pm.MessageId
		m := &message{seq: b.seq, pm: pm, size: sizes[i], full: sizes[i], pubTime: now, topic: t, roIdx: -1}
		b.linkAll(m)
		if t.keep > 0 {
			t.logAppend(m)
		}
		for _, s := range t.subs {
			if now.Before(s.ackedBefore) {
				continue
			}
			b.addEntry(s, m).pushed(s, false)
		}
		if m.refs == 0 {
			if m.inLog {
				b.retain(m)
			} else {
				b.free(m)
			}
		}
	}
	b.published += uint64(len(msgs))
	for _, s := range t.subs {
		s.signal()
	}
	return ids
}

// pushed queues e (ready) on s.
func (e *entry) pushed(s *subscription, front bool) {
	e.state = stateReady
	if front {
		s.ready.pushFront(e)
	} else {
		s.ready.pushBack(e)
	}
}

func (b *Server) addEntry(s *subscription, m *message) *entry {
	b.ref(m)
	e := &entry{m: m, hidx: -1}
	s.entries[m.seq] = e
	s.backlogBytes += m.size
	b.bytes += entryCost
	return e
}

func (b *Server) ref(m *message) {
	if m.refs == 0 && m.roIdx >= 0 {
		b.retained.remove(m)
		b.resize(m, m.full) // decoded when delivered
	}
	m.refs++
}

func (b *Server) unref(m *message) {
	m.refs--
	if m.refs > 0 {
		return
	}
	if m.inLog {
		b.retain(m)
	} else {
		b.free(m)
	}
}

// retain makes m, which no subscription holds, one kept only for Seek.
func (b *Server) retain(m *message) {
	b.retained.push(m)
	if m.pm != nil {
		m.data, m.attrs = m.pm.Data, encodeAttrs(m.pm)
		m.pm = nil
	}
	b.resize(m, int64(len(m.data)+len(m.attrs))+compactOverhead)
}

// decoded returns m's PubsubMessage, decoding a compacted one (already
// counted at its full size by ref).
func (m *message) decoded() *pb.PubsubMessage {
	if m.pm == nil {
		pm := &pb.PubsubMessage{
			Data:        m.data,
			MessageId:   strconv.FormatUint(m.seq, 10),
			PublishTime: timestamppb.New(m.pubTime),
		}
		if err := decodeAttrs(m.attrs, pm); err != nil {
			panic("broker: attributes encoded by this process do not decode: " + err.Error())
		}
		m.pm, m.data, m.attrs = pm, nil, nil
	}
	return m.pm
}

// encodeAttrs encodes the ordering key and the attributes of pm into one
// buffer: each string as a uvarint length and its bytes, the attributes
// preceded by their count. (proto.Marshal takes 30 allocations and ~9 µs for
// a record message, its map through reflection; this takes one and a few
// hundred ns.)
func encodeAttrs(pm *pb.PubsubMessage) []byte {
	n := stringSize(pm.OrderingKey) + uvarintSize(uint64(len(pm.Attributes)))
	for k, v := range pm.Attributes {
		n += stringSize(k) + stringSize(v)
	}
	buf := make([]byte, 0, n)
	buf = appendString(buf, pm.OrderingKey)
	buf = binary.AppendUvarint(buf, uint64(len(pm.Attributes)))
	for k, v := range pm.Attributes {
		buf = appendString(appendString(buf, k), v)
	}
	return buf
}

func uvarintSize(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func stringSize(s string) int { return uvarintSize(uint64(len(s))) + len(s) }

func appendString(buf []byte, s string) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(s))), s...)
}

func decodeAttrs(buf []byte, pm *pb.PubsubMessage) error {
	next := func() (string, error) {
		n, k := binary.Uvarint(buf)
		if k <= 0 || uint64(len(buf)-k) < n {
			return "", errors.New("truncated")
		}
		s := string(buf[k : k+int(n)])
		buf = buf[k+int(n):]
		return s, nil
	}
	var err error
	if pm.OrderingKey, err = next(); err != nil {
		return err
	}
	count, k := binary.Uvarint(buf)
	if k <= 0 || count > maxAttributes {
		return errors.New("bad attribute count")
	}
	buf = buf[k:]
	if count > 0 {
		pm.Attributes = make(map[string]string, count)
	}
	for range count {
		key, err := next()
		if err != nil {
			return err
		}
		if pm.Attributes[key], err = next(); err != nil {
			return err
		}
	}
	return nil
}

func (b *Server) resize(m *message, size int64) {
	b.bytes += size - m.size
	if m.inLog {
		m.topic.logBytes += size - m.size
	}
	m.size = size
}

// compactOverhead is what a compacted message counts on top of its data and
// encoded attributes (its struct, and the allocator's rounding).
const compactOverhead = 288

// expansion is what replaying m costs against the cap on top of what it
// counts now.
func (m *message) expansion() int64 { return m.full - m.size }

func (b *Server) linkAll(m *message) {
	m.allPrev = b.allTail
	if b.allTail != nil {
		b.allTail.allNext = m
	} else {
		b.allHead = m
	}
	b.allTail = m
	b.bytes += m.size
	b.messages++
}

// free forgets m: no subscription holds it and the topic does not keep it.
func (b *Server) free(m *message) {
	if m.allPrev != nil {
		m.allPrev.allNext = m.allNext
	} else {
		b.allHead = m.allNext
	}
	if m.allNext != nil {
		m.allNext.allPrev = m.allPrev
	} else {
		b.allTail = m.allPrev
	}
	m.allPrev, m.allNext = nil, nil
	b.bytes -= m.size
	b.messages--
}

func (t *topic) logAppend(m *message) {
	m.inLog = true
	m.logPrev = t.logTail
	if t.logTail != nil {
		t.logTail.logNext = m
	} else {
		t.logHead = m
	}
	t.logTail = m
	t.logN++
	t.logBytes += m.size
}

// unlog removes m from its topic's log, freeing it when no subscription holds it.
func (b *Server) unlog(m *message) {
	t := m.topic
	if m.logPrev != nil {
		m.logPrev.logNext = m.logNext
	} else {
		t.logHead = m.logNext
	}
	if m.logNext != nil {
		m.logNext.logPrev = m.logPrev
	} else {
		t.logTail = m.logPrev
	}
	m.logPrev, m.logNext = nil, nil
	m.inLog = false
	t.logN--
	t.logBytes -= m.size
	if m.refs == 0 {
		b.retained.remove(m)
		b.free(m)
	}
}

// removeEntry ends s's hold on e (acknowledged, expired, evicted, or the
// subscription is going away).
func (b *Server) removeEntry(s *subscription, e *entry) {
	switch e.state {
	case stateGone:
		return
	case stateOutstanding:
		s.deadlines.remove(e)
		b.release(s, e)
		s.outstanding--
	}
	e.state = stateGone
	m := e.m
	e.m = nil
	delete(s.entries, m.seq)
	s.backlogBytes -= m.size
	b.bytes -= entryCost
	s.ready.dropGone()
	b.unref(m)
}

// release gives e's flow-control credit back.
func (b *Server) release(s *subscription, e *entry) {
	f := e.fl
	if f == nil {
		return
	}
	e.fl = nil
	f.outN--
	f.outB -= e.m.size
	if f.blocked && !f.full() {
		f.blocked = false
		s.signal()
	}
	if f.outN == 0 && f.streams == 0 {
		delete(s.flows, f.id)
	}
}

// take marks up to max ready messages of s outstanding (for flow f, nil for
// Pull) and returns them for delivery.
func (b *Server) take(s *subscription, f *flow, deadline time.Duration, max int, maxBytes int64) []*pb.ReceivedMessage {
	out := make([]*pb.ReceivedMessage, 0, min(max, s.ready.len()))
	var size int64
	mono := time.Now()
	wall := b.now()
	horizon := s.horizon()
	for len(out) < max && size < maxBytes {
		if f != nil && f.full() {
			f.blocked = true
			break
		}
		e := s.ready.popFront()
		if e == nil {
			break
		}
		if e.state != stateReady {
			continue
		}
		if wall.Sub(e.m.pubTime) > horizon {
			s.dropped++
			b.removeEntry(s, e)
			continue
		}
		s.deliveries++
		e.delivery = s.deliveries
		e.attempts++
		e.state = stateOutstanding
		e.deadline = mono.Add(deadline)
		e.sentAt = mono
		s.deadlines.push(e)
		s.outstanding++
		if f != nil {
			e.fl = f
			f.outN++
			f.outB += e.m.size
		}
		if e.attempts > 1 {
			s.redelivered++
		}
		s.delivered++
		size += e.m.size
		out = append(out, &pb.ReceivedMessage{
			AckId:           ackID(e.m.seq, e.delivery),
			Message:         e.m.decoded(),
			DeliveryAttempt: e.attempts,
		})
	}
	if len(out) > 0 {
		b.armTimer(s)
	}
	return out
}

// untake puts back messages that take returned but that could not be sent.
func (b *Server) untake(s *subscription, msgs []*pb.ReceivedMessage) {
	for i := len(msgs) - 1; i >= 0; i-- {
		e := s.lookup(msgs[i].AckId)
		if e == nil {
			continue
		}
		s.deadlines.remove(e)
		b.release(s, e)
		s.outstanding--
		s.delivered--
		if e.attempts > 1 {
			s.redelivered--
		}
		e.attempts--
		e.pushed(s, true)
	}
	s.signal()
}

// lookup returns the outstanding entry an ack id designates, or nil when the
// id is stale (acknowledged, redelivered since, seeked over) or unknown.
func (s *subscription) lookup(id string) *entry {
	seq, delivery, ok := parseAckID(id)
	if !ok {
		return nil
	}
	e := s.entries[seq]
	if e == nil || e.state != stateOutstanding || e.delivery != delivery {
		return nil
	}
	return e
}

func (b *Server) ack(s *subscription, id string) {
	if e := s.lookup(id); e != nil {
		s.acked++
		b.removeEntry(s, e)
	}
}

// modack sets the deadline of a delivered message to now+d; d == 0 is a nack:
// the message is redelivered at once.
func (b *Server) modack(s *subscription, id string, d time.Duration) {
	e := s.lookup(id)
	if e == nil {
		return
	}
	if d == 0 {
		b.requeue(s, e)
		s.signal()
		return
	}
	e.deadline = time.Now().Add(d)
	heap.Fix(&s.deadlines, e.hidx)
	b.armTimer(s)
}

// requeue makes an outstanding entry ready again, ahead of new messages.
func (b *Server) requeue(s *subscription, e *entry) {
	s.deadlines.remove(e)
	b.release(s, e)
	s.outstanding--
	e.pushed(s, true)
}

// armTimer makes sure s's timer fires at its earliest ack deadline.
func (b *Server) armTimer(s *subscription) {
	if len(s.deadlines) == 0 || b.closed {
		return
	}
	at := s.deadlines[0].deadline
	if s.timerArmed && !at.Before(s.timerAt) {
		return
	}
	d := time.Until(at)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, func() {
			pprof.Do(context.Background(), pprof.Labels("component", "pubsub-broker"), func(context.Context) { b.expire(s) })
		})
	} else {
		s.timer.Reset(d)
	}
	s.timerAt, s.timerArmed = at, true
}

// expire redelivers the messages of s whose ack deadline passed.
func (b *Server) expire(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s.timerArmed = false
	if b.closed || b.subs[s.name] != s {
		return
	}
	now := time.Now()
	wall := b.now()
	horizon := s.horizon()
	n := 0
	for len(s.deadlines) > 0 && !s.deadlines[0].deadline.After(now) {
		e := s.deadlines[0]
		s.expired++
		if wall.Sub(e.m.pubTime) > horizon {
			s.dropped++
			b.removeEntry(s, e)
			continue
		}
		b.requeue(s, e)
		n++
	}
	if n > 0 {
		s.signal()
	}
	b.armTimer(s)
}

// streamEnded shortens the deadlines of messages sent on flow f when its last
// stream ended: a client that still holds them extends them (its lease
// extensions travel by ModifyAckDeadline, not by the stream), and those lost in
// transit come back after the subscription's ack deadline instead of the
// stream's (60 s by default).
func (b *Server) streamEnded(s *subscription, f *flow) {
	f.streams--
	if f.streams > 0 {
		return
	}
	if f.outN == 0 {
		delete(s.flows, f.id)
		return
	}
	limit := time.Now().Add(s.ackDeadline)
	changed := false
	for _, e := range s.deadlines {
		if e.fl == f && e.deadline.After(limit) {
			e.deadline = limit
			changed = true
		}
	}
	if changed {
		heap.Init(&s.deadlines)
		b.armTimer(s)
	}
}

// seek acknowledges every message of s published before t and makes every
// message published from t on that s holds or may replay unacknowledged again,
// as the service does for a Seek to a time.
func (b *Server) seek(s *subscription, t time.Time) (replayed, skipped int) {
	wall := b.now()
	top := s.topic
	live := top != nil && !top.deleted
	// Acknowledge what was published before t; the rest becomes ready again.
	var stray []*entry // kept entries whose message the topic's log does not hold
	for _, e := range s.entries {
		if e.m.pubTime.Before(t) {
			s.acked++
			b.removeEntry(s, e)
			continue
		}
		if e.state == stateOutstanding {
			s.deadlines.remove(e)
			b.release(s, e)
			s.outstanding--
		}
		if !live || !e.m.inLog {
			stray = append(stray, e)
		}
	}
	s.ready = entryQueue{}
	from := func() *message { // the first logged message published at or after t
		m := top.logHead
		for m != nil && m.pubTime.Before(t) {
			m = m.logNext
		}
		return m
	}
	replay := func(m *message) bool { return s.entries[m.seq] == nil && s.canReplay(m, wall) }
	var start, first *message
	if live {
		// Each replayed message costs an entry and its decoded size. When
		// the cap is short, retained-only messages are evicted (oldest
		// first, so some may be ones about to be replayed); if that is not
		// enough, the replay starts later rather than evicting what
		// subscribers still need.
		var need int64
		for m := from(); m != nil; m = m.logNext {
			if replay(m) {
				need += entryCost + m.expansion()
			}
		}
		b.evictRetained(need)
		start = from()
		room := b.maxBytes - b.bytes
		for m := top.logTail; m != nil && (start == nil || m.seq >= start.seq); m = m.logPrev {
			if !replay(m) {
				continue
			}
			c := entryCost + m.expansion()
			if c > room {
				break
			}
			room -= c
			first = m
		}
	}
	// Queue everything in publication order: the log walked once, merged with
	// the few held messages it no longer logs.
	slices.SortFunc(stray, func(x, y *entry) int {
		if x.m.seq < y.m.seq {
			return -1
		}
		return 1
	})
	i := 0
	reached := false
	for m := start; m != nil; m = m.logNext {
		reached = reached || m == first
		e := s.entries[m.seq]
		if e == nil {
			if !replay(m) {
				continue
			}
			if !reached {
				skipped++
				continue
			}
			e = b.addEntry(s, m)
			replayed++
		}
		for ; i < len(stray) && stray[i].m.seq < m.seq; i++ {
			stray[i].pushed(s, false)
		}
		e.pushed(s, false)
	}
	for ; i < len(stray); i++ {
		stray[i].pushed(s, false)
	}
	s.ackedBefore = t
	s.signal()
	return replayed, skipped
}

// canReplay reports whether a Seek of s may bring back m: the topic retains it,
// or s retains acknowledged messages and m was published while s existed.
func (s *subscription) canReplay(m *message, wall time.Time) bool {
	age := wall.Sub(m.pubTime)
	if m.topic.retention > 0 && age <= m.topic.retention {
		return true
	}
	return s.retainAcked && !m.pubTime.Before(s.created) && age <= s.retention
}

// makeRoom evicts messages until need more bytes fit under the cap: first the
// oldest messages kept only for Seek, then, when no such message is left, the
// oldest messages still unacknowledged by some subscription.
func (b *Server) makeRoom(need int64) {
	b.evictRetained(need)
	for b.bytes+need > b.maxBytes {
		m := b.allHead
		if m == nil {
			return
		}
		for _, s := range m.topic.subs {
			if e := s.entries[m.seq]; e != nil {
				s.evicted++
				b.pendUnackedSubs[s.name]++
				b.removeEntry(s, e)
			}
		}
		// Every entry of m belongs to a subscription of m.topic, so m is
		// now held by its topic's log at most.
		if m.inLog {
			b.unlog(m)
		}
		b.evictedUnacked++
		b.pendUnacked++
	}
}

// evictRetained evicts the oldest messages kept only for Seek until need more
// bytes fit under the cap or none is left.
func (b *Server) evictRetained(need int64) {
	for b.bytes+need > b.maxBytes && len(b.retained) > 0 {
		b.unlog(b.retained[0])
		b.evictedRetained++
		b.pendRetained++
	}
}

// recomputeKeep sets how long t's log keeps messages: its retention, or the
// retention of a subscription that retains acknowledged messages.
func (t *topic) recomputeKeep() {
	k := t.retention
	for _, s := range t.subs {
		if s.retainAcked && s.retention > k {
			k = s.retention
		}
	}
	t.keep = k
}

// trimTopic drops from t's log what it need not keep any more.
func (b *Server) trimTopic(t *topic, wall time.Time) {
	for m := t.logHead; m != nil && (t.keep == 0 || wall.Sub(m.pubTime) > t.keep); m = t.logHead {
		b.unlog(m)
	}
}

// trimSubscription drops from the head of s's queue the messages older than
// its retention (the others are checked when they are about to be delivered).
func (b *Server) trimSubscription(s *subscription, wall time.Time) {
	horizon := s.horizon()
	for e := s.ready.front(); e != nil; e = s.ready.front() {
		if e.state != stateReady {
			s.ready.popFront()
			continue
		}
		if wall.Sub(e.m.pubTime) <= horizon {
			return
		}
		s.ready.popFront()
		s.dropped++
		b.removeEntry(s, e)
	}
}

// deleteSubscription removes s, releasing its messages and ending its streams.
func (b *Server) deleteSubscription(s *subscription) {
	delete(b.subs, s.name)
	if t := s.topic; t != nil {
		t.subs = slices.DeleteFunc(t.subs, func(x *subscription) bool { return x == s })
		if s.retainAcked {
			t.recomputeKeep()
		}
	}
	for _, e := range s.entries {
		b.removeEntry(s, e)
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.ready = entryQueue{}
	close(s.gone)
	s.wakeWaited = true
	s.signal()
}

// deleteTopic removes t; its subscriptions stay, detached, with their backlog.
func (b *Server) deleteTopic(t *topic) {
	delete(b.topics, t.name)
	t.deleted = true
	t.keep = 0
	for m := t.logHead; m != nil; m = t.logHead {
		b.unlog(m)
	}
	for _, s := range t.subs {
		s.proto.Topic = deletedTopic
	}
}
