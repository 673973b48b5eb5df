// Command vmpulse-web serves the vmpulse dashboard on Cloud Run: the built React
// app (frontend/dist) and /config.json, which tells the page where the websocket
// relay is (RELAY_URL) and, optionally, each VM's machine type (MACHINE_TYPES), so
// the same image works for every deployment. GET /healthz
// answers 200 for probes. It logs JSON to stderr and shuts down gracefully on
// SIGTERM (Cloud Run's stop signal).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vmpulse/vmpulse/frontend/web"
	"github.com/vmpulse/vmpulse/internal/flagenv"
	"github.com/vmpulse/vmpulse/internal/httpserve"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, log, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Error("vmpulse-web failed", "err", err)
		stop()
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	addr, dir, relayURL, machineTypes string
}

func parse(args []string, out io.Writer) (options, error) {
	var o options
	fs := flagenv.New("vmpulse-web", "vmpulse-web serves the vmpulse dashboard and its /config.json (the relay URL, read at run time).")
	fs.SetOutput(out)
	fs.String(&o.addr, "addr", "", flagenv.PortAddr(":8080"), "listen address (default :$PORT when PORT is set, else :8080)")
	fs.String(&o.dir, "dir", "WEB_DIR", "/srv/dist", "directory with the built dashboard (frontend/dist: index.html and assets/)")
	fs.String(&o.relayURL, "relay-url", "RELAY_URL", "", "websocket URL of the relay given to the page in /config.json, e.g. wss://vmpulse-relay-xyz.a.run.app/ws; empty: the page uses /ws on its own origin")
	fs.String(&o.machineTypes, "machine-types", "MACHINE_TYPES", "", "each VM's machine type for the dashboard's comparison table, as name=type pairs separated by commas, e.g. vm-small=e2-small,vm-medium=e2-medium (Terraform's VM map); empty: unknown")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := checkRelayURL(o.relayURL); err != nil {
		return o, err
	}
	if _, err := parseMachineTypes(o.machineTypes); err != nil {
		return o, err
	}
	return o, nil
}

// maxMachineTypes bounds -machine-types (the dashboard reads at most 256 as well).
const maxMachineTypes = 256

// parseMachineTypes reads "name=type,name=type" into a map (nil when s is empty).
// Names and types are 1 to 64 characters of letters, digits, '.', '_' and '-'.
func parseMachineTypes(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		name, typ, ok := strings.Cut(pair, "=")
		name, typ = strings.TrimSpace(name), strings.TrimSpace(typ)
		switch {
		case !ok || !validToken(name) || !validToken(typ):
			return nil, fmt.Errorf("-machine-types: entry %q: want name=type, each 1 to 64 letters, digits, '.', '_' or '-'", quoteShort(pair))
		case out[name] != "":
			return nil, fmt.Errorf("-machine-types: VM %q named twice", name)
		}
		out[name] = typ
		if len(out) > maxMachineTypes {
			return nil, fmt.Errorf("-machine-types: more than %d VMs", maxMachineTypes)
		}
	}
	return out, nil
}

func validToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// quoteShort keeps an error message short whatever the input.
func quoteShort(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// checkRelayURL accepts what the page accepts: empty, a path on the page's origin,
// or an absolute ws, wss, http or https URL with a host.
func checkRelayURL(s string) error {
	s = strings.TrimSpace(s)
	if s == "" || (strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//")) {
		return nil
	}
	u, err := url.Parse(s)
	if err == nil && u.Host != "" {
		switch u.Scheme {
		case "ws", "wss", "http", "https":
			return nil
		}
	}
	return fmt.Errorf("-relay-url %q: want a ws:// or wss:// URL (http(s):// is mapped to ws(s)://), a path such as /ws, or empty", s)
}

// run serves until ctx ends. ready, when not nil, receives the listening address.
func run(ctx context.Context, args []string, out io.Writer, log *slog.Logger, ready chan<- string) error {
	o, err := parse(args, out)
	if err != nil {
		return err
	}
	dist := os.DirFS(o.dir)
	if err := web.Check(dist); err != nil {
		return fmt.Errorf("-dir %s: %w", o.dir, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, "ok\n")
	})
	types, _ := parseMachineTypes(o.machineTypes) // checked by parse
	mux.Handle("/", web.Handler(dist, web.Config{RelayURL: strings.TrimSpace(o.relayURL), MachineTypes: types}))

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("vmpulse-web: listen on %s: %w", o.addr, err)
	}
	relay := o.relayURL
	if relay == "" {
		relay = "(same origin /ws)"
	}
	log.Info("vmpulse-web starting", "dir", o.dir, "relay_url", relay, "machine_types", len(types))
	if ready != nil {
		ready <- ln.Addr().String()
	}
	return httpserve.Serve(ctx, log, "vmpulse-web", httpserve.New(o.addr, mux), ln)
}
