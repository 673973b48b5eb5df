package main

import (
	"encoding/json"
	"testing"
	"time"
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
