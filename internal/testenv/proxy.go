package testenv

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// LatencyProxy puts a TCP proxy (Toxiproxy, in process) in front of upstream that
// delays the traffic by rtt/2 in each direction, standing in for the network
// between a service and a managed database. It returns the proxy's address; the
// proxy stops when the test ends. Toxiproxy counts whole milliseconds, so rtt is
// rounded to an even number of them.
func LatencyProxy(tb testing.TB, upstream string, rtt time.Duration) string {
	tb.Helper()
	addr, stop, err := StartLatencyProxy(upstream, rtt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return addr
}

// StartLatencyProxy is LatencyProxy outside a test (a benchmark's helper
// process); stop ends it.
func StartLatencyProxy(upstream string, rtt time.Duration) (addr string, stop func(), err error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, Unique("latency"), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", nil, fmt.Errorf("latency proxy to %s: %w", upstream, err)
	}
	half := max(rtt.Milliseconds()/2, 1)
	for _, dir := range []string{"upstream", "downstream"} {
		js := fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`, dir, dir, half)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			p.Stop()
			return "", nil, fmt.Errorf("latency proxy: %w", err)
		}
	}
	return p.Listen, p.Stop, nil
}
