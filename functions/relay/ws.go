package relay

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// DefaultMaxClients is Cloud Run's highest concurrency: an instance never gets
// more requests (websockets included) than the service's concurrency.
const DefaultMaxClients = 1000

// DefaultMaxPerAddr bounds the connections of one client address.
const DefaultMaxPerAddr = 20

// readLimit bounds what a client may send in one frame: clients send nothing but
// pongs. A bigger frame closes the connection with 1009 (message too big).
const readLimit = 1024

// Options configure the websocket endpoint.
type Options struct {
	// AllowedOrigins lists the dashboard origins (scheme://host[:port]) allowed to
	// connect. Empty allows only same-origin pages; "*" allows any origin.
	// Requests without an Origin header (not browsers) are allowed; the "null"
	// origin (sandboxed frames, file: pages) never is.
	AllowedOrigins []string
	// MaxClients bounds concurrent connections (0: DefaultMaxClients); more get 503.
	MaxClients int
	// MaxPerAddr bounds concurrent connections per client address, IPv6 per /64
	// (0: no bound); more get 429.
	MaxPerAddr int
	// TrustedProxies is how many proxies in front of the relay append the address
	// they received a request from to X-Forwarded-For. 0: the client is the
	// connection's peer. On Cloud Run's own URL Google's front end appends the
	// client's address: 1. Behind an external Application Load Balancer, which
	// appends "<client>,<load balancer>": 2.
	TrustedProxies int
	// Compression negotiates permessage-deflate with clients that offer it
	// (browsers do). Each frame is compressed once for all of them.
	Compression bool
	Log         *slog.Logger
}

// Handler returns the GET /ws handler.
func (h *Hub) Handler(o Options) http.Handler {
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	adm := &admission{max: o.MaxClients, maxPerAddr: o.MaxPerAddr, perAddr: map[string]int{}}
	origin := originChecker(o.AllowedOrigins)
	up := websocket.Upgrader{
		ReadBufferSize:    256,          // pongs only
		WriteBufferPool:   &sync.Pool{}, // frames are prepared; only control frames use a buffer
		EnableCompression: o.Compression,
		CheckOrigin:       func(*http.Request) bool { return true }, // checked before admission
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !origin(r) {
			h.m.dropped.WithLabelValues(dropOrigin).Inc()
			o.Log.Warn("websocket origin refused", "origin", r.Header.Get("Origin"))
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		if h.isClosed() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "relay shutting down", http.StatusServiceUnavailable)
			return
		}
		addr := clientAddr(r, o.TrustedProxies)
		if reason := adm.acquire(addr); reason != "" {
			h.m.dropped.WithLabelValues(reason).Inc()
			w.Header().Set("Retry-After", "5")
			if reason == dropPerAddress {
				http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
			} else {
				http.Error(w, "too many clients", http.StatusServiceUnavailable)
			}
			return
		}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil { // Upgrade answered already
			adm.release(addr)
			return
		}
		c := &client{conn: conn, gone: make(chan struct{})}
		hist := h.register(c)
		if hist == nil { // shutting down
			c.closeWith(websocket.CloseGoingAway, "relay: shutdown")
			conn.Close()
			adm.release(addr)
			return
		}
		// Both loops run in goroutines of their own and the handler returns, so
		// that net/http's connection state (and its buffers) can be freed.
		go c.readLoop(h)
		go func() {
			defer adm.release(addr)
			c.writeLoop(h, hist, o.Log)
		}()
	})
}

// admission holds the connection counts; a connection is counted from before
// its upgrade until it is closed, and both caps are checked under one lock.
type admission struct {
	mu         sync.Mutex
	total, max int
	maxPerAddr int
	perAddr    map[string]int
}

// acquire counts a connection from addr, or returns why it may not connect.
func (a *admission) acquire(addr string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total >= a.max {
		return dropFull
	}
	if a.maxPerAddr > 0 && a.perAddr[addr] >= a.maxPerAddr {
		return dropPerAddress
	}
	a.total++
	a.perAddr[addr]++
	return ""
}

func (a *admission) release(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.perAddr[addr]--; a.perAddr[addr] <= 0 {
		delete(a.perAddr, addr)
	}
}

// clientAddr is the address a per-address cap applies to: the connection's
// peer, or with trusted proxies the entry of X-Forwarded-For that the outermost
// trusted proxy appended (entries further left are whatever the client sent).
// IPv6 addresses count per /64, which one subscriber usually has whole.
func clientAddr(r *http.Request, trusted int) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if trusted > 0 {
		var hops []string
		for _, v := range r.Header.Values("X-Forwarded-For") {
			for _, p := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(p))
			}
		}
		// Fewer entries than proxies: the request did not come through them.
		if len(hops) >= trusted {
			host = hops[len(hops)-trusted]
		}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// originChecker implements Options.AllowedOrigins.
