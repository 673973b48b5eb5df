package relay

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// hubMetrics are the hub's series; the names are the ones the relay has always
// exported.
type hubMetrics struct {
	clients       prometheus.Gauge
	received      prometheus.Counter
	dupes         prometheus.Counter
	invalid       prometheus.Counter
	frames        prometheus.Counter
	itemsSent     prometheus.Counter
	historyBuilds prometheus.Counter
	dropped       *prometheus.CounterVec
}

// Reasons of vmpulse_relay_clients_dropped_total.
const (
	dropSlow       = "slow"        // fell further behind than the ring holds
	dropWrite      = "write"       // a write failed or timed out
	dropOrigin     = "origin"      // refused: foreign or null Origin
	dropFull       = "full"        // refused: -max-clients reached
	dropPerAddress = "per_address" // refused: -max-per-ip reached
	dropReadLimit  = "read_limit"  // sent a frame over the read limit (closed with 1009)
	dropShutdown   = "shutdown"    // the relay is stopping (closed with 1001)
)

// newHubMetrics declares the hub's series and registers them on reg; a nil reg
// registers nothing (a hub of its own, as in tests).
func newHubMetrics(h *Hub, reg prometheus.Registerer) *hubMetrics {
	f := promauto.With(reg)
	m := &hubMetrics{
		clients: f.NewGauge(prometheus.GaugeOpts{
			Name: "vmpulse_relay_clients", Help: "Connected websocket clients."}),
		received: f.NewCounter(prometheus.CounterOpts{
			Name: "vmpulse_relay_items_received_total", Help: "Records received from Pub/Sub."}),
		dupes: f.NewCounter(prometheus.CounterOpts{
			Name: "vmpulse_relay_duplicates_total", Help: "Records received again (Pub/Sub is at-least-once, and replays overlap) and not forwarded."}),
		invalid: f.NewCounter(prometheus.CounterOpts{
			Name: "vmpulse_relay_invalid_records_total", Help: "Records dropped because their data is not a JSON object."}),
		frames: f.NewCounter(prometheus.CounterOpts{
			Name: "vmpulse_relay_frames_sent_total", Help: "Websocket frames sent, summed over clients."}),
		itemsSent: f.NewCounter(prometheus.CounterOpts{
			Name: "vmpulse_relay_items_sent_total", Help: "Items sent, summed over clients."}),
		historyBuilds: f.NewCounter(prometheus.CounterOpts{
			Name: "vmpulse_relay_history_builds_total", Help: "History frames encoded (shared by the clients that connect while it is fresh)."}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vmpulse_relay_clients_dropped_total", Help: "Clients disconnected or refused by the relay, by reason."}, []string{"reason"}),
	}
	// Each reason's series exists, at 0, before its first drop.
	for _, r := range []string{dropSlow, dropWrite, dropOrigin, dropFull, dropPerAddress, dropReadLimit, dropShutdown} {
		m.dropped.WithLabelValues(r)
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmpulse_relay_history_items", Help: "Records held for new clients."},
		func() float64 { h.mu.Lock(); defer h.mu.Unlock(); return float64(len(h.hist)) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmpulse_relay_history_bytes", Help: "Bytes of encoded records held for new clients."},
		func() float64 { h.mu.Lock(); defer h.mu.Unlock(); return float64(h.histBytes) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmpulse_relay_ring_bytes", Help: "Bytes of live frames held for clients that are behind."},
		func() float64 { h.mu.Lock(); defer h.mu.Unlock(); return float64(h.ringBytes) })
	return m
}
