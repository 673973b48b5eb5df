package record

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const valid = `{"id":"01JH0000000000000000000000","vm":"vm-1","total_ram":2048,"ram_libre":1100,"uso_ram":948,
"porcentaje_ram":46.3,"porcentaje_cpu_uso":22.5,"porcentaje_cpu_libre":77.5,"procesos_corriendo":3,
"total_procesos":233,"procesos_durmiendo":225,"procesos_zombie":1,"procesos_parados":2,"hora":"2025-06-17 02:21:54"}`

// with returns the valid record with one field replaced (or removed when v is nil).
func with(t *testing.T, field string, v any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(valid), &m); err != nil {
		t.Fatal(err)
	}
	switch v {
	case nil:
		delete(m, field)
	case "null":
		m[field] = nil
	default:
		m[field] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestDecodeValid(t *testing.T) {
	recs, err := DecodeBatch([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if r.ID != "01JH0000000000000000000000" || r.VM != "vm-1" || r.TotalRAM != 2048 || r.PorcentajeCPUUso != 22.5 ||
		r.Hora.String() != "2025-06-17 02:21:54" || r.ProcesosParados != 2 {
		t.Fatalf("decoded %+v", r)
	}
	out, _ := json.Marshal(r)
	again, err := DecodeBatch(out)
	if err != nil || again[0].Hora != r.Hora || again[0].ID != r.ID {
		t.Fatalf("round trip: %s, %v", out, err)
	}
}

func TestInvariants(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		field string
	}{
		{"cpu above 100", with(t, "porcentaje_cpu_uso", 100.5), "porcentaje_cpu_uso"},
		{"cpu libre negative", with(t, "porcentaje_cpu_libre", -1), "porcentaje_cpu_libre"},
		{"ram percent above 100", with(t, "porcentaje_ram", 101), "porcentaje_ram"},
		{"negative running", with(t, "procesos_corriendo", -1), "procesos_corriendo"},
		{"negative total", with(t, "total_procesos", -5), "total_procesos"},
		{"zombies above total", with(t, "procesos_zombie", 500), "procesos_zombie"},
		{"states sum above total", with(t, "procesos_durmiendo", 230), "total_procesos"},
		{"unparsable hora", with(t, "hora", "yesterday"), "hora"},
		{"hora not a string", with(t, "hora", 12), "hora"},
		{"missing hora", with(t, "hora", nil), "hora"},
		{"hora year 0", with(t, "hora", "0000-06-17 02:21:54"), "hora"},
		{"hora past 9999 in UTC", with(t, "hora", "9999-12-31T23:59:59-01:00"), "hora"},
		{"count above INT", with(t, "total_procesos", 2147483648), "total_procesos"},
		{"zero total ram", with(t, "total_ram", 0), "total_ram"},
		{"missing total ram", with(t, "total_ram", nil), "total_ram"},
		{"missing ram libre", with(t, "ram_libre", nil), "ram_libre"},
		{"null cpu", with(t, "porcentaje_cpu_uso", "null"), "porcentaje_cpu_uso"},
		{"missing cpu libre", with(t, "porcentaje_cpu_libre", nil), "porcentaje_cpu_libre"},
		{"missing zombies", with(t, "procesos_zombie", nil), "procesos_zombie"},
		{"missing parados", with(t, "procesos_parados", nil), "procesos_parados"},
		{"ram pair does not add up", with(t, "uso_ram", 900), "uso_ram"},
		{"ram percent inconsistent", with(t, "porcentaje_ram", 60), "porcentaje_ram"},
		{"cpu pair does not add up", with(t, "porcentaje_cpu_libre", 70), "porcentaje_cpu_libre"},
		{"hora in the future", with(t, "hora", time.Now().Add(time.Hour).UTC().Format(HoraLayout)), "hora"},
		{"unknown source", with(t, "source", "guess"), "source"},
		{"free above total", with(t, "ram_libre", 4096), "ram_libre"},
		{"used negative", with(t, "uso_ram", -3), "uso_ram"},
		{"count as string", with(t, "total_procesos", "233"), "total_procesos"},
		{"fractional count", with(t, "procesos_zombie", 1.5), "procesos_zombie"},
		{"id with spaces", with(t, "id", "a b"), "id"},
		{"vm too long", with(t, "vm", strings.Repeat("v", 65)), "vm"},
		{"top pid zero", with(t, "top_procesos", []any{map[string]any{"pid": 0, "name": "x", "state": "R", "rss_mib": 1}}), "top_procesos[0].pid"},
		{"top bad state", with(t, "top_procesos", []any{map[string]any{"pid": 1, "name": "x", "state": "Q", "rss_mib": 1}}), "top_procesos[0].state"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeBatch([]byte(c.body))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FieldError", err)
			}
			if fe.Field != c.field || fe.Index != -1 {
				t.Fatalf("error names field %q index %d (%v), want %q", fe.Field, fe.Index, err, c.field)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Fatalf("message %q does not name %q", err, c.field)
			}
		})
	}
}

