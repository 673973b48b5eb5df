// Package relay fans committed records out to dashboards over websockets
// (GET /ws, gorilla/websocket). Each client gets the recent history on connect,
// then live batches at most ten times a second.
//
// Fan-out costs one encoding per tick, not one per client: every 100 ms the hub
// joins the items that arrived into one batch frame, prepares it once as a
// websocket.PreparedMessage (the framed bytes, and the permessage-deflate bytes
// when a client negotiated compression, are computed once and shared), and
// appends it to one shared ring. Each client's writer keeps a cursor in that ring
// and writes the frames it has not sent yet. A client that falls further behind
// than the ring holds is disconnected (close 1013), never waited for, so one slow
// browser cannot stall the others. The history frame is shared the same way.
//
// Wire protocol (server → client text frames, JSON):
//
//	{"type":"history","items":[Item, ...]}   once, right after connect (oldest first)
//	{"type":"batch","items":[Item, ...]}     live, ≤ 10 frames per second
//	{"type":"ping"}                          keepalive when nothing else was sent for a ping period
//
// Item is {"route":"route1","commit_ms":3.25,"stored_at":"<RFC 3339>","record":{…}}.
// Clients send nothing but pong frames; anything else is read and ignored.
package relay

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

// Item is one record as the dashboard receives it.
type Item struct {
	Route    string          `json:"route"`
	CommitMS float64         `json:"commit_ms"`
	StoredAt string          `json:"stored_at"`
	Record   json.RawMessage `json:"record"`
}

// Defaults of HubConfig (and of the relay command's flags).
//
// History holds 15 minutes of what the assignment produces with room to spare:
// one VM sampled every second (900 records) plus a phase-2 replay of a phase-1
// file (≈ 2 000 records when the agent samples every 90 ms) is ≈ 2 900 records of
// ≈ 1 KB, ≈ 3 MB; the defaults hold 10 000 records or 12 MiB, the same 15 minutes
// at a sustained ≈ 11 records/s. Every client receives the whole history on
// connect, so the byte bound is also each client's bound.
//
// The ring is shared by all clients, so it can be generous: a client may fall
// 16 384 records behind (164 s at 100 records/s, 4.7 s at 3 500) or 32 MiB,
// whichever comes first, before it is dropped as slow.
const (
	DefaultHistory      = 10000
	DefaultHistoryBytes = 12 << 20
	DefaultClientQueue  = 16384
	DefaultRingBytes    = 32 << 20
)

// Timing of the websocket conversation.
const (
	flushEvery      = 100 * time.Millisecond // ≤ 10 frames per second per client
	writeTimeout    = 10 * time.Second       // one frame; a client that takes longer is dropped
	closeTimeout    = time.Second            // the close frame on the way out
	pongWait        = 60 * time.Second       // a client silent this long (no pong) is gone
	defaultPing     = 25 * time.Second       // HubConfig.PingEvery default
	maxFrame        = 2000                   // items per batch frame
	historyMaxStale = 2 * time.Second        // a cached history frame is rebuilt at most this often
	stuckWrite      = 2 * time.Second        // a write blocked this long, behind the ring: cut off at once
)

// HubConfig sizes a Hub.
type HubConfig struct {
	History      int           // records kept for new clients (0: DefaultHistory)
	HistoryBytes int           // bytes of encoded records kept (0: DefaultHistoryBytes)
	HistoryAge   time.Duration // records stored longer ago leave the history (0: no age limit)
	ClientQueue  int           // records a client may fall behind before it is dropped (0: DefaultClientQueue)
	RingBytes    int           // bytes a client may fall behind before it is dropped (0: DefaultRingBytes)
	// ExposeProcesses keeps the names in top_procesos; by default they are
	// replaced by "" (once per record, before any client sees it).
	ExposeProcesses bool
	// PingEvery is the keepalive period (0: 25 s): a ping control frame, plus a
	// {"type":"ping"} text frame to clients that were sent no data in the period.
	PingEvery time.Duration
}

