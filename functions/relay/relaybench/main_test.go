package main

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/internal/testenv"
)

// TestRecordShape: the benchmark's records are valid JSON of about the asked
// size, with the id the clients parse.
func TestRecordShape(t *testing.T) {
	at := time.Unix(1700000000, 123)
	for seq := int64(0); seq < 50; seq++ {
		b := record(seq, at, 950)
		var r struct {
			ID  string `json:"id"`
			Top []struct {
				Name string `json:"name"`
			} `json:"top_procesos"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("record %d: %v\n%s", seq, err, b)
		}
		if len(b) < 900 || len(b) > 1000 || len(r.Top) != 10 {
			t.Fatalf("record %d: %d bytes, %d processes", seq, len(b), len(r.Top))
		}
		s, rest := digits([]byte(r.ID[2:]))
		n, _ := digits(rest[1:])
		if s != seq || n != at.UnixNano() {
			t.Fatalf("id %s parses as %d, %d", r.ID, s, n)
		}
	}
}

// TestScannerFindsEveryIDOnceAcrossChunks: ids cut anywhere by the chunking are
// found once each, with most of each record skipped.
func TestScannerFindsEveryIDOnceAcrossChunks(t *testing.T) {
	now := time.Now()
	var frame []byte
	frame = append(frame, `{"type":"batch","items":[`...)
	const n = 200
	for i := 0; i < n; i++ {
		if i > 0 {
			frame = append(frame, ',')
		}
		frame = append(frame, `{"route":"route1","commit_ms":1,"stored_at":"x","record":`...)
		frame = append(frame, record(int64(i), now, 950)...)
		frame = append(frame, '}')
	}
	frame = append(frame, "]}"...)
	w := &window{}
	w.start.Store(now.Add(-time.Second).UnixNano())
	w.mid.Store(now.Add(time.Second).UnixNano())
	w.end.Store(now.Add(2 * time.Second).UnixNano())
	for _, size := range []int{1, 7, 8, 47, 48, 49, 100, 475, 1000, 4096, 16 << 10, len(frame)} {
		c := &client{sc: scanner{skip: 475}}
		c.hist[0], c.hist[1] = make([]uint16, nBuckets), make([]uint16, nBuckets)
		buf := make([]byte, size+idTail)
		keep := 0
		for off := 0; off < len(frame); off += size {
			k := copy(buf[keep:], frame[off:min(off+size, len(frame))])
			keep = c.sc.feed(buf[:keep+k], now.UnixNano(), w, c)
		}
		total := 0
		for _, v := range c.hist[0] {
			total += int(v)
		}
		for i := int64(0); i < n; i++ {
			if !c.has(i) {
				t.Fatalf("chunks of %d: id %d not found", size, i)
			}
		}
		if total != n {
			t.Fatalf("chunks of %d: %d latencies for %d ids", size, total, n)
		}
	}
}

// TestMain lets the test binary serve as the reference relay, as relaybench
// itself does when runOnce starts it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serveMinimalArg {
		serveMinimal(os.Args[2:])
		return
	}
	os.Exit(m.Run())
}

// TestMinimalRelayDelivers: the reference design the relay's CPU per byte is
// judged against really delivers every record to every client, and its figures
// come out of the same measurement as the relay's.
func TestMinimalRelayDelivers(t *testing.T) {
	o := options{relay: minimalRelay, rate: 50, duration: 3 * time.Second, warmup: time.Second,
		emulator: testenv.PubsubEmulator(t), size: 950, parallel: 20}
	r, err := runOnce(o, 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", r)
	if r.connected != 20 || r.dropped != 0 || r.missed != 0 || r.nsPerByte <= 0 || r.wirePerItem < 900 {
		t.Fatalf("minimal relay: %d connected, %d dropped, %d missed, %.2f ns/B, %.0f B/item", r.connected, r.dropped, r.missed, r.nsPerByte, r.wirePerItem)
	}
}
