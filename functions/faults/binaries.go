package faults

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Binaries are the route and relay under test, and the flags each accepts (read
// from --help, so that the harness passes a flag only to a binary that has it:
// when the routes gain -token-file or the relay -metrics-addr, the harness uses
// them without a change).
type Binaries struct {
	Route, Relay           string
	RouteFlags, RelayFlags map[string]bool
}

// BuildBinaries builds vmpulse-route and vmpulse-relay from the module that holds
// this package into dir, or takes them from $FAULTS_BIN when it is set.
func BuildBinaries(dir string) (*Binaries, error) {
	if pre := os.Getenv("FAULTS_BIN"); pre != "" {
		dir = pre
	} else {
		root, err := moduleRoot()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command("go", "build", "-o", dir+"/", "./functions/cmd/vmpulse-route", "./functions/cmd/vmpulse-relay")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build the route and relay in %s: %w\n%s", root, err, out)
		}
	}
	b := &Binaries{Route: filepath.Join(dir, "vmpulse-route"), Relay: filepath.Join(dir, "vmpulse-relay")}
	var err error
	if b.RouteFlags, err = helpFlags(b.Route); err != nil {
		return nil, err
	}
	if b.RelayFlags, err = helpFlags(b.Relay); err != nil {
		return nil, err
	}
	return b, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the vmpulse module (go env GOMOD is %q)", mod)
	}
	return filepath.Dir(mod), nil
}

var flagLine = regexp.MustCompile(`^\s+-{1,2}([a-zA-Z0-9][a-zA-Z0-9._-]*)`)

// helpFlags runs bin --help and returns the names of the flags it lists.
func helpFlags(bin string) (map[string]bool, error) {
	out, _ := exec.Command(bin, "--help").CombinedOutput() // exit status varies with the flag package
	flags := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
			flags[m[1]] = true
		}
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("%s --help lists no flags:\n%s", bin, tail(out, 2000))
	}
	return flags, nil
}