func originChecker(origins []string) func(*http.Request) bool {
	allowed := map[string]bool{}
	anyOrigin := false
	for _, a := range origins {
		a = strings.TrimRight(strings.TrimSpace(a), "/")
		if a == "*" {
			anyOrigin = true
		} else if a != "" {
			allowed[strings.ToLower(a)] = true
		}
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		switch {
		case origin == "":
			return true
		case strings.EqualFold(origin, "null"):
			return false
		case anyOrigin || allowed[strings.ToLower(strings.TrimRight(origin, "/"))]:
			return true
		}
		u, err := url.Parse(origin)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
	}
}

type client struct {
	conn    *websocket.Conn
	cursor  atomic.Uint64 // last frame sent
	writing atomic.Int64  // start of the write in progress (unix ns), 0 when none

	once   sync.Once
	gone   chan struct{}
	reason string
}

// kick tells the client's writer to close with reason ("" when the connection is
// already gone); safe to call many times.
func (c *client) kick(reason string) {
	c.once.Do(func() {
		c.reason = reason
		close(c.gone)
	})
}

func (c *client) closeWith(code int, text string) {
	msg := websocket.FormatCloseMessage(code, text)
	_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeTimeout))
}

// readLoop consumes pongs and detects the client closing or misbehaving.
func (c *client) readLoop(h *Hub) {
	c.conn.SetReadLimit(readLimit)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, r, err := c.conn.NextReader()
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) { // gorilla sent 1009
				h.m.dropped.WithLabelValues(dropReadLimit).Inc()
			}
			break
		}
	}
	c.kick("")
}

// writeLoop sends the history, then every frame of the ring from the client's
// cursor on, and the keepalives.
func (c *client) writeLoop(h *Hub, hist *historyFrame, log *slog.Logger) {
	defer func() {
		h.unregister(c)
		c.conn.Close()
		h.wg.Done()
	}()
	if !c.write(h, hist.pm, hist.items) {
		return
	}
	lastPing := h.pingSeq.Load()
	wrote := false // a data frame went out since the last ping
	for {
		wait := *h.notify.Load() // before reading head: a frame published later closes it
		for cur, head := c.cursor.Load(), h.head.Load(); cur < head; cur++ {
			f, ok := h.next(cur + 1)
			if !ok {
				h.m.dropped.WithLabelValues(dropSlow).Inc()
				c.closeWith(websocket.CloseTryAgainLater, "relay: slow")
				log.Info("websocket client dropped", "reason", dropSlow, "remote", c.conn.RemoteAddr().String())
				return
			}
			if !c.write(h, f.pm, f.items) {
				return
			}
			c.cursor.Store(f.seq)
			wrote = true
		}
		if p := h.pingSeq.Load(); p != lastPing {
			lastPing = p
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				h.m.dropped.WithLabelValues(dropWrite).Inc()
				return
			}
			// Browsers never show ping frames to the page, so a quiet stream also
			// gets a text keepalive the page can see (it ignores the type otherwise).
			if !wrote && !c.write(h, h.pingMsg, 0) {
				return
			}
			wrote = false
		}
		select {
		case <-wait:
		case <-c.gone:
			if c.reason == dropShutdown {
				h.m.dropped.WithLabelValues(dropShutdown).Inc()
				c.closeWith(websocket.CloseGoingAway, "relay: shutdown")
			}
			return
		}
	}
}

func (c *client) write(h *Hub, pm *websocket.PreparedMessage, items int) bool {
	now := time.Now()
	_ = c.conn.SetWriteDeadline(now.Add(writeTimeout))
	c.writing.Store(now.UnixNano())
	err := c.conn.WritePreparedMessage(pm)
	c.writing.Store(0)
	if err != nil {
		reason := dropWrite
		select {
		case <-c.gone:
			if c.reason == dropSlow {
				reason = dropSlow
			}
		default:
		}
		h.m.dropped.WithLabelValues(reason).Inc()
		return false
	}
	h.m.frames.Inc()
	h.m.itemsSent.Add(float64(items))
	return true
}

// stuckBehind reports whether the client's writer has been blocked in one write
// for a while and the ring no longer holds the frame it needs next.
func (c *client) stuckBehind(tail uint64, now time.Time, after time.Duration) bool {
	w := c.writing.Load()
	return w != 0 && now.Sub(time.Unix(0, w)) > after && c.cursor.Load()+1 < tail
}
