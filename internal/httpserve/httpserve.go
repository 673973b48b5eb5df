// Package httpserve runs an HTTP server until its context ends, then shuts it down
// gracefully: Cloud Run and Kubernetes send SIGTERM and allow a grace period
// (10 s on Cloud Run, 30 s by default on GKE) before killing the process.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ShutdownGrace bounds how long in-flight requests may take to finish.
const ShutdownGrace = 8 * time.Second

// New returns a server with timeouts suited to JSON APIs behind a load balancer.
// Websocket handlers hijack the connection, so the write timeout does not apply to
// them.
func New(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Run listens on srv.Addr and serves until ctx is done, then shuts down.
func Run(ctx context.Context, log *slog.Logger, name string, srv *http.Server) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", name, srv.Addr, err)
	}
	return Serve(ctx, log, name, srv, ln)
}

// Serve is Run on an existing listener.
func Serve(ctx context.Context, log *slog.Logger, name string, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info(name+" listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("%s: serve: %w", name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("%s: serve: %w", name, serr)
	}
	if err != nil {
		return fmt.Errorf("%s: shutdown: %w", name, err)
	}
	log.Info(name + " stopped")
	return nil
}
