package driver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmpulse/vmpulse/record"
)

// fixtureCase is one entry of loadtest/testdata/records/expected.json, which
// loadtest/recordsfile_test.py checks too.
type fixtureCase struct {
	File      string         `json:"file"`
	Error     string         `json:"error"`
	Layout    string         `json:"layout"`
	Wrapper   string         `json:"wrapper"`
	Unit      string         `json:"unit"`
	Records   int            `json:"records"`
	Converted int            `json:"converted"`
	Valid     int            `json:"valid"`
	Reason    string         `json:"reason"`
	First     map[string]any `json:"first"`
}

const fixtureDir = "../testdata/records"

func loadFixtures(t *testing.T) []fixtureCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Cases []fixtureCase }
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) < 8 {
		t.Fatalf("expected.json has %d cases", len(doc.Cases))
	}
	return doc.Cases
}

func TestRecordsFileFixtures(t *testing.T) {
	for _, c := range loadFixtures(t) {
		t.Run(c.File, func(t *testing.T) {
			f, err := ReadRecordsFile(filepath.Join(fixtureDir, c.File), UnitAuto)
			if c.Error != "" {
				if err == nil || !strings.Contains(err.Error(), c.Error) {
					t.Fatalf("error %v, want one containing %q", err, c.Error)
				}
				if !strings.Contains(err.Error(), "-ram-unit") && strings.Contains(c.Error, "unit") {
					t.Errorf("the error does not say how to give the unit: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Log(f.Describe())
			if len(f.Items) != c.Records || f.Converted != c.Converted || f.Unit != c.Unit || f.Wrapper != c.Wrapper {
				t.Errorf("%d records, %d converted, unit %q, wrapper %q; want %d, %d, %q, %q",
					len(f.Items), f.Converted, f.Unit, f.Wrapper, c.Records, c.Converted, c.Unit, c.Wrapper)
			}
			if !strings.Contains(f.Layout, c.Layout) || !strings.Contains(f.UnitReason, c.Reason) {
				t.Errorf("layout %q, reason %q; want them to contain %q and %q", f.Layout, f.UnitReason, c.Layout, c.Reason)
			}
			valid := 0
			for _, it := range f.Items {
				if it.Err == nil {
					valid++
				} else {
					t.Logf("record %d: %v", it.Index, it.Err)
				}
			}
			if valid != c.Valid {
				t.Errorf("%d valid records, want %d", valid, c.Valid)
			}
			var first map[string]any
			if err := json.Unmarshal(f.Items[0].Raw, &first); err != nil {
				t.Fatal(err)
			}
			for k, want := range c.First {
				if fmt.Sprint(first[k]) != fmt.Sprint(want) {
					t.Errorf("first record: %s = %v, want %v", k, first[k], want)
				}
			}
		})
	}
}

// TestPeerFileStoresTrueFigures: the peer file's first record, as the ingress
// decodes what the sender posts, says 3.8 GiB of RAM, not 3.8 TiB; without the
// conversion it would have said 4 018 904 MiB.
func TestPeerFileStoresTrueFigures(t *testing.T) {
	f, err := ReadRecordsFile(filepath.Join(fixtureDir, "peer-kib-metrics.json"), UnitAuto)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range f.Items {
		recs, err := record.DecodeBatch(it.Raw)
		if err != nil {
			t.Fatalf("record %d: %v", it.Index, err)
		}
		r := recs[0]
		if r.TotalRAM != 3925 || r.RAMLibre+r.UsoRAM < 3923 || r.RAMLibre+r.UsoRAM > 3927 {
			t.Fatalf("record %d: total %d MiB, free %d + used %d", it.Index, r.TotalRAM, r.RAMLibre, r.UsoRAM)
		}
		if it.Key != r.ID || !strings.Contains(r.ID, "_") {
			t.Fatalf("record %d: key %q, id %q: the peer's ids are kept", it.Index, it.Key, r.ID)
		}
	}
	// Read as MiB on purpose, the same file keeps its figures (the flag wins).
	g, err := ReadRecordsFile(filepath.Join(fixtureDir, "peer-kib-metrics.json"), "mib")
	if err != nil || g.Converted != 0 || !strings.Contains(string(g.Items[0].Raw), `"total_ram":4018904`) {
		t.Fatalf("-ram-unit mib: %v, %d converted, %s", err, g.Converted, g.Items[0].Raw)
	}
}

func TestParseRAMUnit(t *testing.T) {
	for in, want := range map[string]string{"": UnitAuto, "auto": UnitAuto, "KiB": UnitKiB, "kb": UnitKiB, "MB": UnitMiB, "mib": UnitMiB, "bytes": UnitBytes, "B": UnitBytes} {
		if got, err := ParseRAMUnit(in); err != nil || got != want {
			t.Errorf("ParseRAMUnit(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseRAMUnit("GiB"); err == nil || !strings.Contains(err.Error(), "auto, mib, kib or bytes") {
		t.Errorf("GiB: %v", err)
	}
}

func TestUnitRangesTouchWithoutOverlap(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
	}{
		{255, ""}, {256, UnitMiB}, {262143, UnitMiB}, {262144, UnitKiB}, {1 << 28, UnitBytes}, {1<<28 - 1, UnitKiB},
		{1 << 38, ""}, {1004584, UnitKiB} /* e2-micro's MemTotal */, {4018904, UnitKiB}, {2072, UnitMiB}, {8 << 30, UnitBytes},
	} {
		if got := unitOf(c.v); got != c.unit {
			t.Errorf("unitOf(%v) = %q, want %q", c.v, got, c.unit)
		}
	}
}

func TestRecordsFileLayoutErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "empty",
		"nope":                   "not JSON",
		"[1, 2]":                 "element 0 is not a JSON object",
		`{"a": 1}` + "\nx":       "line 2: not a JSON object",
		`{"metrics": 3}`:         `member "metrics": not an array`,
		`{"x": 1}` + "\n[1]":     "line 2: not a JSON object",
		`{"a": [{}], "b": [{}]}`: "neither a record nor holds records",
	} {
		_, err := ParseRecordsFile([]byte(in), UnitAuto)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRecordsFile(%q): %v, want an error containing %q", in, err, want)
		}
	}
}
