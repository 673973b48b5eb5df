// Package pprofserve serves Go's profiler on a loopback address, for an operator
// who wants to profile one pod or instance (kubectl port-forward, then go tool
// pprof). It is off unless an address is given, and refuses any address that is
// not loopback, so it can never be reached from outside.
package pprofserve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Check validates addr: empty (off) or a loopback host with a port.
func Check(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("pprof address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("pprof address %q: the profiler is served on loopback only (127.0.0.1:PORT)", addr)
	}
	return nil
}

// Run serves the profiler on addr until ctx ends; an empty addr does nothing.
func Run(ctx context.Context, addr string, log *slog.Logger) error {
	if err := Check(addr); err != nil || addr == "" {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("profiler listening (loopback only)", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return fmt.Errorf("pprof: %w", err)
	}
	return nil
}
