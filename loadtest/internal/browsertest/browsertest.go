// Package browsertest opens pages in a real browser for tests: Debian's Chromium,
// headless, driven over the DevTools protocol on a pipe (no port). A page is opened
// from file://, every request it makes is recorded, a proxy that counts connections
// stands in for the network, and a full-page screenshot is taken.
package browsertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/internal/testenv"
)

// ChromiumFlags are the flags the browser tests run Chromium with.
var ChromiumFlags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync"}

type cdp struct {
	w      *os.File
	mu     sync.Mutex
	nextID int
	wait   map[int]chan cdpMsg
	events chan cdpMsg
}

type cdpMsg struct {
	ID        int             `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	Result    json.RawMessage `json:"result"`
	Error     *struct{ Message string }
	SessionID string `json:"sessionId"`
}

func (c *cdp) call(ctx context.Context, session, method string, params any, out any) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpMsg, 1)
	c.wait[id] = ch
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	b, _ := json.Marshal(msg)
	_, err := c.w.Write(append(b, 0))
	c.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (c *cdp) read(r *os.File) {
	br := bufio.NewReader(r)
	for {
		b, err := br.ReadBytes(0)
		if err != nil {
			close(c.events)
			return
		}
		var m cdpMsg
		if json.Unmarshal(bytes.TrimSuffix(b, []byte{0}), &m) != nil {
			continue
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.wait[m.ID]
			delete(c.wait, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		select {
		case c.events <- m:
		default: // nobody listening that fast: drop
		}
	}
}

// Shot is what the browser saw of a page.
type Shot struct {
	Requests []string // URLs the page requested
	Sections []Section
	Height   int
	PNG      []byte
	Proxied  int64    // connections that reached the stand-in network (the browser's own aside)
	Hosts    []string // their hosts
}

// proxiedHost is the host a proxy request line names ("CONNECT h:443 …", "GET http://h/… …").
func proxiedHost(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return line
	}
	h := strings.TrimPrefix(strings.TrimPrefix(f[1], "http://"), "https://")
	h, _, _ = strings.Cut(h, "/")
	h, _, _ = strings.Cut(h, ":")
	return h
}

// browserOwn: Chromium calls Google's update, time, account and hint services by
// itself, whatever the page; the flags turn most but not all of it off. None of
// these hosts serves anything a page could embed (fonts.googleapis.com does: it is
// not one of them).
func browserOwn(host string) bool {
	if host == "fonts.googleapis.com" {
		return false
	}
	return strings.HasSuffix(host, ".google.com") || strings.HasSuffix(host, ".googleapis.com") || strings.HasSuffix(host, ".gvt1.com")
}

type Section struct {
	Section, VM   string
	Top, H, W, Px float64
}

// Render opens path from file:// in headless Chromium and takes a
// full-page screenshot.
func Render(t *testing.T, path string) Shot {
	t.Helper()
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(t, "Chromium", "apt-get install chromium (or set CHROMIUM to its binary)")
	}
	// Any connection the browser opens goes to this listener, which counts it.
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	var proxied atomic.Int64
	var proxyMu sync.Mutex
	var hosts []string
	go func() {
		for {
			c, err := proxy.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			host := proxiedHost(line)
			if browserOwn(host) {
				continue
			}
			proxied.Add(1)
			proxyMu.Lock()
			hosts = append(hosts, host)
			proxyMu.Unlock()
		}
	}()
	toChrome, ours, _ := os.Pipe()
	fromChrome, theirs, _ := os.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(append([]string{}, ChromiumFlags...), "--user-data-dir="+t.TempDir(), "--remote-debugging-pipe",
		"--proxy-server=http://"+proxy.Addr().String(), "--proxy-bypass-list=<-loopback>", "--hide-scrollbars", "about:blank")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.ExtraFiles = []*os.File{toChrome, theirs} // fd 3: commands in, fd 4: answers out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	toChrome.Close()
	theirs.Close()
	c := &cdp{w: ours, wait: map[int]chan cdpMsg{}, events: make(chan cdpMsg, 1024)}
	go c.read(fromChrome)
	defer func() {
		_ = c.call(ctx, "", "Browser.close", map[string]any{}, nil)
		ours.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", stderr.String())
		}
	}()

	var target struct{ TargetID string }
	if err := c.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var att struct{ SessionID string }
	if err := c.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		t.Fatal(err)
	}
	s := att.SessionID
	for _, m := range []string{"Network.enable", "Page.enable"} {
		if err := c.call(ctx, s, m, map[string]any{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.call(ctx, s, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		t.Fatal(err)
	}
	url := "file://" + path
	if err := c.call(ctx, s, "Page.navigate", map[string]any{"url": url}, nil); err != nil {
		t.Fatal(err)
	}
	var shot Shot
	loaded := false
	settle := time.After(30 * time.Second)
	for !loaded {
		select {
		case m, ok := <-c.events:
			if !ok {
				t.Fatalf("chromium went away:\n%s", stderr.String())
			}
			switch m.Method {
			case "Network.requestWillBeSent":
				var p struct{ Request struct{ URL string } }
				json.Unmarshal(m.Params, &p)
				shot.Requests = append(shot.Requests, p.Request.URL)
			case "Page.loadEventFired":
				loaded = true
			}
		case <-settle:
			t.Fatal("the page did not load within 30 s")
		}
	}
	// Anything late (there should be nothing) shows within a short quiet period.
	quiet := time.After(500 * time.Millisecond)
drain:
	for {
		select {
		case m := <-c.events:
			if m.Method == "Network.requestWillBeSent" {
				var p struct{ Request struct{ URL string } }
				json.Unmarshal(m.Params, &p)
				shot.Requests = append(shot.Requests, p.Request.URL)
			}
		case <-quiet:
			break drain
		}
	}
	var ev struct {
		Result struct{ Value string }
	}
	js := `JSON.stringify({h: document.documentElement.scrollHeight, s: [...document.querySelectorAll('[data-section]')].map(e => {
		const r = e.getBoundingClientRect(); return {Section: e.dataset.section, VM: e.dataset.vm || '', Top: r.top + scrollY, H: r.height, W: r.width,
		Px: e.innerText.length}; })})`
	if err := c.call(ctx, s, "Runtime.evaluate", map[string]any{"expression": js, "returnByValue": true}, &ev); err != nil {
		t.Fatal(err)
	}
	var layout struct {
		H int
		S []Section
	}
	if err := json.Unmarshal([]byte(ev.Result.Value), &layout); err != nil {
		t.Fatalf("%v: %s", err, ev.Result.Value)
	}
	shot.Sections, shot.Height = layout.S, layout.H
	var img struct{ Data string }
	if err := c.call(ctx, s, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": 1200, "height": layout.H, "scale": 1}}, &img); err != nil {
		t.Fatal(err)
	}
	shot.PNG, err = base64.StdEncoding.DecodeString(img.Data)
	if err != nil {
		t.Fatal(err)
	}
	shot.Proxied = proxied.Load()
	proxyMu.Lock()
	shot.Hosts = hosts
	proxyMu.Unlock()
	return shot
}

// CheckReport asserts what every report must show in the browser: no request but
// its own file, and each section drawn (non-blank) inside the screenshot.
func CheckReport(t *testing.T, shot Shot, path string, wantVMs []string) {
	t.Helper()
	for _, u := range shot.Requests {
		if u != "file://"+path {
			t.Errorf("the report requested %s", u)
		}
	}
	if shot.Proxied != 0 {
		t.Errorf("the page made the browser open %d network connections: %v", shot.Proxied, shot.Hosts)
	}
	im, err := png.Decode(bytes.NewReader(shot.PNG))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if im.Bounds().Dy() < shot.Height || im.Bounds().Dx() != 1200 {
		t.Errorf("screenshot %v, page height %d", im.Bounds(), shot.Height)
	}
	want := map[string]bool{"run": false, "load": false, "split": false, "race": false}
	vms := map[string]bool{}
	for _, sec := range shot.Sections {
		if sec.H < 40 || sec.W < 300 || sec.Px < 20 {
			t.Errorf("section %s %s is not drawn: %+v", sec.Section, sec.VM, sec)
		}
		if bottom := int(sec.Top + sec.H); bottom > im.Bounds().Dy() {
			t.Errorf("section %s %s ends at %d, below the screenshot (%d)", sec.Section, sec.VM, bottom, im.Bounds().Dy())
		}
		if n := colours(im, image.Rect(0, int(sec.Top), 1200, int(sec.Top+sec.H))); n < 4 {
			t.Errorf("section %s %s is blank in the screenshot (%d colours)", sec.Section, sec.VM, n)
		}
		if sec.Section == "vm" {
			vms[sec.VM] = true
		} else {
			want[sec.Section] = true
		}
	}
	for s, ok := range want {
		if !ok {
			t.Errorf("no %s section", s)
		}
	}
	for _, vm := range wantVMs {
		if !vms[vm] {
			t.Errorf("no section for VM %s (sections: %+v)", vm, shot.Sections)
		}
	}
	if len(vms) != len(wantVMs) {
		t.Errorf("%d VM sections, want %d", len(vms), len(wantVMs))
	}
}

func colours(im image.Image, r image.Rectangle) int {
	r = r.Intersect(im.Bounds())
	seen := map[uint32]bool{}
	for y := r.Min.Y; y < r.Max.Y; y += 3 {
		for x := r.Min.X; x < r.Max.X; x += 3 {
			cr, cg, cb, _ := im.At(x, y).RGBA()
			seen[cr>>8<<16|cg>>8<<8|cb>>8] = true
			if len(seen) > 64 {
				return len(seen)
			}
		}
	}
	return len(seen)
}
