package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestCloudLoggingFields(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelDebug)
	log.Warn("disk almost full", "free_mib", 12, slog.Group("g", "level", "kept"))
	log.Debug("detail")
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	w := lines[0]
	if w["severity"] != "WARNING" || w["message"] != "disk almost full" || w["free_mib"] != 12.0 || w["time"] == nil {
		t.Fatalf("%v", w)
	}
	if _, ok := w["level"]; ok {
		t.Fatal("level kept next to severity")
	}
	if g := w["g"].(map[string]any); g["level"] != "kept" {
		t.Fatalf("a grouped attribute named level was renamed: %v", g)
	}
	if lines[1]["severity"] != "DEBUG" {
		t.Fatalf("%v", lines[1])
	}
	for l, want := range map[slog.Level]string{slog.LevelError + 4: "ERROR", slog.LevelInfo: "INFO", slog.LevelWarn: "WARNING"} {
		if got := Severity(l); got != want {
			t.Errorf("Severity(%v) = %s, want %s", l, got, want)
		}
	}
}
