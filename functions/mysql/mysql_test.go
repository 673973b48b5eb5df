package mysql

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
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

func batch(id int64) Batch { return Batch{ID: id, StoredAt: time.Now().UTC()} }

func TestInsertEachAndMultiStoreOnce(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	r1, r2 := st.Writer("route1"), st.Writer("route2")
	a := testRecords("a", 50)
	b := testRecords("b", MaxRowsPerStatement) // the largest single statement
	for _, step := range []struct {
		w    *Writer
		id   int64
		recs []record.Record
		dups int
	}{
		{r1, 1, a, 0}, {r2, 2, b, 0},
		// Retries, including of a record first stored by the other route, change
		// nothing and are reported as not inserted, with the stored copy.
		{r2, 3, a[:10], 10}, {r1, 4, b[:10], 10},
	} {
		var res Result
		var err error
		if step.w == r1 {
			res, err = step.w.InsertEach(ctx, batch(step.id), step.recs)
		} else {
			res, err = step.w.InsertMulti(ctx, batch(step.id), step.recs)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(res.NotInserted) != step.dups || len(res.Stored) != step.dups {
			t.Fatalf("batch %d: %d not inserted, %d stored copies; want %d", step.id, len(res.NotInserted), len(res.Stored), step.dups)
		}
		for _, i := range res.NotInserted {
			if !reflect.DeepEqual(res.Stored[step.recs[i].ID], step.recs[i]) {
				t.Fatalf("stored copy %+v differs from %+v", res.Stored[step.recs[i].ID], step.recs[i])
			}
		}
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
	// What MySQL holds is exactly what was sent, and says which batch stored it.
	got2, err := st.ReadBatches(ctx, []int64{1, 2, 99})
	if err != nil || len(got2) != 2 || got2[1].Route != "route1" || !reflect.DeepEqual(got2[1].Records, a) ||
		got2[2].Route != "route2" || len(got2[2].Records) != len(b) {
		t.Fatalf("batches 1 and 2 read back as %+v (%v); want route1 with the records sent, and route2's", got2[1], err)
	}
}

// TestDuplicateInOneStatement: two copies of an id in one group commit store the
// first and report the second as not inserted, with the first as the stored copy.
func TestDuplicateInOneStatement(t *testing.T) {
	st := open(t)
	recs := testRecords("d", 4)
	recs[3] = recs[1]
	recs[3].ProcesosZombie = 7 // same id, other values
	res, err := st.Writer("route2").InsertMulti(context.Background(), batch(9), recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.NotInserted) != 1 || res.NotInserted[0] != 3 || res.Stored[recs[1].ID].ProcesosZombie != recs[1].ProcesosZombie {
		t.Fatalf("result %+v", res)
	}
	if n := count(t, st, "WHERE procesos_zombie = 7"); n != 0 {
		t.Fatal("the second copy overwrote the first")
	}
}

// TestOutboxQueries: batches without a marker are found in their id range, oldest
// first, with their sizes; marking them hides them; markers are pruned by age.
func TestOutboxQueries(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	w := st.Writer("route2")
	for i, n := range []int{3, 1, 2} {
		if _, err := w.InsertMulti(ctx, batch(int64(100+i)), testRecords(fmt.Sprintf("o%d", i), n)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Unpublished(ctx, 99, 200, 10)
	if err != nil || !reflect.DeepEqual(got, []BatchCount{{100, 3}, {101, 1}, {102, 2}}) {
		t.Fatalf("unpublished %v, %v", got, err)
	}
	if got, _ := st.Unpublished(ctx, 100, 102, 10); !reflect.DeepEqual(got, []BatchCount{{101, 1}}) {
		t.Fatalf("the range is exclusive: %v", got)
	}
	if err := st.MarkPublished(ctx, []int64{100, 102, 100}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Unpublished(ctx, 0, 200, 10); !reflect.DeepEqual(got, []BatchCount{{101, 1}}) {
		t.Fatalf("after marking: %v", got)
	}
	if n, err := st.PrunePublished(ctx, 101); err != nil || n != 1 {
		t.Fatalf("pruned %d, %v", n, err)
	}
}

// TestLeaseIsExclusive: one process at a time holds the republisher's lock; it is
// free again once released.
func TestLeaseIsExclusive(t *testing.T) {
	dsn := testenv.MySQL(t)
	st := open2(t, dsn)
	other := open2(t, dsn) // another process on the same database
	ctx := context.Background()
	name := fmt.Sprintf("vmpulse-test-%d", time.Now().UnixNano())
	l, err := st.Lead(ctx, name)
	if err != nil || l == nil {
		t.Fatalf("first lead: %v %v", l, err)
	}
	if !l.Held(ctx) {
		t.Fatal("the holder does not see its lock")
	}
	if l2, err := other.Lead(ctx, name); err != nil || l2 != nil {
		t.Fatalf("second lead while held: %v %v", l2, err)
	}
	l.Release()
	l2, err := other.Lead(ctx, name)
	if err != nil || l2 == nil {
		t.Fatalf("lead after release: %v %v", l2, err)
	}
	defer l2.Release()
	// Another database on the same server has a lock of its own.
	elsewhere := open(t)
	if l3, err := elsewhere.Lead(ctx, name); err != nil || l3 == nil {
		t.Fatalf("another database's lead: %v %v", l3, err)
	} else {
		l3.Release()
	}
	if n := lockName(strings.Repeat("n", 40), strings.Repeat("d", 64)); len(n) > 64 {
		t.Fatalf("lock name of %d characters", len(n))
	}
}

// TestMigrateFromVersion1: a database created by the first release keeps its rows
// and gains the outbox columns.
func TestMigrateFromVersion1(t *testing.T) {
	dsn := testenv.MySQL(t)
	st, err := Open(context.Background(), Config{DSN: dsn, Wait: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	db := st.DB()
	for _, q := range []string{"DROP TABLE records", "DROP TABLE published_batches", "DELETE FROM schema_version WHERE version > 1", migrations[0][0],
		`INSERT INTO records (id, vm, route, hora, total_ram, ram_libre, uso_ram, porcentaje_ram, porcentaje_cpu_uso,
			porcentaje_cpu_libre, procesos_corriendo, total_procesos, procesos_durmiendo, procesos_zombie, procesos_parados, stored_at)
			VALUES ('old', 'vm-1', 'route1', NOW(), 2048, 1100, 948, 46.3, 1, 99, 1, 10, 9, 0, 0, NOW())`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	st.Close()
	st = open2(t, dsn)
	if n := count(t, st, "WHERE id = 'old' AND batch = 0 AND source IS NULL"); n != 1 {
		t.Fatalf("the old row after migrating: %d", n)
	}
}

func open2(t *testing.T, dsn string) *Store {
	t.Helper()
	st, err := Open(context.Background(), Config{DSN: dsn, Wait: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestIDsAreCaseSensitive: "abc" and "ABC" are different records, as validation
// and the relay treat them; a case-insensitive key would drop one silently.
func TestIDsAreCaseSensitive(t *testing.T) {
	st := open(t)
	recs := testRecords("x", 2)
	recs[0].ID, recs[1].ID = "case-id", "CASE-ID"
	if _, err := st.Writer("route2").InsertMulti(context.Background(), batch(1), recs); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, ""); n != 2 {
		t.Fatalf("%d rows for ids differing only in case, want 2", n)
	}
}

func TestFailedWritesStoreNothing(t *testing.T) {
	st := open(t)
	recs := testRecords("c", 5)
	recs[3].VM = strings.Repeat("x", 200) // longer than the column: the INSERT fails
	// (MySQL 8 and MariaDB ≥ 10.2.4 run in strict mode by default; validation keeps
	// such values from reaching MySQL in the first place.)
	w := st.Writer("route1")
	_, err := w.InsertEach(context.Background(), batch(1), recs)
	if err == nil {
		t.Fatal("a too-long value was accepted: is the server in strict mode?")
	}
	if !Permanent(err) {
		t.Fatalf("a refused row is not reported as permanent: %v", err)
	}
	if _, err := w.InsertMulti(context.Background(), batch(2), recs); err == nil || !Permanent(err) {
		t.Fatalf("multi-row: %v", err)
	}
	if n := count(t, st, ""); n != 0 {
		t.Fatalf("%d rows after failed writes, want 0", n)
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
		{"nothing", Config{}, "DSN", nil},
		{"no database", Config{DSN: "u@tcp(db:3306)/"}, "database name", nil},
		{"bad dsn", Config{DSN: "not a dsn"}, "DSN", nil},
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

// TestNetworkDeadlines: every connection has dial, read and write deadlines, so a
// database that stops answering never hangs a request; a DSN may set its own.
func TestNetworkDeadlines(t *testing.T) {
	dc, err := driverConfig(Config{DSN: "u@tcp(db:3306)/x"})
	if err != nil || dc.Timeout != DialTimeout || dc.ReadTimeout != IOTimeout || dc.WriteTimeout != IOTimeout {
		t.Fatalf("%v %v %v %v", dc.Timeout, dc.ReadTimeout, dc.WriteTimeout, err)
	}
	dc, err = driverConfig(Config{DSN: "u@tcp(db:3306)/x?timeout=1s&readTimeout=2s"})
	if err != nil || dc.Timeout != time.Second || dc.ReadTimeout != 2*time.Second || dc.WriteTimeout != IOTimeout {
		t.Fatalf("%v %v %v %v", dc.Timeout, dc.ReadTimeout, dc.WriteTimeout, err)
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
