package report

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/record"
)

// verdictCases is testdata/verdict-cases.json, which the dashboard is checked
// against too.
type verdictCases struct {
	Cases []struct {
		Name    string `json:"name"`
		Samples []struct {
			Hora string  `json:"hora"`
			CPU  float64 `json:"porcentaje_cpu_uso"`
			RAM  float64 `json:"porcentaje_ram"`
		} `json:"samples"`
		Load *struct {
			Start string `json:"start"`
			Users []struct {
				At    string `json:"at"`
				Users int    `json:"users"`
			} `json:"users"`
		} `json:"load"`
		Want struct {
			Verdict      string  `json:"verdict"`
			CPUP95       float64 `json:"cpu_p95"`
			RAMPeak      float64 `json:"ram_peak"`
			Samples      int     `json:"samples"`
			Explanation  string  `json:"explanation"`
			Crossed      string  `json:"crossed"`
			CrossedUsers *int    `json:"crossed_users"`
			CrossedInS   int     `json:"crossed_in_s"`
		} `json:"want"`
	} `json:"cases"`
}

func hora(t *testing.T, s string) time.Time {
	t.Helper()
	h, err := record.ParseHora(s)
	if err != nil {
		t.Fatal(err)
	}
	return h.Time
}

func TestVerdictCases(t *testing.T) {
	b, err := os.ReadFile("testdata/verdict-cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc verdictCases
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range doc.Cases {
		t.Run(c.Name, func(t *testing.T) {
			var samples []Sample
			for _, s := range c.Samples {
				samples = append(samples, Sample{Hora: hora(t, s.Hora), CPU: s.CPU, RAM: s.RAM})
			}
			var load *Load
			if c.Load != nil {
				load = &Load{Start: hora(t, c.Load.Start)}
				for _, p := range c.Load.Users {
					load.Points = append(load.Points, LoadPoint{At: hora(t, p.At), Users: p.Users})
				}
			}
			got := Judge(samples, load)
			w := c.Want
			if got.Verdict != w.Verdict || got.Explanation != w.Explanation || got.CPUP95 != w.CPUP95 ||
				got.RAMPeak != w.RAMPeak || got.Samples != w.Samples || got.Crossed != w.Crossed {
				t.Errorf("got  %s %q cpu %v ram %v n %d crossed %q\nwant %s %q cpu %v ram %v n %d crossed %q",
					got.Verdict, got.Explanation, got.CPUP95, got.RAMPeak, got.Samples, got.Crossed,
					w.Verdict, w.Explanation, w.CPUP95, w.RAMPeak, w.Samples, w.Crossed)
			}
			if w.CrossedUsers != nil && got.CrossedUsers != *w.CrossedUsers || got.CrossedInS != w.CrossedInS {
				t.Errorf("crossed at %d users %d s in, want %v, %d", got.CrossedUsers, got.CrossedInS, w.CrossedUsers, w.CrossedInS)
			}
			if got.Rule != Rules[got.Verdict] {
				t.Errorf("rule %q", got.Rule)
			}
			seen[got.Verdict] = true
		})
	}
	for _, v := range []string{Insufficient, Fail, Tight, Unstressed, OK} {
		if !seen[v] {
			t.Errorf("no case gives %q", v)
		}
	}
}

func TestElapsed(t *testing.T) {
	for s, want := range map[int]string{0: "0 s", 45: "45 s", 60: "1 min 00 s", 125: "2 min 05 s", 3725: "62 min 05 s"} {
		if got := Elapsed(s); got != want {
			t.Errorf("Elapsed(%d) = %q, want %q", s, got, want)
		}
	}
}
