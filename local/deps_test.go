package local

import (
	"os/exec"
	"strings"
	"testing"
)

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// TestProductionBinariesCarryNoStandIns: the embedded MySQL-compatible server,
// the private MariaDB runner and the embedded Pub/Sub broker are for the local
// stack (and tests) only; the binaries that run in Google Cloud must not link them.
func TestProductionBinariesCarryNoStandIns(t *testing.T) {
	for _, pkg := range []string{
		"../functions/cmd/vmpulse-route", "../functions/cmd/vmpulse-relay",
		"../agent/cmd/vmpulse-agent", "../frontend/cmd/vmpulse-web",
	} {
		for _, dep := range deps(t, pkg) {
			if strings.HasPrefix(dep, "github.com/dolthub/") || strings.HasSuffix(dep, "/pstest") ||
				dep == "github.com/vmpulse/vmpulse/local" || dep == "github.com/vmpulse/vmpulse/local/broker" ||
				dep == "github.com/vmpulse/vmpulse/internal/mariadbd" {
				t.Errorf("%s links %s", pkg, dep)
			}
		}
	}
}

// TestPackagesStayInTheirLane: no command links what only the infrastructure
// tests need (they have modules of their own), and the relay serves its own paths
// without the dashboard's file server (whoever hosts the dashboard mounts it).
func TestPackagesStayInTheirLane(t *testing.T) {
	for _, pkg := range []string{
		"../functions/cmd/vmpulse-route", "../functions/cmd/vmpulse-relay", "../agent/cmd/vmpulse-agent",
		"../frontend/cmd/vmpulse-web", "./cmd/vmpulse-up", "../loadtest/cmd/vmpulse-load",
	} {
		for _, dep := range deps(t, pkg) {
			for _, infra := range []string{"k8s.io/", "sigs.k8s.io/gateway-api", "github.com/hashicorp/hcl", "github.com/zclconf/go-cty"} {
				if strings.HasPrefix(dep, infra) {
					t.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
	for _, dep := range deps(t, "../functions/relay") {
		if strings.HasPrefix(dep, "github.com/vmpulse/vmpulse/frontend") {
			t.Errorf("functions/relay links %s", dep)
		}
	}
}
