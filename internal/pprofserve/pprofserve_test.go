package pprofserve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestLoopbackOnly(t *testing.T) {
	for _, a := range []string{"", "127.0.0.1:6060", "localhost:6060", "[::1]:6060"} {
		if err := Check(a); err != nil {
			t.Errorf("Check(%q) = %v", a, err)
		}
	}
	for _, a := range []string{":6060", "0.0.0.0:6060", "10.0.0.1:6060", "example.com:80", "6060"} {
		if err := Check(a); err == nil {
			t.Errorf("Check(%q) accepted a non-loopback address", a)
		}
	}
}

func TestServes(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, addr, slog.New(slog.DiscardHandler)) }()
	var body string
	for i := 0; i < 50; i++ {
		resp, err := http.Get("http://" + addr + "/debug/pprof/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, "goroutine") {
		t.Fatalf("index: %.200s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