func (c *HubConfig) defaults() {
	if c.History <= 0 {
		c.History = DefaultHistory
	}
	if c.HistoryBytes <= 0 {
		c.HistoryBytes = DefaultHistoryBytes
	}
	if c.ClientQueue <= 0 {
		c.ClientQueue = DefaultClientQueue
	}
	if c.RingBytes <= 0 {
		c.RingBytes = DefaultRingBytes
	}
	if c.PingEvery <= 0 {
		c.PingEvery = defaultPing
	}
}

// Hub keeps the recent history, the ring of live frames and the clients.
type Hub struct {
	cfg HubConfig
	m   *hubMetrics

	mu        sync.Mutex
	seen      map[string]struct{} // ids of recent items, for de-duplication
	seenRing  []string
	seenNext  int
	pending   []histEntry // arrived since the last tick, in arrival order
	hist      []histEntry // sorted by time
	histBytes int
	histCache *historyFrame
	clients   map[*client]struct{}
	closed    bool
	ringItems int // items and bytes of frames tail..head
	ringBytes int

	buildMu sync.Mutex // one history build at a time

	// The ring is written by the tick goroutine (under mu) and read by client
	// writers without a lock: frames are immutable, head is stored after its slot,
	// and a reader that finds another sequence number in a slot knows it was
	// overwritten.
	ring    []atomic.Pointer[frame]
	head    atomic.Uint64 // newest frame (0: none yet)
	tail    atomic.Uint64 // oldest frame still readable
	notify  atomic.Pointer[chan struct{}]
	pingSeq atomic.Uint64
	pingMsg *websocket.PreparedMessage
	stuck   atomic.Int64 // stuckWrite (tests change it)

	stop chan struct{}
	done chan struct{}
	wg   sync.WaitGroup // client writers
}

type histEntry struct {
	at time.Time // stored_at, or arrival when unknown
	b  []byte    // encoded Item
}

type frame struct {
	seq   uint64
	pm    *websocket.PreparedMessage
	items int
	bytes int
}

type historyFrame struct {
	seq     uint64 // the history holds every item of frames ≤ seq
	pm      *websocket.PreparedMessage
	items   int
	builtAt time.Time
}

