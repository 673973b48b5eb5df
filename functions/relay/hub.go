// Package relay fans committed records out to dashboards over websockets
// (GET /ws, gorilla/websocket). Each client gets the recent history on connect,
// then live batches at most ten times a second. Every client has a bounded queue
// and a write deadline: a client that cannot keep up is disconnected, never
// waited for, so one slow browser cannot stall the others.
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
	"time"

	"github.com/vmpulse/vmpulse/internal/metrics"
)

// Item is one record as the dashboard receives it.
type Item struct {
	Route    string          `json:"route"`
	CommitMS float64         `json:"commit_ms"`
	StoredAt string          `json:"stored_at"`
	Record   json.RawMessage `json:"record"`
}

// Hub keeps the recent history and the connected clients.
type Hub struct {
	mu       sync.Mutex
	clients  map[*client]struct{}
	history  [][]byte // ring of encoded items, oldest at histNext when full
	histNext int
	histFull bool
	seen     map[string]struct{} // ids of recent items, for de-duplication
	seenRing []string
	seenNext int

	queueLen int

	clientsG  *metrics.Gauge
	received  *metrics.Counter
	dupes     *metrics.Counter
	frames    *metrics.Counter
	itemsSent *metrics.Counter
	dropped   *metrics.CounterVec
}

// NewHub keeps the last historySize items and gives each client a queue of
// queueLen items.
func NewHub(historySize, queueLen int, reg *metrics.Registry) *Hub {
	if historySize < 1 {
		historySize = 1
	}
	if queueLen < 16 {
		queueLen = 16
	}
	seenSize := max(4*historySize, 16384)
	h := &Hub{
		clients:  map[*client]struct{}{},
		history:  make([][]byte, historySize),
		seen:     make(map[string]struct{}, seenSize),
		seenRing: make([]string, seenSize),
		queueLen: queueLen,
	}
	h.clientsG = reg.NewGauge("vmpulse_relay_clients", "Connected websocket clients.").With()
	h.received = reg.NewCounter("vmpulse_relay_items_received_total", "Records received from Pub/Sub.").With()
	h.dupes = reg.NewCounter("vmpulse_relay_duplicates_total", "Records received again (Pub/Sub is at-least-once) and not forwarded.").With()
	h.frames = reg.NewCounter("vmpulse_relay_frames_sent_total", "Websocket frames sent.").With()
	h.itemsSent = reg.NewCounter("vmpulse_relay_items_sent_total", "Items sent, summed over clients.").With()
	h.dropped = reg.NewCounter("vmpulse_relay_clients_dropped_total", "Clients disconnected by the relay, by reason.", "reason")
	return h
}

// Add takes one record from Pub/Sub: it is kept in the history and queued for
// every client, unless an item with the same id was seen recently. Add never
// blocks on a client.
func (h *Hub) Add(id string, item Item) {
	b, err := json.Marshal(item)
	if err != nil { // a RawMessage that is not JSON: drop it, it cannot be sent
		return
	}
	h.received.Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	if id != "" {
		if _, dup := h.seen[id]; dup {
			h.dupes.Inc()
			return
		}
		if old := h.seenRing[h.seenNext]; old != "" {
			delete(h.seen, old)
		}
		h.seenRing[h.seenNext] = id
		h.seenNext = (h.seenNext + 1) % len(h.seenRing)
		h.seen[id] = struct{}{}
	}
	h.history[h.histNext] = b
	h.histNext = (h.histNext + 1) % len(h.history)
	if h.histNext == 0 {
		h.histFull = true
	}
	for c := range h.clients {
		select {
		case c.queue <- b:
		default:
			h.dropLocked(c, "slow")
		}
	}
}

// register adds c and returns the history to send it first, atomically, so that
// no item is missed or sent twice between the two.
func (h *Hub) register(c *client) [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	var hist [][]byte
	if h.histFull {
		hist = append(hist, h.history[h.histNext:]...)
	}
	hist = append(hist, h.history[:h.histNext]...)
	h.clients[c] = struct{}{}
	h.clientsG.Set(float64(len(h.clients)))
	return hist
}

func (h *Hub) unregister(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		h.clientsG.Set(float64(len(h.clients)))
	}
}

func (h *Hub) dropLocked(c *client, reason string) {
	delete(h.clients, c)
	h.clientsG.Set(float64(len(h.clients)))
	h.dropped.With(reason).Inc()
	c.kick(reason)
}

// Clients returns how many clients are connected.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// frame builds {"type":t,"items":[...]} from encoded items without re-encoding them.
func frame(t string, items [][]byte) []byte {
	n := 32
	for _, it := range items {
		n += len(it) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"type":"`...)
	b = append(b, t...)
	b = append(b, `","items":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, "]}"...)
}

// Defaults of the relay command's -history and -client-queue.
const (
	DefaultHistory     = 900  // about 15 minutes at one sample a second
	DefaultClientQueue = 4096 // records queued per client before it counts as slow
)

// Timing of the websocket conversation.
const (
	flushEvery   = 100 * time.Millisecond // ≤ 10 frames per second per client
	writeTimeout = 10 * time.Second
	pongWait     = 60 * time.Second
	pingEvery    = 25 * time.Second // default of Options.PingEvery
	maxFrame     = 2000             // items per frame
)

// CloseAll disconnects every client with "going away", so that they reconnect
// (to another instance when this one is shutting down).
func (h *Hub) CloseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		delete(h.clients, c)
		c.kick("shutdown")
	}
	h.clientsG.Set(0)
}
