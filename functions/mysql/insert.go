package mysql

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/vmpulse/vmpulse/record"
)

// recordColumns are the record's own columns, in the order rowArgs and scanRecord use.
const recordColumns = `id, vm, source, hora, total_ram, ram_libre, uso_ram, porcentaje_ram,
	porcentaje_cpu_uso, porcentaje_cpu_libre, procesos_corriendo, total_procesos,
	procesos_durmiendo, procesos_zombie, procesos_parados, top_procesos`

const columns = recordColumns + `, route, stored_at, batch`

const nColumns = 19

// MaxRowsPerStatement bounds a multi-row INSERT. Parameters are interpolated by
// the driver (no server-side prepared statement, so no 65 535-placeholder limit);
// 5 000 rows of ~500 bytes stay far under max_allowed_packet (16 MiB on MariaDB,
// 64 MiB on MySQL 8.4). A request carries at most record.MaxBatch records, so one
// request is always one statement.
const MaxRowsPerStatement = record.MaxBatch

// onDuplicate keeps the first stored copy of a retried record (idempotency). With
// it, MySQL counts one affected row per inserted row and none for a duplicate, so
// the affected-row count says at no extra cost whether every row was new.
const onDuplicate = " ON DUPLICATE KEY UPDATE id = id"

// Batch identifies one commit: the id and the stored_at written into each of its rows.
type Batch struct {
	ID       int64
	StoredAt time.Time
}

// Result says which records of an insert were not inserted because their id was
// already stored, by an earlier commit or earlier in the same statement.
type Result struct {
	// NotInserted holds the positions, in the records given, of those records.
	NotInserted []int
	// Stored holds the stored copy of each of their ids.
	Stored map[string]record.Record
}

// Writer writes the rows of one ingest strategy: every row it stores is tagged with
// its route.
type Writer struct {
	s     *Store
	route string
}

// Writer returns the writer of route's rows.
func (s *Store) Writer(route string) *Writer { return &Writer{s: s, route: route} }

func rowArgs(dst []any, route string, b Batch, r *record.Record) []any {
	var top, src any // NULL when absent
	if len(r.TopProcesos) > 0 {
		j, _ := json.Marshal(r.TopProcesos) // plain structs always marshal
		top = string(j)
	}
	if r.Source != "" {
		src = r.Source
	}
	return append(dst, r.ID, r.VM, src, r.Hora.Time, r.TotalRAM, r.RAMLibre, r.UsoRAM,
		r.PorcentajeRAM, r.PorcentajeCPUUso, r.PorcentajeCPULibre, r.ProcesosCorriendo,
		r.TotalProcesos, r.ProcesosDurmiendo, r.ProcesosZombie, r.ProcesosParados, top,
		route, b.StoredAt, b.ID)
}

var oneRow = "(" + strings.TrimSuffix(strings.Repeat("?,", nColumns), ",") + ")"

func insertSQL(rows int) string {
	var sb strings.Builder
	sb.Grow(len("INSERT INTO records () VALUES ") + len(columns) + rows*(len(oneRow)+1) + len(onDuplicate))
	sb.WriteString("INSERT INTO records (")
	sb.WriteString(columns)
	sb.WriteString(") VALUES ")
	for i := 0; i < rows; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(oneRow)
	}
	sb.WriteString(onDuplicate)
	return sb.String()
}

var insertOne = insertSQL(1)

// InsertEach stores recs in one transaction with one single-row INSERT per record:
// the route1 strategy (BEGIN, n INSERTs, COMMIT: n + 2 round trips).
func (w *Writer) InsertEach(ctx context.Context, b Batch, recs []record.Record) (Result, error) {
	var res Result
	err := w.s.inTx(ctx, func(exec execFunc, query queryFunc) error {
		res = Result{}
		a := make([]any, 0, nColumns)
		for i := range recs {
			r, err := exec(insertOne, rowArgs(a[:0], w.route, b, &recs[i])...)
			if err != nil {
				return fmt.Errorf("insert record %s: %w", recs[i].ID, err)
			}
			if n, _ := r.RowsAffected(); n == 0 {
				res.NotInserted = append(res.NotInserted, i)
			}
		}
		if len(res.NotInserted) == 0 {
			return nil
		}
		var err error
		res.Stored, err = storedCopies(query, recs, res.NotInserted, b.ID)
		return err
	})
	return res, err
}

