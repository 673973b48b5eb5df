// Package report turns a load run into a document to keep: one self-contained HTML
// file (inline CSS and SVG, no scripts, no network) and the same data as JSON. It
// joins what the load commands recorded (the run file: phases, users and latencies
// per second, the routes' 201 bodies) with what MySQL holds (the VMs' samples, the
// route and commit time of every record), and gives each VM its capacity verdict
// (verdict.go).
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vmpulse/vmpulse/loadtest/driver"
)

// RunVersion is the version of the run file's format.
const RunVersion = 1

// Run is the run file: what the load commands did, phase by phase. vmpulse-load and
// both Locust files write it (loadtest/runfile.py is the Python side).
type Run struct {
	Version int       `json:"version"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	Phases  []Phase   `json:"phases"`
}

// Phase is one phase against one agent (collect) or for one VM's records (send).
type Phase struct {
	Phase       string    `json:"phase"` // "collect" or "send"
	Tool        string    `json:"tool"`  // "vmpulse-load" or "locust <version>"
	URL         string    `json:"url"`   // the agent (collect) or the ingress (send)
	VM          string    `json:"vm"`    // the VM whose samples were collected or sent
	Started     time.Time `json:"started"`
	Ended       time.Time `json:"ended"`
	Users       int       `json:"users"`
	SpawnRate   float64   `json:"spawn_rate"`
	Wait        string    `json:"wait"`
	Order       string    `json:"order"` // "parallel" or "sequential" (several agents or VMs)
	RecordsFile string    `json:"records_file"`

	Requests int64           `json:"requests"`
	Failures int64           `json:"failures"`
	Latency  driver.Latency  `json:"latency"`
	Timeline []driver.Second `json:"timeline"`
	// Outcome is "ok" when the phase reached its target, "short" when it did not
	// (Message says what to change), "failed" when it could not run.
	Outcome string `json:"outcome"`
	Message string `json:"message,omitempty"`

	// Collect.
	Goal              int    `json:"goal,omitempty"`     // unique records wanted
	Duration          string `json:"duration,omitempty"` // time limit
	Unique            int    `json:"unique,omitempty"`
	Duplicates        int64  `json:"duplicates,omitempty"`
	AgentInterval     string `json:"agent_interval,omitempty"`      // the agent's sampling interval
	AgentIntervalFrom string `json:"agent_interval_from,omitempty"` // "healthz" or "samples" (inferred)

	// Send.
	RAMUnit   string               `json:"ram_unit,omitempty"` // the unit the file's RAM figures were in
	Records   int                  `json:"records,omitempty"`
	Committed int                  `json:"committed,omitempty"`
	Rejected  int                  `json:"rejected,omitempty"`
	Unsent    int                  `json:"unsent,omitempty"`
	FirstHora string               `json:"first_hora,omitempty"` // the records' sample times
	LastHora  string               `json:"last_hora,omitempty"`
	Routes    map[string]RouteAcks `json:"routes,omitempty"`
}

// RouteAcks is what the 201 bodies of one route said during a send phase.
type RouteAcks struct {
	Records  int       `json:"records"`
	CommitMS []float64 `json:"commit_ms"` // one per acknowledged request
}

// LoadRun reads a run file.
func LoadRun(path string) (*Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("run file %s: %w", path, err)
	}
	if r.Version != RunVersion {
		return nil, fmt.Errorf("run file %s: version %d, this tool reads %d", path, r.Version, RunVersion)
	}
	return &r, nil
}

// Save writes the run file atomically.
func (r *Run) Save(path string) error {
	r.Version = RunVersion
	for _, p := range r.Phases {
		if r.Started.IsZero() || p.Started.Before(r.Started) {
			r.Started = p.Started
		}
		if p.Ended.After(r.Ended) {
			r.Ended = p.Ended
		}
	}
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	return driver.WriteFileAtomic(path, append(b, '\n'))
}

// JoinRun is the run a send phase of recordsFile belongs to: the run in path when a
// collect phase of it wrote recordsFile (the same file, after `make load-collect`),
// otherwise a new run. joined says which.
func JoinRun(path, recordsFile string) (r *Run, joined bool, err error) {
	old, err := LoadRun(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Run{}, false, nil
	}
	if err != nil {
		return &Run{}, false, nil // unreadable or another version: start afresh
	}
	want := absPath(recordsFile)
	for _, p := range old.Phases {
		if p.Phase == "collect" && absPath(p.RecordsFile) == want {
			return old, true, nil
		}
	}
	return &Run{}, false, nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
