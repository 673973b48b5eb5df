package loadtest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/loadtest/driver"
)

// TestPythonRecordsFile runs recordsfile.py's own tests, then checks that it and the
// Go driver make the same records of every fixture file (the same figures in MiB).
func TestPythonRecordsFile(t *testing.T) {
	py := python(t)
	out, code := run(t, time.Minute, []string{"PYTHONPATH=loadtest"}, py, "-m", "unittest", "recordsfile_test")
	if code != 0 {
		t.Fatalf("python3 -m unittest recordsfile_test: exit %d\n%s", code, out)
	}
	dir := filepath.Join(repoRoot(t), "loadtest", "testdata", "records")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json*"))
	script := `import json, sys
from recordsfile import read_records_file, RecordsFileError
out = {}
for p in sys.argv[1:]:
    try:
        rf = read_records_file(p)
        out[p] = {"unit": rf.unit, "records": rf.records}
    except RecordsFileError as e:
        out[p] = {"error": str(e)}
print(json.dumps(out))`
	out, code = run(t, time.Minute, []string{"PYTHONPATH=loadtest"}, append([]string{py, "-c", script}, files...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var got map[string]struct {
		Unit    string
		Records []map[string]any
		Error   string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	compared := 0
	for _, p := range files {
		if filepath.Base(p) == "expected.json" {
			continue
		}
		f, err := driver.ReadRecordsFile(p, driver.UnitAuto)
		py := got[p]
		if (err != nil) != (py.Error != "") {
			t.Errorf("%s: Go error %v, Python error %q", filepath.Base(p), err, py.Error)
			continue
		}
		if err != nil {
			continue
		}
		if f.Unit != py.Unit || len(f.Items) != len(py.Records) {
			t.Errorf("%s: Go %s ×%d, Python %s ×%d", filepath.Base(p), f.Unit, len(f.Items), py.Unit, len(py.Records))
			continue
		}
		for i, it := range f.Items {
			var g map[string]any
			json.Unmarshal(it.Raw, &g)
			if !reflect.DeepEqual(g, py.Records[i]) {
				t.Errorf("%s record %d:\n  Go     %s\n  Python %v", filepath.Base(p), i, it.Raw, py.Records[i])
			}
			compared++
		}
	}
	if compared < 50 {
		t.Errorf("compared %d records", compared)
	}
}

// python returns Debian's python3 (the one Locust runs on).
func python(t testing.TB) string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if _, err := os.Stat(p); err == nil || !strings.HasPrefix(p, "/") {
			return p
		}
	}
	missing(t, "python3 is not installed: apt-get install python3")
	return ""
}