// TestConsistencyTolerances: peers round to whole MiB and whole percentages; those
// roundings pass, anything beyond them is refused.
func TestConsistencyTolerances(t *testing.T) {
	ok := []string{
		with(t, "uso_ram", 950),                                                 // 2 MiB over the total
		with(t, "porcentaje_ram", 46),                                           // whole percent
		with(t, "porcentaje_cpu_libre", 78),                                     // 22.5 + 78 = 100.5
		with(t, "hora", "2019-01-02 03:04:05"),                                  // replay of an old collection
		with(t, "source", SourceKmod),                                           // the agent's own field
		with(t, "hora", time.Now().Add(4*time.Minute).UTC().Format(HoraLayout)), // clock skew
	}
	for _, body := range ok {
		if _, err := DecodeBatch([]byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}

// TestErrorsNeverEchoLargeInput: whatever the input, an error message stays short.
func TestErrorsNeverEchoLargeInput(t *testing.T) {
	huge := strings.Repeat("x", 3<<20)
	for _, body := range []string{with(t, "hora", huge), with(t, "id", huge), with(t, "vm", huge), with(t, "source", huge),
		with(t, "hora", map[string]any{"a": huge}), "[" + valid + "," + huge + "]", "{" + huge} {
		_, err := DecodeBatch([]byte(body))
		if err == nil {
			t.Fatal("accepted")
		}
		if len(err.Error()) > 400 {
			t.Errorf("error of %d bytes: %.120s…", len(err.Error()), err)
		}
	}
}

func TestBatchCap(t *testing.T) {
	one := with(t, "id", nil)
	body := "[" + strings.TrimSuffix(strings.Repeat(one+",", MaxBatch), ",") + "]"
	if recs, err := DecodeBatch([]byte(body)); err != nil || len(recs) != MaxBatch {
		t.Fatalf("%d records: %v", len(recs), err)
	}
	body = "[" + strings.Repeat(one+",", MaxBatch) + one + "]"
	var tm *TooManyError
	if _, err := DecodeBatch([]byte(body)); !errors.As(err, &tm) || !strings.Contains(err.Error(), "5000") {
		t.Fatalf("err = %v, want a TooManyError naming the cap", err)
	}
}

func TestVMName(t *testing.T) {
	for in, want := range map[string]string{
		"vm-1": "vm-1", "(none)": "vm", "": "vm", "my host.local": "my-host.local",
		strings.Repeat("a", 80): strings.Repeat("a", MaxVMLen), "--x--": "x", "none": "vm",
	} {
		if got := VMName(in); got != want {
			t.Errorf("VMName(%q) = %q, want %q", in, got, want)
		}
		if err := checkName(VMName(in), MaxVMLen); err != nil {
			t.Errorf("VMName(%q) is not a valid name: %v", in, err)
		}
	}
}

func TestBatch(t *testing.T) {
	recs, err := DecodeBatch([]byte("[" + valid + "," + with(t, "id", "second") + "]"))
	if err != nil || len(recs) != 2 || recs[1].ID != "second" {
		t.Fatalf("%v %v", recs, err)
	}
	_, err = DecodeBatch([]byte("[" + valid + "," + with(t, "porcentaje_ram", 300) + "]"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Index != 1 || fe.Field != "porcentaje_ram" || !strings.HasPrefix(err.Error(), "record 1: porcentaje_ram") {
		t.Fatalf("err = %v", err)
	}
	for _, body := range []string{"", "  ", "[]"} {
		if _, err := DecodeBatch([]byte(body)); !errors.Is(err, ErrEmpty) {
			t.Errorf("DecodeBatch(%q) = %v, want ErrEmpty", body, err)
		}
	}
	for _, body := range []string{"[1,2]", "42", `"x"`, "{", "[{}", "null", "[" + valid + ",]", "[," + valid + "]",
		"[" + valid + " " + valid + "]", "[" + valid + "] x", `["]`} {
		if _, err := DecodeBatch([]byte(body)); err == nil {
			t.Errorf("DecodeBatch(%q): no error", body)
		}
	}
}

// TestPeerFormats: records from other implementations of the assignment (no id,
// no vm, integer percentages, RAM in bytes next to MiB, extra fields, RFC 3339 hora)
// are accepted when internally valid.
func TestPeerFormats(t *testing.T) {
	peer := `{"total_ram":2072,"ram_libre":1710751744,"uso_ram":440,"porcentaje_ram":21,
	"porcentaje_cpu_uso":22,"porcentaje_cpu_libre":78,"procesos_corriendo":123,"total_procesos":400,
	"procesos_durmiendo":65,"procesos_zombie":65,"procesos_parados":65,"hora":"2025-06-17 02:21:54","extra":"ignored"}`
	recs, err := DecodeBatch([]byte(peer))
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if r.ID != "" || r.VM != DefaultVMName {
		t.Fatalf("id %q vm %q", r.ID, r.VM)
	}
	if r.RAMLibre != 1631 { // 1710751744 bytes = 1631.5 MiB
		t.Fatalf("ram_libre = %d, want 1631 (converted from bytes)", r.RAMLibre)
	}
	kib := with(t, "ram_libre", 1126400) // KiB next to a MiB total
	recs, err = DecodeBatch([]byte(kib))
	if err != nil || recs[0].RAMLibre != 1100 {
		t.Fatalf("KiB: %+v %v", recs, err)
	}
	py := with(t, "hora", "2025-06-17T02:21:54.123456") // Python isoformat(), no zone
	recs, err = DecodeBatch([]byte(py))
	if err != nil || recs[0].Hora.String() != "2025-06-17 02:21:54" {
		t.Fatalf("isoformat: %+v %v", recs, err)
	}
	rfc := with(t, "hora", "2025-06-17T04:21:54+02:00")
	recs, err = DecodeBatch([]byte(rfc))
	if err != nil || recs[0].Hora.String() != "2025-06-17 02:21:54" {
		t.Fatalf("RFC 3339: %+v %v", recs, err)
	}
	// The assignment's own example has states adding up to more than the total:
	// that breaks an invariant and is rejected with the field named.
	bad := strings.Replace(peer, `"total_procesos":400`, `"total_procesos":233`, 1)
	if _, err := DecodeBatch([]byte(bad)); err == nil || !strings.Contains(err.Error(), "total_procesos") {
		t.Fatalf("err = %v", err)
	}
}

func TestContentIDStable(t *testing.T) {
	recs, _ := DecodeBatch([]byte(with(t, "id", nil)))
	a := ContentID(recs[0])
	recs[0].ID = "whatever" // the id itself does not count
	if b := ContentID(recs[0]); a != b || !strings.HasPrefix(a, "c-") || len(a) != 28 {
		t.Fatalf("%q vs %q", a, b)
	}
	recs[0].ProcesosZombie++
	if ContentID(recs[0]) == a {
		t.Fatal("different content, same id")
	}
	r := recs[0]
	r.ID = a
	if err := r.Validate(); err != nil {
		t.Fatalf("a content id must be a valid id: %v", err)
	}
}

func TestIDsUniqueAndSorted(t *testing.T) {
	var src IDSource
	now := time.Now()
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 10000; i++ {
		id := src.New(now) // same millisecond: monotonic increment
		if len(id) != 26 || seen[id] || id <= prev {
			t.Fatalf("id %d = %q (prev %q)", i, id, prev)
		}
		seen[id] = true
		prev = id
	}
	later := src.New(now.Add(time.Second))
	if later <= prev {
		t.Fatalf("later id %q sorts before %q", later, prev)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("[" + valid + "," + valid + "]"))
	f.Add([]byte(`{"total_ram":2072,"ram_libre":1710751744,"uso_ram":440,"porcentaje_ram":21,"porcentaje_cpu_uso":22,"porcentaje_cpu_libre":88,"procesos_corriendo":1,"total_procesos":3,"procesos_durmiendo":1,"procesos_zombie":0,"procesos_parados":1,"hora":"2025-06-17 02:21:54"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"hora":"2025-06-17T02:21:54Z","top_procesos":[{"pid":1,"name":"init","state":"S","rss_mib":3}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := DecodeBatch(b)
		if err != nil {
			if len(recs) != 0 {
				t.Fatal("records returned with an error")
			}
			return
		}
		for _, r := range recs {
			// Everything accepted is valid and survives a round trip unchanged.
			if err := r.Validate(); err != nil {
				t.Fatalf("accepted an invalid record: %v", err)
			}
			out, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodeBatch(out)
			if err != nil {
				t.Fatalf("round trip of %s: %v", out, err)
			}
			if again[0].ID != r.ID || again[0].Hora != r.Hora || again[0].TotalProcesos != r.TotalProcesos || again[0].RAMLibre != r.RAMLibre {
				t.Fatalf("round trip changed %+v into %+v", r, again[0])
			}
		}
	})
}

func TestEqual(t *testing.T) {
	recs, err := DecodeBatch([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	a := recs[0]
	b := a
	b.TopProcesos = []Process{}
	if !Equal(a, b) {
		t.Fatal("an empty process list differs from none")
	}
	b.ProcesosZombie++
	if Equal(a, b) {
		t.Fatal("different counts compare equal")
	}
	b = a
	b.TopProcesos = []Process{{PID: 1, Name: "init", State: "S"}}
	if Equal(a, b) {
		t.Fatal("different process lists compare equal")
	}
	b = a
	b.Hora = NewHora(a.Hora.Add(time.Second))
	if Equal(a, b) {
		t.Fatal("different times compare equal")
	}
}