// InsertMulti stores recs with one multi-row INSERT in autocommit: the route2
// strategy's group commit. A single statement is atomic in InnoDB, so the group
// needs no BEGIN and COMMIT: one round trip.
func (w *Writer) InsertMulti(ctx context.Context, b Batch, recs []record.Record) (Result, error) {
	if len(recs) > MaxRowsPerStatement {
		return Result{}, fmt.Errorf("insert %d records: at most %d in one statement", len(recs), MaxRowsPerStatement)
	}
	a := make([]any, 0, nColumns*len(recs))
	for i := range recs {
		a = rowArgs(a, w.route, b, &recs[i])
	}
	var r sql.Result
	err := retry(ctx, func() error {
		// A large statement may take its server some time: a millisecond a row on
		// top of the round trip's deadline (5 000 rows: 10 s with the default).
		sctx, cancel := context.WithTimeout(ctx, w.s.stmtTimeout+time.Duration(len(recs))*time.Millisecond)
		defer cancel()
		var err error
		r, err = w.s.db.ExecContext(sctx, insertSQL(len(recs)), a...)
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("insert %d records: %w", len(recs), err)
	}
	if n, _ := r.RowsAffected(); n == int64(len(recs)) {
		return Result{}, nil // every row was new: the common case costs nothing more
	}
	// Some ids were there already: rows of this batch are the new ones.
	stored, err := storedCopies(queryRecords(ctx, w.s.db, w.s.stmtTimeout), recs, nil, b.ID)
	if err != nil {
		return Result{}, err
	}
	res := Result{Stored: map[string]record.Record{}}
	first := map[string]bool{}
	for i := range recs {
		id := recs[i].ID
		if old, ok := stored[id]; ok {
			res.NotInserted = append(res.NotInserted, i)
			res.Stored[id] = old
			continue
		}
		if first[id] { // a second copy in this statement: the first one was stored
			res.NotInserted = append(res.NotInserted, i)
			if _, ok := res.Stored[id]; !ok {
				for j := range recs[:i] {
					if recs[j].ID == id {
						res.Stored[id] = recs[j]
						break
					}
				}
			}
			continue
		}
		first[id] = true
	}
	return res, nil
}

// execFunc and queryFunc run one statement, each with its own deadline; queryFunc
// reads the rows (recordColumns) before its deadline ends.
type (
	execFunc  func(q string, args ...any) (sql.Result, error)
	queryFunc func(q string, args ...any) ([]record.Record, error)
)

type rowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryRecords returns a queryFunc on q with deadlines of d within ctx.
func queryRecords(ctx context.Context, q rowsQuerier, d time.Duration) queryFunc {
	return func(qs string, args ...any) ([]record.Record, error) {
		sctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		rows, err := q.QueryContext(sctx, qs, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []record.Record
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, rows.Err()
	}
}

// storedCopies reads the stored rows, written by another batch than ours, of the
// ids of recs (of those at positions only, when given).
func storedCopies(query queryFunc, recs []record.Record, only []int, ours int64) (map[string]record.Record, error) {
	ids := make([]any, 0, len(recs)+1)
	if only != nil {
		for _, i := range only {
			ids = append(ids, recs[i].ID)
		}
	} else {
		for i := range recs {
			ids = append(ids, recs[i].ID)
		}
	}
	out := map[string]record.Record{}
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		qs := "SELECT " + recordColumns + " FROM records WHERE batch <> ? AND id IN (" +
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",") + ")"
		recs, err := query(qs, append([]any{ours}, chunk...)...)
		if err != nil {
			return nil, fmt.Errorf("read stored copies of retried ids: %w", err)
		}
		for _, r := range recs {
			out[r.ID] = r
		}
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

// scanRecord reads recordColumns into a record.
func scanRecord(s scanner, extra ...any) (record.Record, error) {
	var r record.Record
	var src, top sql.NullString
	var hora time.Time
	dest := append([]any{&r.ID, &r.VM, &src, &hora, &r.TotalRAM, &r.RAMLibre, &r.UsoRAM,
		&r.PorcentajeRAM, &r.PorcentajeCPUUso, &r.PorcentajeCPULibre, &r.ProcesosCorriendo,
		&r.TotalProcesos, &r.ProcesosDurmiendo, &r.ProcesosZombie, &r.ProcesosParados, &top}, extra...)
	if err := s.Scan(dest...); err != nil {
		return r, err
	}
	r.Source = src.String
	r.Hora = record.NewHora(hora)
	if top.Valid && top.String != "" {
		if err := json.Unmarshal([]byte(top.String), &r.TopProcesos); err != nil {
			return r, fmt.Errorf("record %s: top_procesos: %w", r.ID, err)
		}
	}
	return r, nil
}

// inTx runs fn in a transaction and commits, retrying the whole transaction a few
// times when MySQL reports a deadlock or lock wait timeout (safe: inserts are
// idempotent). Every statement, BEGIN and COMMIT included, has its own deadline
// (the store's statement timeout), so a database that stops answering fails the
// transaction within one such deadline however many statements it holds; ctx
// bounds the whole.
func (s *Store) inTx(ctx context.Context, fn func(execFunc, queryFunc) error) error {
	return retry(ctx, func() error { return s.tryTx(ctx, fn) })
}

// retry runs op up to three times while it fails with a deadlock or a lock wait
// timeout.
func retry(ctx context.Context, op func() error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 20 * time.Millisecond):
			}
		}
		err = op()
		if err == nil || !retryable(err) {
			return err
		}
	}
	return err
}

