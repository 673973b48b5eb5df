package report

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmpulse/vmpulse/loadtest/internal/browsertest"
)

// The report in a real browser: opened from file://, it must request nothing but its
// own file, and a full-page screenshot must show every section.
func TestReportInChromium(t *testing.T) {
	store, run, dir := scenario(t)
	rep, err := Build(context.Background(), store.DB(), run, Options{RunFile: "run.json"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "report.html")
	var b bytes.Buffer
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	shot := browsertest.Render(t, path)
	browsertest.CheckReport(t, shot, path, []string{"alpha", "beta", "gamma"})
	if out := os.Getenv("REPORT_SCREENSHOT"); out != "" { // to look at it
		os.WriteFile(out, shot.PNG, 0o644)
	}
	t.Logf("page %d px high, %d sections, requests %v", shot.Height, len(shot.Sections), shot.Requests)
	if !strings.HasPrefix(shot.Requests[0], "file://") {
		t.Errorf("requests %v", shot.Requests)
	}
}