// NewHub starts a hub; reg receives its metrics (nil: none are exported).
func NewHub(cfg HubConfig, reg prometheus.Registerer) *Hub {
	cfg.defaults()
	seenSize := max(4*cfg.History, 16384)
	h := &Hub{
		cfg:      cfg,
		seen:     make(map[string]struct{}, seenSize),
		seenRing: make([]string, seenSize),
		clients:  map[*client]struct{}{},
		ring:     make([]atomic.Pointer[frame], cfg.ClientQueue+1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	h.tail.Store(1)
	h.stuck.Store(int64(stuckWrite))
	ch := make(chan struct{})
	h.notify.Store(&ch)
	h.pingMsg, _ = websocket.NewPreparedMessage(websocket.TextMessage, []byte(`{"type":"ping"}`))
	h.m = newHubMetrics(h, reg)
	go h.run()
	return h
}

// Add takes one record: it is kept in the history and goes out to every client
// with the next tick, unless an item with the same id was seen recently. Add
// never blocks on a client. It reports whether the item was new.
func (h *Hub) Add(id string, item Item) bool {
	at, err := time.Parse(time.RFC3339Nano, item.StoredAt)
	if err != nil {
		at = time.Now()
	}
	return h.add(id, item, at)
}

// AddMessage is Add for a decoded record message.
func (h *Hub) AddMessage(m pubsub.Message) bool {
	at := m.StoredAt
	stored := ""
	if at.IsZero() {
		at = time.Now()
	} else {
		stored = at.UTC().Format(time.RFC3339Nano)
	}
	return h.add(m.ID, Item{Route: m.Route, CommitMS: m.CommitMS, StoredAt: stored, Record: m.Record}, at)
}

func (h *Hub) add(id string, item Item, at time.Time) bool {
	h.m.received.Inc()
	if id != "" && !h.remember(id) {
		h.m.dupes.Inc()
		return false
	}
	if !h.cfg.ExposeProcesses {
		rec, err := redactProcessNames(item.Record)
		if err != nil {
			h.m.invalid.Inc()
			return false
		}
		item.Record = rec
	}
	b, err := json.Marshal(item)
	if err != nil { // a Record that is not JSON: it cannot be sent
		h.m.invalid.Inc()
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.pending = append(h.pending, histEntry{at: at, b: b})
	}
	return true
}

// remember records id and reports whether it is new.
func (h *Hub) remember(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.seen[id]; dup {
		return false
	}
	if old := h.seenRing[h.seenNext]; old != "" {
		delete(h.seen, old)
	}
	h.seenRing[h.seenNext] = id
	h.seenNext = (h.seenNext + 1) % len(h.seenRing)
	h.seen[id] = struct{}{}
	return true
}

// run is the tick: it turns what arrived into frames and keeps the pings going.
func (h *Hub) run() {
	defer close(h.done)
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	ping := time.NewTicker(h.cfg.PingEvery)
	defer ping.Stop()
	var spare []histEntry
	for {
		select {
		case <-h.stop:
			return
		case now := <-flush.C:
			var sent bool
			if spare, sent = h.flush(now, spare); sent {
				h.wake()
			}
		case <-ping.C:
			h.pingSeq.Add(1)
			h.wake()
		}
	}
}

// flush moves pending items into the history and the ring. It takes an empty
// buffer for the next pending items and returns the one it emptied, and whether
// it published a frame.
func (h *Hub) flush(now time.Time, spare []histEntry) ([]histEntry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.evictHistoryLocked(now)
	batch := h.pending
	if len(batch) == 0 {
		return spare, false
	}
	h.pending = spare[:0]
	for _, it := range batch {
		h.insertHistoryLocked(it)
	}
	h.evictHistoryLocked(now)
	per := min(maxFrame, h.cfg.ClientQueue)
	for rest := batch; len(rest) > 0; {
		n := min(len(rest), per)
		h.publishLocked(rest[:n])
		rest = rest[n:]
	}
	clear(batch) // the history and the frames hold what they need
	h.dropStuckLocked(now)
	return batch[:0], true
}

// dropStuckLocked disconnects clients whose writer is blocked in a write (a
// client that stopped reading: its socket buffers are full) and that the ring
// has left behind. Their close frame could not get through; the connection is
// closed under the write, which returns at once.
func (h *Hub) dropStuckLocked(now time.Time) {
	tail := h.tail.Load()
	after := time.Duration(h.stuck.Load())
	for c := range h.clients {
		if c.stuckBehind(tail, now, after) {
			c.kick(dropSlow)
			_ = c.conn.NetConn().Close()
		}
	}
}

func (h *Hub) insertHistoryLocked(e histEntry) {
	h.hist = append(h.hist, e)
	// Usually in order; replays and redeliveries may arrive a little late.
	for i := len(h.hist) - 1; i > 0 && h.hist[i-1].at.After(e.at); i-- {
		h.hist[i], h.hist[i-1] = h.hist[i-1], h.hist[i]
	}
	h.histBytes += len(e.b)
}

func (h *Hub) evictHistoryLocked(now time.Time) {
	i := 0
	for i < len(h.hist) {
		e := h.hist[i]
		old := h.cfg.HistoryAge > 0 && now.Sub(e.at) > h.cfg.HistoryAge
		if !old && len(h.hist)-i <= h.cfg.History && h.histBytes <= h.cfg.HistoryBytes {
			break
		}
		h.histBytes -= len(e.b)
		h.hist[i] = histEntry{}
		i++
	}
	if i > 0 {
		h.hist = h.hist[i:]
	}
}

// publishLocked appends one batch frame to the ring, evicting the oldest frames
// beyond the ring's bounds.
func (h *Hub) publishLocked(items []histEntry) {
	b := frameBytes("batch", items)
	pm, _ := websocket.NewPreparedMessage(websocket.TextMessage, b) // cannot fail for a text message
	head := h.head.Load()
	f := &frame{seq: head + 1, pm: pm, items: len(items), bytes: len(b)}
	tail := h.tail.Load()
	for tail <= head && (h.ringItems+f.items > h.cfg.ClientQueue || h.ringBytes+f.bytes > h.cfg.RingBytes ||
		f.seq-tail >= uint64(len(h.ring))) {
		slot := &h.ring[tail%uint64(len(h.ring))]
		old := slot.Load()
		// Let the frame go now: a slot is otherwise only overwritten a whole
		// ring later (16 384 ticks, 27 minutes), and until then the frames the
		// bounds evicted would stay in memory (the 30-minute soak saw the relay
		// grow by 10 MiB a minute at 60 records/s).
		slot.Store(nil)
		h.ringItems -= old.items
		h.ringBytes -= old.bytes
		tail++
		h.tail.Store(tail)
	}
	h.ring[f.seq%uint64(len(h.ring))].Store(f)
	h.ringItems += f.items
	h.ringBytes += f.bytes
	h.head.Store(f.seq)
}

// wake tells every waiting writer that there is something new.
func (h *Hub) wake() {
	ch := make(chan struct{})
	old := h.notify.Swap(&ch)
	close(*old)
}

// next returns the frame with sequence number seq, or ok=false when the ring
// no longer holds it.
func (h *Hub) next(seq uint64) (*frame, bool) {
	if seq < h.tail.Load() {
		return nil, false
	}
	f := h.ring[seq%uint64(len(h.ring))].Load()
	if f == nil || f.seq != seq {
		return nil, false
	}
	return f, true
}

// register adds c and returns the history frame to send it first; c's cursor
// is set to the last frame the history covers, so that nothing is missed or sent
// twice between the two. It returns nil when the hub is closed.
func (h *Hub) register(c *client) *historyFrame {
	h.buildMu.Lock()
	defer h.buildMu.Unlock()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	hf := h.histCache
	head := h.head.Load()
	fresh := hf != nil && hf.seq+1 >= h.tail.Load() && (hf.seq == head || time.Since(hf.builtAt) < historyMaxStale)
	var snap []histEntry
	if !fresh {
		snap = append(make([]histEntry, 0, len(h.hist)), h.hist...)
	}
	h.mu.Unlock()

	if !fresh { // build outside the hub lock: records keep arriving meanwhile
		b := frameBytes("history", snap)
		pm, _ := websocket.NewPreparedMessage(websocket.TextMessage, b)
		hf = &historyFrame{seq: head, pm: pm, items: len(snap), builtAt: time.Now()}
		h.m.historyBuilds.Inc()
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.histCache = hf
	c.cursor.Store(hf.seq)
	h.clients[c] = struct{}{}
	h.wg.Add(1)
	h.m.clients.Set(float64(len(h.clients)))
	return hf
}

func (h *Hub) unregister(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		h.m.clients.Set(float64(len(h.clients)))
	}
}

func (h *Hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Clients returns how many clients are connected.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Close stops the hub and disconnects every client with "going away" (1001), so
// that they reconnect, to another instance when this one is shutting down. It
// waits up to a second for the close frames to go out.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	for c := range h.clients {
		c.kick("shutdown")
	}
	h.mu.Unlock()
	close(h.stop)
	<-h.done
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeTimeout + 100*time.Millisecond):
	}
}

// frameBytes builds {"type":t,"items":[...]} from encoded items without
// re-encoding them.
func frameBytes(t string, items []histEntry) []byte {
	n := 32
	for _, it := range items {
		n += len(it.b) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"type":"`...)
	b = append(b, t...)
	b = append(b, `","items":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it.b...)
	}
	return append(b, "]}"...)
}
