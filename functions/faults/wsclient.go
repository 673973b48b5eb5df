package faults

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// WSClient is a dashboard stand-in: it keeps a websocket to the relay's /ws open,
// reconnecting whenever it drops (a relay restart, a slow-client drop), and
// records when it first saw each record id (protocol: functions/relay/hub.go).
type WSClient struct {
	URL string

	mu        sync.Mutex
	seen      map[string]Sighting
	connects  int
	connected bool

	cancel context.CancelFunc
	done   chan struct{}
}

// Sighting is the first time an id reached this client.
type Sighting struct {
	At       time.Time // when this client received it
	StoredAt time.Time // the item's stored_at (commit time, by the route's clock)
	Route    string
}

// item is the relay's Item, as much as this client needs.
type item struct {
	Route    string `json:"route"`
	StoredAt string `json:"stored_at"`
	Record   struct {
		ID string `json:"id"`
	} `json:"record"`
}

// NewWSClient starts listening to url (ws://host:port/ws).
func NewWSClient(url string) *WSClient {
	ctx, cancel := context.WithCancel(context.Background())
	c := &WSClient{URL: url, seen: map[string]Sighting{}, cancel: cancel, done: make(chan struct{})}
	go c.run(ctx)
	return c
}

func (c *WSClient) run(ctx context.Context) {
	defer close(c.done)
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	for ctx.Err() == nil {
		conn, _, err := d.DialContext(ctx, c.URL, nil)
		if err != nil {
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		c.mu.Lock()
		c.connects++
		c.connected = true
		c.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		c.read(conn)
		stop()
		conn.Close()
		c.mu.Lock()
		c.connected = false
		c.mu.Unlock()
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

func (c *WSClient) read(conn *websocket.Conn) {
	// The relay pings every 25 s and sends a text keepalive when quiet.
	for {
		_ = conn.SetReadDeadline(time.Now().Add(90 * time.Second))
		_, b, err := conn.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now()
		var f struct {
			Items []item `json:"items"`
		}
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		c.mu.Lock()
		for _, it := range f.Items {
			id := it.Record.ID
			if id == "" {
				continue
			}
			if _, ok := c.seen[id]; ok {
				continue
			}
			st, _ := time.Parse(time.RFC3339Nano, it.StoredAt)
			c.seen[id] = Sighting{At: now, StoredAt: st, Route: it.Route}
		}
		c.mu.Unlock()
	}
}

// Seen returns a copy of the first sightings by id.
func (c *WSClient) Seen() map[string]Sighting {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Sighting, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// Has reports whether id was seen.
func (c *WSClient) Has(id string) (Sighting, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.seen[id]
	return s, ok
}

// Connects is how many times the client connected.
func (c *WSClient) Connects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connects
}

// Connected reports whether a connection is open now.
func (c *WSClient) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// Close stops the client.
func (c *WSClient) Close() {
	c.cancel()
	<-c.done
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
