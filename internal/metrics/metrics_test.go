package metrics

import (
	"strings"
	"testing"
)

func TestExposition(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("reqs_total", "Requests.", "route", "code")
	c.With("route1", "201").Add(3)
	c.With("route2", "400").Inc()
	g := r.NewGauge("temp", "A \"gauge\"\nwith newline.")
	g.With().Set(1.5)
	r.NewGaugeFunc("up", "Always one.", func() float64 { return 1 })
	h := r.NewHistogram("lat_seconds", "Latency.", []float64{0.1, 0.01, 1}, "route")
	for _, v := range []float64{0.005, 0.05, 0.5, 5} {
		h.With("a\"b").Observe(v)
	}
	var b strings.Builder
	r.Write(&b)
	want := `# HELP reqs_total Requests.
# TYPE reqs_total counter
reqs_total{route="route1",code="201"} 3
reqs_total{route="route2",code="400"} 1
# HELP temp A "gauge"\nwith newline.
# TYPE temp gauge
temp 1.5
# HELP up Always one.
# TYPE up gauge
up 1
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{route="a\"b",le="0.01"} 1
lat_seconds_bucket{route="a\"b",le="0.1"} 2
lat_seconds_bucket{route="a\"b",le="1"} 3
lat_seconds_bucket{route="a\"b",le="+Inf"} 4
lat_seconds_sum{route="a\"b"} 5.555
lat_seconds_count{route="a\"b"} 4
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWrongLabelCountPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewRegistry().NewCounter("x", "x", "a").With()
}
