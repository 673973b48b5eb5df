package mysql

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/internal/testenv"
	"github.com/vmpulse/vmpulse/record"
)

func testRecords(prefix string, n int) []record.Record {
	out := make([]record.Record, n)
	h := record.NewHora(time.Date(2025, 6, 17, 2, 21, 54, 0, time.UTC))
	for i := range out {
		out[i] = record.Record{
			ID: fmt.Sprintf("%s-%05d", prefix, i), VM: "vm-1", TotalRAM: 2048, RAMLibre: 1100, UsoRAM: 948,
			PorcentajeRAM: 46.29, PorcentajeCPUUso: 22.5, PorcentajeCPULibre: 77.5, ProcesosCorriendo: 3,
			TotalProcesos: 233, ProcesosDurmiendo: 225, ProcesosZombie: 1, ProcesosParados: 2, Hora: h,
		}
	}
	out[0].TopProcesos = []record.Process{{PID: 1, Name: "init", State: "S", RSSMiB: 12}}
	return out
}

func open(t *testing.T) *Store {
	t.Helper()
	st, err := Open(context.Background(), Config{DSN: testenv.MySQL(t), Wait: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func count(t *testing.T, st *Store, where string, args ...any) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRow("SELECT COUNT(*) FROM records "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrateIsIdempotent(t *testing.T) {
	st := open(t)
	for i := 0; i < 2; i++ {
		if err := st.Migrate(context.Background()); err != nil {
			t.Fatalf("migrate again: %v", err)
		}
	}
	var v int
	if err := st.DB().QueryRow("SELECT MAX(version) FROM schema_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("schema version %d, %v; want %d", v, err, SchemaVersion)
	}
}

func TestInsertEachAndMultiStoreOnce(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	at := time.Now().UTC()
	a := testRecords("a", 50)
	b := testRecords("b", MaxRowsPerStatement+250) // spans two statements
	if err := st.InsertEach(ctx, "route1", at, a); err != nil {
		t.Fatal(err)
	}
	if err := st.InsertMulti(ctx, "route2", at, b); err != nil {
		t.Fatal(err)
	}
	// Retries, including of a record first stored by the other route, change nothing.
	if err := st.InsertMulti(ctx, "route2", at, a[:10]); err != nil {
		t.Fatal(err)
	}
	if err := st.InsertEach(ctx, "route1", at, b[:10]); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, ""); n != len(a)+len(b) {
		t.Fatalf("%d rows, want %d", n, len(a)+len(b))
	}
	got, err := st.CountByRoute(ctx, nil)
	if err != nil || got["route1"] != int64(len(a)) || got["route2"] != int64(len(b)) {
		t.Fatalf("by route %v, %v", got, err)
	}
	some, err := st.CountByRoute(ctx, []string{a[0].ID, b[0].ID, "missing"})
	if err != nil || some["route1"] != 1 || some["route2"] != 1 {
		t.Fatalf("by route for 3 ids: %v, %v", some, err)
	}
	// Values survive the round trip.
	var vm, route, hora, top string
	var cpu float64
	var zombies int
	err = st.DB().QueryRow("SELECT vm, route, hora, porcentaje_cpu_uso, procesos_zombie, top_procesos FROM records WHERE id = ?", a[0].ID).
		Scan(&vm, &route, &hora, &cpu, &zombies, &top)
	if err != nil {
		t.Fatal(err)
	}
	if vm != "vm-1" || route != "route1" || cpu != 22.5 || zombies != 1 || !strings.Contains(top, `"name":"init"`) ||
		!strings.HasPrefix(hora, "2025-06-17") {
		t.Fatalf("row: %s %s %s %v %d %s", vm, route, hora, cpu, zombies, top)
	}
}

// TestIDsAreCaseSensitive: "abc" and "ABC" are different records, as validation
// and the relay treat them; a case-insensitive key would drop one silently.
func TestIDsAreCaseSensitive(t *testing.T) {
	st := open(t)
	recs := testRecords("x", 2)
	recs[0].ID, recs[1].ID = "case-id", "CASE-ID"
	if err := st.InsertMulti(context.Background(), "route2", time.Now(), recs); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, ""); n != 2 {
		t.Fatalf("%d rows for ids differing only in case, want 2", n)
	}
}

func TestFailedTransactionStoresNothing(t *testing.T) {
	st := open(t)
	recs := testRecords("c", 5)
	recs[3].VM = strings.Repeat("x", 200) // longer than the column: the INSERT fails
	// (MySQL 8 and MariaDB ≥ 10.2.4 run in strict mode by default; validation keeps
	// such values from reaching MySQL in the first place.)
	if err := st.InsertEach(context.Background(), "route1", time.Now(), recs); err == nil {
		t.Fatal("a too-long value was accepted: is the server in strict mode?")
	}
	if n := count(t, st, ""); n != 0 {
		t.Fatalf("%d rows after a failed transaction, want 0", n)
	}
}

func TestDriverConfig(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
		check   func(t *testing.T, net, addr, user, db string, cleartext bool)
	}{
		{"dsn", Config{DSN: "u:p@tcp(db:3306)/x"}, "", func(t *testing.T, n, a, u, d string, c bool) {
			if n != "tcp" || a != "db:3306" || d != "x" || c {
				t.Fatal(n, a, d, c)
			}
		}},
		{"dsn without db uses db-name", Config{DSN: "u@tcp(db:3306)/", Database: "vmpulse"}, "", func(t *testing.T, n, a, u, d string, c bool) {
			if d != "vmpulse" {
				t.Fatal(d)
			}
		}},
		{"cloud sql iam", Config{Instance: "p:us-central1:i", IAMAuth: true, User: "route-sa@p.iam", Database: "vmpulse"}, "",
			func(t *testing.T, n, a, u, d string, c bool) {
				if n != "cloudsql" || a != "p:us-central1:i" || u != "route-sa@p.iam" || !c {
					t.Fatal(n, a, u, c)
				}
			}},
		{"bad instance", Config{Instance: "p-i", User: "u", Database: "v"}, "project:region:instance", nil},
		{"iam with password", Config{Instance: "p:r:i", User: "u", Password: "x", IAMAuth: true, Database: "v"}, "IAM", nil},
		{"no user", Config{Instance: "p:r:i", Database: "v"}, "user", nil},
		{"nothing", Config{}, "-mysql-dsn", nil},
		{"no database", Config{DSN: "u@tcp(db:3306)/"}, "database name", nil},
		{"bad dsn", Config{DSN: "not a dsn"}, "-mysql-dsn", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dc, err := driverConfig(c.cfg)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !dc.ParseTime || !dc.InterpolateParams || dc.Loc != time.UTC {
				t.Fatalf("driver config %+v", dc)
			}
			c.check(t, dc.Net, dc.Addr, dc.User, dc.DBName, dc.AllowCleartextPasswords)
		})
	}
}

func TestOpenUnreachableNamesTheAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{DSN: "root@tcp(127.0.0.1:1)/x"}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
}
