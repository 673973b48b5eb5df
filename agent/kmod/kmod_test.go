package kmod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/agent/source"
	"github.com/vmpulse/vmpulse/record"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCPU(t *testing.T) {
	tests := []struct {
		file    string
		want    source.CPUTimes
		wantErr string // substring; "" means success
	}{
		{file: "cpu.json", want: source.CPUTimes{
			User: 1523000000, System: 2810000000, Idle: 30512000000, IOWait: 12000000, SoftIRQ: 4000000,
		}},
		{file: "cpu_missing_idle.json", wantErr: `"idle" is missing`},
		{file: "cpu_truncated.json", wantErr: "invalid JSON"},
		{file: "cpu_negative.json", wantErr: "invalid JSON"},
		{file: "cpu_zero.json", wantErr: `"cpus" is 0`},
		{file: "not_json.txt", wantErr: "invalid JSON"},
		{file: "empty.txt", wantErr: "invalid JSON"},
		{file: "ram.json", wantErr: "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseCPU(fixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRAM(t *testing.T) {
	tests := []struct {
		file    string
		want    source.Mem
		wantErr string
	}{
		{file: "ram.json", want: source.Mem{TotalMiB: 466, AvailableMiB: 412}},
		{file: "ram_libre_above_total.json", wantErr: `"ram_libre" is 500 MiB`},
		{file: "ram_wrong_unit.json", wantErr: `"unit" is "KiB"`},
		{file: "ram_missing_total.json", wantErr: `"total_ram" is missing`},
		{file: "not_json.txt", wantErr: "invalid JSON"},
		{file: "empty.txt", wantErr: "invalid JSON"},
		{file: "cpu.json", wantErr: "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseRAM(fixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseProcs(t *testing.T) {
	tests := []struct {
		file    string
		want    source.Procs
		wantTop []record.Process
		wantErr string
	}{
		{
			file: "procesos.json",
			want: source.Procs{Total: 68, Running: 2, Sleeping: 62, Zombie: 1, Stopped: 1, Other: 2},
			wantTop: []record.Process{
				{PID: 97, Name: "vmpulse-agent", State: "S", RSSMiB: 6},
				{PID: 1, Name: "init", State: "S", RSSMiB: 0},
				{PID: 80, Name: `we"ird\name?`, State: "T", RSSMiB: 0},
			},
		},
		{
			// An older module without procesos_otros: the remainder is Other.
			file:    "procesos_no_otros.json",
			want:    source.Procs{Total: 10, Running: 2, Sleeping: 5, Zombie: 1, Stopped: 1, Other: 1},
			wantTop: []record.Process{},
		},
		{file: "procesos_bad_sum.json", wantErr: "add up to 9, total_procesos is 10"},
		{file: "procesos_above_total.json", wantErr: `"procesos_otros" is negative`},
		{file: "procesos_bad_top.json", wantErr: "top_procesos[0]"},
		{file: "procesos_trailing.json", wantErr: "invalid JSON"},
		{file: "procesos_missing_total.json", wantErr: `"total_procesos" is missing`},
		{file: "not_json.txt", wantErr: "invalid JSON"},
		{file: "empty.txt", wantErr: "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, top, err := ParseProcs(fixture(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if err != nil {
				return
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if !reflect.DeepEqual(top, tt.wantTop) {
				t.Errorf("top = %+v, want %+v", top, tt.wantTop)
			}
		})
	}
}

// Every successful parse of a procesos fixture satisfies the contract: the state
// counts add up to the total, and a record built from it validates.
func TestProcsAddUp(t *testing.T) {
	for _, f := range []string{"procesos.json", "procesos_no_otros.json"} {
		p, top, err := ParseProcs(fixture(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if sum := p.Running + p.Sleeping + p.Zombie + p.Stopped + p.Other; sum != p.Total {
			t.Errorf("%s: states add up to %d, total %d", f, sum, p.Total)
		}
		r := record.Record{
			TotalRAM: 1, PorcentajeCPULibre: 100, Hora: record.NewHora(time.Now()),
			TotalProcesos: p.Total, ProcesosCorriendo: p.Running, ProcesosDurmiendo: p.Sleeping,
			ProcesosZombie: p.Zombie, ProcesosParados: p.Stopped, TopProcesos: top,
		}
		if err := r.Validate(); err != nil {
			t.Errorf("%s: record from it does not validate: %v", f, err)
		}
	}
}

func TestRead(t *testing.T) {
	for _, suffix := range []string{"", "_202201524"} {
		t.Run("suffix="+suffix, func(t *testing.T) {
			root := t.TempDir()
			writeProc(t, root, CPUBase+suffix, "cpu.json")
			writeProc(t, root, RAMBase+suffix, "ram.json")
			if m := Missing(root, suffix); len(m) != 1 || m[0] != filepath.Join(root, ProcsBase+suffix) {
				t.Fatalf("Missing with two of three files = %q", m)
			}
			s := New(root, suffix)
			_, err := s.Read(context.Background())
			missing := filepath.Join(root, ProcsBase+suffix)
			if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("Read without %s: err = %v", missing, err)
			}
			writeProc(t, root, ProcsBase+suffix, "procesos.json")
			if m := Missing(root, suffix); len(m) != 0 {
				t.Fatalf("Missing with all three files = %q", m)
			}
			if m := Missing(root, suffix+"x"); len(m) != 3 {
				t.Fatalf("Missing with another suffix = %q", m)
			}
			if s.Name() != "kmod" {
				t.Errorf("Name() = %q", s.Name())
			}
			r, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if r.Source != "kmod" || r.Mem.TotalMiB != 466 || r.Procs.Total != 68 || r.CPU.Idle != 30512000000 || len(r.Top) != 3 {
				t.Errorf("Read = %+v", r)
			}

			// A malformed file is named in the error.
			writeProc(t, root, RAMBase+suffix, "not_json.txt")
			_, err = s.Read(context.Background())
			if bad := filepath.Join(root, RAMBase+suffix); err == nil || !strings.Contains(err.Error(), bad) {
				t.Errorf("Read with malformed %s: err = %v", bad, err)
			}

			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("Read with cancelled context: err = %v", err)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	cpu, ram, procs := Paths("/proc", "_202201524")
	want := []string{"/proc/cpu_so1_202201524", "/proc/ram_so1_202201524", "/proc/procesos_so1_202201524"}
	if got := []string{cpu, ram, procs}; !reflect.DeepEqual(got, want) {
		t.Errorf("Paths = %v, want %v", got, want)
	}
}

func writeProc(t *testing.T, root, name, fixtureName string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, name), fixture(t, fixtureName), 0o644); err != nil {
		t.Fatal(err)
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}
