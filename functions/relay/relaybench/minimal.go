package main

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/internal/logging"
)

// The reference relay (`-relay minimal`): the least a relay of this protocol
// does. One subscription; every 100 ms the records that arrived become one
// frame, encoded once (websocket.PreparedMessage, so framing and deflate are
// computed once) and handed to each client's writer goroutine; write buffers
// come from a pool. Nothing else: no history, no de-duplication, no redaction,
// no caps, no health, no metrics, and a client that falls 64 frames behind is
// dropped. Measured in the same run as the real relay, its CPU per delivered
// byte is the limit the real relay's is judged against (the issue's "shared-frame
// design"). relaybench runs itself with serveMinimalArg to start one.

const serveMinimalArg = "-serve-minimal"

// minimalRelay is the path the -relay list uses for the reference relay.
const minimalRelay = "minimal"

// log writes in the real relay's format (internal/logging), the one
// relaybench reads: it passes ERROR lines on and ignores the rest.
var log = logging.New(os.Stderr, slog.LevelInfo)

// die reports err where relaybench shows it, then exits.
func die(err error) {
	log.Error("minimal relay: " + err.Error())
	os.Exit(1)
}

func serveMinimal(args []string) {
	fs := flag.NewFlagSet("minimal relay", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	fs.Int("max-clients", 0, "ignored: the reference relay has no cap")
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	ctx := context.Background()
	ps, err := pubsub.Connect(ctx, os.Getenv("PUBSUB_PROJECT"), os.Getenv("PUBSUB_EMULATOR_HOST"))
	if err != nil {
		die(err)
	}
	sub, err := pubsub.CreateInstanceSubscription(ctx, ps, os.Getenv("PUBSUB_TOPIC"), "minimal-"+strconv.Itoa(os.Getpid()))
	if err != nil {
		die(err)
	}
	r := &minimal{clients: map[chan *websocket.PreparedMessage]*websocket.Conn{}}
	go func() {
		if err := pubsub.Receive(ctx, ps, sub, r.add); err != nil {
			die(err)
		}
	}()
	go r.tick()
	go func() { // SIGTERM: as the real relay, close every client with 1001 and delete the subscription
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		r.mu.Lock()
		conns := make([]*websocket.Conn, 0, len(r.clients))
		for _, conn := range r.clients {
			conns = append(conns, conn)
		}
		r.mu.Unlock()
		var wg sync.WaitGroup
		deadline := time.Now().Add(time.Second)
		for _, conn := range conns {
			wg.Go(func() {
				_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "shutdown"), deadline)
			})
		}
		wg.Wait()
		_ = pubsub.DeleteSubscription(context.Background(), ps, sub)
		os.Exit(0)
	}()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		die(err)
	}
	log.Info("relay listening", "addr", ln.Addr().String()) // the line relaybench waits for
	up := websocket.Upgrader{EnableCompression: true, WriteBufferPool: &sync.Pool{},
		CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, req *http.Request) {
		conn, err := up.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		r.serve(conn)
	})
	die(http.Serve(ln, mux))
}

type minimal struct {
	mu      sync.Mutex
	pending [][]byte
	clients map[chan *websocket.PreparedMessage]*websocket.Conn
}

func (r *minimal) add(data []byte, _ map[string]string) {
	r.mu.Lock()
	r.pending = append(r.pending, data)
	r.mu.Unlock()
}

// tick encodes what arrived as one frame and hands it to every client.
func (r *minimal) tick() {
	var buf bytes.Buffer
	for range time.Tick(100 * time.Millisecond) {
		r.mu.Lock()
		recs := r.pending
		r.pending = nil
		r.mu.Unlock()
		if len(recs) == 0 {
			continue
		}
		buf.Reset()
		buf.WriteString(`{"type":"batch","items":[`)
		for i, rec := range recs {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(`{"record":`)
			buf.Write(rec)
			buf.WriteByte('}')
		}
		buf.WriteString(`]}`)
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, buf.Bytes())
		if err != nil {
			die(err)
		}
		r.mu.Lock()
		for c := range r.clients {
			select {
			case c <- pm:
			default: // 64 frames behind: dropped
				delete(r.clients, c)
				close(c)
			}
		}
		r.mu.Unlock()
	}
}

// serve writes the frames to one client until it goes or falls behind.
func (r *minimal) serve(conn *websocket.Conn) {
	c := make(chan *websocket.PreparedMessage, 64)
	r.mu.Lock()
	r.clients[c] = conn
	r.mu.Unlock()
	go func() { // reads only to notice the client leaving
		for {
			if _, _, err := conn.NextReader(); err != nil {
				conn.Close()
				return
			}
		}
	}()
	defer func() {
		r.mu.Lock()
		delete(r.clients, c) // tick sends only to the clients it holds
		r.mu.Unlock()
		conn.Close()
	}()
	for pm := range c {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := conn.WritePreparedMessage(pm); err != nil {
			return
		}
	}
}
