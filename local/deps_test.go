package local

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionBinariesCarryNoStandIns: the embedded MySQL-compatible server and
// the Pub/Sub fake are for the local stack only; the binaries that run in Google
// Cloud must not link them.
func TestProductionBinariesCarryNoStandIns(t *testing.T) {
	for _, pkg := range []string{
		"../functions/cmd/vmpulse-route", "../functions/cmd/vmpulse-relay",
		"../agent/cmd/vmpulse-agent", "../frontend/cmd/vmpulse-web",
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "github.com/dolthub/") || strings.HasSuffix(dep, "/pstest") ||
				dep == "github.com/vmpulse/vmpulse/local" {
				t.Errorf("%s links %s", pkg, dep)
			}
		}
	}
}
