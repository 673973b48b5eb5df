package relay

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

// recordMsg is a record message as the routes publish it (attributes of the
// contract, spelled out so that the test does not depend on the encoder).
func recordMsg(id string, storedAt time.Time) *gps.Message {
	return &gps.Message{
		Data: []byte(`{"id":"` + id + `","vm":"vm-test","top_procesos":[{"pid":1,"name":"secret","state":"S","rss_mib":1}]}`),
		Attributes: map[string]string{
			"kind": "record", "route": "route1", "vm": "vm-test", "commit_ms": "1.250",
			"stored_at": storedAt.UTC().Format(time.RFC3339Nano), "batch": "1",
		},
	}
}

func heartbeatMsg() *gps.Message {
	return &gps.Message{Attributes: map[string]string{
		"kind": "heartbeat", "route": "route2", "instance": "route2-test", "sent_at": time.Now().UTC().Format(time.RFC3339),
	}}
}

func publish(t *testing.T, pub *gps.Publisher, m *gps.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pub.Publish(ctx, m).Get(ctx); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func topicSubs(t *testing.T, c *gps.Client, topic string) []string {
	t.Helper()
	it := c.TopicAdminClient.ListTopicSubscriptions(context.Background(),
		&pubsubpb.ListTopicSubscriptionsRequest{Topic: pubsub.TopicName(c.Project(), topic)})
	var out []string
	for {
		s, err := it.Next()
		if err == iterator.Done {
			return out
		}
		if err != nil {
			t.Fatalf("list subscriptions: %v", err)
		}
		out = append(out, s)
	}
}

// cutProxy forwards TCP to target until cut: then it resets every connection
// and refuses new ones until restored, as a network failure would.
type cutProxy struct {
	ln     net.Listener
	target string
	down   atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				c.Close()
				continue
			}
			u, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			p.track(c, u)
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = true
	}
}

// cut resets every connection and refuses new ones.
func (p *cutProxy) cut() {
	p.down.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		c.Close()
		delete(p.conns, c)
	}
}

func (p *cutProxy) restore() { p.down.Store(false) }
