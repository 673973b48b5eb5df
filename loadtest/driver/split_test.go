package driver

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	gmssql "github.com/dolthub/go-mysql-server/sql"
	_ "github.com/go-sql-driver/mysql"
	"github.com/sirupsen/logrus"

	"github.com/vmpulse/vmpulse/record"
)

// memMySQL serves an in-memory MySQL-compatible database for the test.
func memMySQL(t *testing.T) *sql.DB {
	t.Helper()
	logrus.SetLevel(logrus.ErrorLevel) // go-mysql-server logs every connection
	db := memory.NewDatabase("vmpulse")
	db.BaseDatabase.EnablePrimaryKeyIndexes()
	pro := memory.NewDBProvider(db)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Protocol: "tcp", Listener: ln, Address: ln.Addr().String()}
	srv, err := server.NewServer(cfg, sqle.NewDefault(pro), gmssql.NewContext, memory.NewSessionBuilder(pro), nil)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Close() })
	conn, err := sql.Open("mysql", "root@tcp("+ln.Addr().String()+")/vmpulse")
	if err != nil {
		t.Fatal(err)
	}
	conn.SetMaxOpenConns(1)
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Exec("CREATE TABLE records (id VARCHAR(64) NOT NULL PRIMARY KEY, route VARCHAR(16) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestSplitReport(t *testing.T) {
	db := memMySQL(t)
	var raws []json.RawMessage
	var pending []any
	flush := func() {
		t.Helper()
		if len(pending) == 0 {
			return
		}
		q := "INSERT INTO records (id, route) VALUES (?, ?)" + strings.Repeat(", (?, ?)", len(pending)/2-1)
		if _, err := db.Exec(q, pending...); err != nil {
			t.Fatal(err)
		}
		pending = pending[:0]
	}
	insert := func(id, route string) {
		pending = append(pending, id, route)
		if len(pending) == 400 {
			flush()
		}
	}
	// 300 records: 165 on route1, 135 on route2 (+1 below: chi-square 2.79, p 0.095),
	// 300 more rows from elsewhere that the report must ignore, 3 records never stored.
	for i := range 303 {
		id := fmt.Sprintf("ID%05d", i)
		raws = append(raws, sample(id, i))
		switch {
		case i >= 300:
		case i < 165:
			insert(id, "route1")
		default:
			insert(id, "route2")
		}
	}
	for i := range 300 {
		insert(fmt.Sprintf("OTHER%05d", i), "route1")
	}
	noID := sample("", 7)
	r, _ := record.DecodeBatch(noID)
	insert(record.ContentID(r[0]), "route2")
	flush()
	raws = append(raws, noID, sample("ID00001", 1), json.RawMessage(`{"id":"BAD","total_ram":-1}`))
	items, err := ParseRecords(EncodeRecords(raws))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Split(context.Background(), db, items, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FileRecords != 306 || rep.Invalid != 1 || rep.DuplicateIDs != 1 || rep.UniqueKeys != 304 {
		t.Errorf("file: %+v", rep)
	}
	if rep.Found != 301 || len(rep.Missing) != 3 || rep.Missing[0] != "ID00300" || rep.DupRows != 0 {
		t.Errorf("found=%d missing=%v dup=%d", rep.Found, rep.Missing, rep.DupRows)
	}
	if rep.PerRoute["route1"] != 165 || rep.PerRoute["route2"] != 136 {
		t.Errorf("per route %v", rep.PerRoute)
	}
	wantStat := 2 * math.Pow(165-150.5, 2) / 150.5
	if math.Abs(rep.ChiSquare-wantStat) > 1e-9 || rep.P < 0.05 || rep.P > 0.1 || !rep.Consistent || rep.Alpha != 0.001 {
		t.Errorf("chi-square %v (want %v), p %v, consistent %v", rep.ChiSquare, wantStat, rep.P, rep.Consistent)
	}
	if rep.OK() {
		t.Error("OK() with missing records")
	}
	var b strings.Builder
	rep.Write(&b)
	for _, want := range []string{"306 records in the file", "1 invalid", "1 duplicate ids", "301 found in MySQL, 3 missing",
		"missing: ID00300", "route1     165 rows", "consistent with 50/50"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}

	// A lopsided split is flagged.
	var lop []json.RawMessage
	for i := range 200 {
		id := fmt.Sprintf("L%04d", i)
		lop = append(lop, sample(id, i))
		route := "route1"
		if i%4 == 0 {
			route = "route2"
		}
		insert(id, route)
	}
	flush()
	items, _ = ParseRecords(EncodeRecords(lop))
	rep, err = Split(context.Background(), db, items, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Consistent || rep.OK() || rep.P > 1e-6 || len(rep.Missing) != 0 {
		t.Errorf("150/50 judged consistent: %+v", rep)
	}
	b.Reset()
	rep.Write(&b)
	if !strings.Contains(b.String(), "NOT consistent with 50/50") {
		t.Errorf("report:\n%s", b.String())
	}
}
