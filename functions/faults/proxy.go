package faults

import (
	"context"
	"fmt"
	"strings"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// stallToxic holds every byte of its direction until it is removed: the reader
// behind it blocks, so TCP's windows fill and the peer's writes block, as in a
// network partition where the kernel keeps retransmitting. Removing it delivers
// what was held, in order, as TCP would once the partition heals. (Toxiproxy's
// own "timeout" toxic drops the bytes instead, which no real network does to an
// established TCP stream, and which leaves a MySQL connection desynchronised
// forever.)
type stallToxic struct{}

func (stallToxic) Pipe(stub *toxics.ToxicStub) { <-stub.Interrupt }

func init() { toxics.Register("stall", new(stallToxic)) }

var (
	toxServerOnce sync.Once
	toxServer     *toxiproxy.ApiServer
)

func toxiServer() *toxiproxy.ApiServer {
	toxServerOnce.Do(func() {
		toxServer = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	})
	return toxServer
}

// Proxy is one Toxiproxy proxy, in-process, on a free port of 127.0.0.1.
type Proxy struct {
	Name string
	p    *toxiproxy.Proxy

	mu     sync.Mutex
	toxics []string
	down   bool
}

// NewProxy starts a proxy to upstream (host:port).
func NewProxy(name, upstream string) (*Proxy, error) {
	p := toxiproxy.NewProxy(toxiServer(), name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("proxy %s to %s: %w", name, upstream, err)
	}
	return &Proxy{Name: name, p: p}, nil
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.p.Listen }

func (p *Proxy) add(name, typ, stream, attrs string) error {
	body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
		return fmt.Errorf("proxy %s: add toxic %s: %w", p.Name, name, err)
	}
	p.mu.Lock()
	p.toxics = append(p.toxics, name)
	p.mu.Unlock()
	return nil
}

// Latency delays every chunk of data (each read from a socket: about one TCP
// packet) by ms milliseconds, in both directions.
func (p *Proxy) Latency(ms int) error {
	for _, dir := range []string{"upstream", "downstream"} {
		if err := p.add("latency_"+dir, "latency", dir, fmt.Sprintf(`{"latency":%d}`, ms)); err != nil {
			return err
		}
	}
	return nil
}

// Blackhole stalls both directions of every connection, old and new, until
// Heal. New connections are accepted but see no byte (as a dial through a
// partition whose SYN-ACK got through; the greeting never arrives).
func (p *Proxy) Blackhole() error {
	for _, dir := range []string{"upstream", "downstream"} {
		if err := p.add("stall_"+dir, "stall", dir, `{}`); err != nil {
			return err
		}
	}
	return nil
}

// Heal removes every toxic and brings the proxy back up.
func (p *Proxy) Heal() error {
	p.mu.Lock()
	names := p.toxics
	p.toxics = nil
	down := p.down
	p.down = false
	p.mu.Unlock()
	for _, n := range names {
		if err := p.p.Toxics.RemoveToxic(context.Background(), n); err != nil {
			return fmt.Errorf("proxy %s: remove toxic %s: %w", p.Name, n, err)
		}
	}
	if down {
		return p.p.Start()
	}
	return nil
}

// Down closes every connection and refuses new ones until Heal (a crashed or
// unreachable service whose host answers with RST).
func (p *Proxy) Down() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.p.Stop()
}

// Close stops the proxy for good.
func (p *Proxy) Close() { p.p.Stop() }
