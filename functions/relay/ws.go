package relay

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Options configure the websocket endpoint.
type Options struct {
	// AllowedOrigins lists the dashboard origins (scheme://host[:port]) allowed to
	// connect. Empty allows only same-origin pages; "*" allows any origin. Requests
	// without an Origin header (non-browser clients) are allowed.
	AllowedOrigins []string
	// MaxClients bounds concurrent connections (0: 5000); more get 503.
	MaxClients int
	// PingEvery is the keepalive period (0: 25 s): a ping control frame, plus a
	// {"type":"ping"} text frame when no data went out in the period.
	PingEvery time.Duration
	Log       *slog.Logger
}

// Handler returns the GET /ws handler.
func (h *Hub) Handler(o Options) http.Handler {
	if o.MaxClients <= 0 {
		o.MaxClients = 5000
	}
	if o.PingEvery <= 0 {
		o.PingEvery = pingEvery
	}
	allowed := map[string]bool{}
	any := false
	for _, a := range o.AllowedOrigins {
		a = strings.TrimRight(strings.TrimSpace(a), "/")
		if a == "*" {
			any = true
		} else if a != "" {
			allowed[strings.ToLower(a)] = true
		}
	}
	up := websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 32 << 10,
		CheckOrigin: func(r *http.Request) bool {
			origin := r.Header.Get("Origin")
			if origin == "" || any {
				return true
			}
			if allowed[strings.ToLower(strings.TrimRight(origin, "/"))] {
				return true
			}
			u, err := url.Parse(origin)
			return err == nil && strings.EqualFold(u.Host, r.Host)
		},
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			if status == http.StatusForbidden {
				h.dropped.With("origin").Inc()
				o.Log.Warn("websocket origin refused", "origin", r.Header.Get("Origin"))
			}
			http.Error(w, reason.Error(), status)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.Clients() >= o.MaxClients {
			w.Header().Set("Retry-After", "5")
			http.Error(w, "too many clients", http.StatusServiceUnavailable)
			return
		}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade already answered
		}
		c := &client{conn: conn, queue: make(chan []byte, h.queueLen), gone: make(chan struct{})}
		hist := h.register(c)
		go c.readLoop(h)
		c.writeLoop(h, hist, o)
	})
}

type client struct {
	conn  *websocket.Conn
	queue chan []byte

	once   sync.Once
	gone   chan struct{}
	reason string
}

// kick tells the client's writer to close with reason; safe to call many times.
func (c *client) kick(reason string) {
	c.once.Do(func() {
		c.reason = reason
		close(c.gone)
	})
}

// readLoop consumes pongs and detects the client closing.
func (c *client) readLoop(h *Hub) {
	c.conn.SetReadLimit(4096)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			break
		}
	}
	h.unregister(c)
	c.kick("")
}

func (c *client) writeLoop(h *Hub, hist [][]byte, o Options) {
	log := o.Log
	defer func() {
		h.unregister(c)
		c.conn.Close()
	}()
	write := func(b []byte, n int) bool {
		_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
			h.dropped.With("write").Inc()
			return false
		}
		h.frames.Inc()
		h.itemsSent.Add(float64(n))
		return true
	}
	if !write(frame("history", hist), len(hist)) {
		return
	}
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	ping := time.NewTicker(o.PingEvery)
	defer ping.Stop()
	batch := make([][]byte, 0, 256)
	wrote := false // a data frame went out since the last ping tick
	for {
		select {
		case <-c.gone:
			if c.reason != "" {
				code := websocket.CloseTryAgainLater
				if c.reason == "shutdown" {
					code = websocket.CloseGoingAway
				}
				msg := websocket.FormatCloseMessage(code, "relay: "+c.reason)
				_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
				log.Info("websocket client dropped", "reason", c.reason, "remote", c.conn.RemoteAddr().String())
			}
			return
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return
			}
			// Browsers never show ping frames to the page, so a quiet stream also gets
			// a text keepalive the page can see (it ignores the type otherwise).
			if !wrote && !write(pingFrame, 0) {
				return
			}
			wrote = false
		case <-flush.C:
			batch = batch[:0]
		drain:
			for len(batch) < maxFrame {
				select {
				case b := <-c.queue:
					batch = append(batch, b)
				default:
					break drain
				}
			}
			if len(batch) > 0 {
				if !write(frame("batch", batch), len(batch)) {
					return
				}
				wrote = true
			}
		}
	}
}

var pingFrame = []byte(`{"type":"ping"}`)