func (s *Store) tryTx(ctx context.Context, fn func(execFunc, queryFunc) error) (err error) {
	// Getting a connection counts as a round trip too: in a partition, new
	// connections stall in their handshake.
	cctx, cancel := context.WithTimeout(ctx, s.stmtTimeout)
	conn, err := s.db.Conn(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("get a connection: %w", err)
	}
	done := false
	defer func() {
		if !done {
			// Roll back, or, when even that fails, drop the connection: the pool
			// must never get it back inside a transaction.
			rctx, cancel := context.WithTimeout(context.Background(), s.stmtTimeout)
			if _, rerr := conn.ExecContext(rctx, "ROLLBACK"); rerr != nil {
				_ = conn.Raw(func(any) error { return sqldriver.ErrBadConn })
			}
			cancel()
		}
		conn.Close()
	}()
	exec := func(q string, args ...any) (sql.Result, error) {
		sctx, cancel := context.WithTimeout(ctx, s.stmtTimeout)
		defer cancel()
		return conn.ExecContext(sctx, q, args...)
	}
	query := queryRecords(ctx, conn, s.stmtTimeout)
	if _, err := exec("START TRANSACTION"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(exec, query); err != nil {
		return err
	}
	if _, err := exec("COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	done = true
	return nil
}

func retryable(err error) bool {
	var me *driver.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205 // deadlock, lock wait timeout
	}
	return false
}

// Permanent reports an error that retrying the same rows cannot fix, as opposed to
// the database being unreachable, slow or overloaded: a row MySQL refuses (data
// too long, out of range, a constraint). Disk full (1114) is not permanent: it
// heals when an operator adds space.
func Permanent(err error) bool {
	var me *driver.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1048, 1264, 1265, 1366, 1406, 1292: // null, out of range, truncated, bad value, too long, bad datetime
		return true
	}
	return false
}

// CountByRoute returns how many rows each route stored (all rows, or only the
// given ids when ids is non-empty).
func (s *Store) CountByRoute(ctx context.Context, ids []string) (map[string]int64, error) {
	out := map[string]int64{}
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var route string
			var n int64
			if err := rows.Scan(&route, &n); err != nil {
				return err
			}
			out[route] += n
		}
		return rows.Err()
	}
	if len(ids) == 0 {
		rows, err := s.db.QueryContext(ctx, "SELECT route, COUNT(*) FROM records GROUP BY route")
		if err != nil {
			return nil, fmt.Errorf("count rows by route: %w", err)
		}
		return out, scan(rows)
	}
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		a := make([]any, len(chunk))
		for i, id := range chunk {
			a[i] = id
		}
		q := "SELECT route, COUNT(*) FROM records WHERE id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",") + ") GROUP BY route"
		rows, err := s.db.QueryContext(ctx, q, a...)
		if err != nil {
			return nil, fmt.Errorf("count rows by route: %w", err)
		}
		if err := scan(rows); err != nil {
			return nil, fmt.Errorf("count rows by route: %w", err)
		}
	}
	return out, nil
}
