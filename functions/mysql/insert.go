package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/vmpulse/vmpulse/record"
)

const columns = `id, vm, route, hora, total_ram, ram_libre, uso_ram, porcentaje_ram,
	porcentaje_cpu_uso, porcentaje_cpu_libre, procesos_corriendo, total_procesos,
	procesos_durmiendo, procesos_zombie, procesos_parados, top_procesos, stored_at`

const nColumns = 17

// MaxRowsPerStatement keeps a multi-row INSERT under MySQL's 65 535 placeholders
// per prepared statement (17 columns × 3 000 = 51 000) and well under
// max_allowed_packet.
const MaxRowsPerStatement = 3000

// onDuplicate keeps the first stored copy of a retried record (idempotency).
const onDuplicate = " ON DUPLICATE KEY UPDATE id = id"

func args(dst []any, route string, storedAt time.Time, r *record.Record) []any {
	var top any // NULL when absent
	if len(r.TopProcesos) > 0 {
		b, _ := json.Marshal(r.TopProcesos) // plain structs always marshal
		top = string(b)
	}
	return append(dst, r.ID, r.VM, route, r.Hora.Time, r.TotalRAM, r.RAMLibre, r.UsoRAM,
		r.PorcentajeRAM, r.PorcentajeCPUUso, r.PorcentajeCPULibre, r.ProcesosCorriendo,
		r.TotalProcesos, r.ProcesosDurmiendo, r.ProcesosZombie, r.ProcesosParados, top, storedAt)
}

func valuesClause(rows int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", nColumns), ",") + ")"
	return strings.TrimSuffix(strings.Repeat(one+",", rows), ",")
}

var insertOne = "INSERT INTO records (" + columns + ") VALUES " + valuesClause(1) + onDuplicate

// InsertEach stores recs in one transaction with one single-row INSERT per record:
// the route1 strategy.
func (s *Store) InsertEach(ctx context.Context, route string, storedAt time.Time, recs []record.Record) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		a := make([]any, 0, nColumns)
		for i := range recs {
			if _, err := tx.ExecContext(ctx, insertOne, args(a[:0], route, storedAt, &recs[i])...); err != nil {
				return fmt.Errorf("insert record %s: %w", recs[i].ID, err)
			}
		}
		return nil
	})
}

// InsertMulti stores recs in one transaction with multi-row INSERTs of at most
// MaxRowsPerStatement rows: the route2 strategy's group commit.
func (s *Store) InsertMulti(ctx context.Context, route string, storedAt time.Time, recs []record.Record) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return insertMulti(ctx, tx, route, storedAt, recs)
	})
}

func insertMulti(ctx context.Context, tx *sql.Tx, route string, storedAt time.Time, recs []record.Record) error {
	for start := 0; start < len(recs); start += MaxRowsPerStatement {
		chunk := recs[start:min(start+MaxRowsPerStatement, len(recs))]
		q := "INSERT INTO records (" + columns + ") VALUES " + valuesClause(len(chunk)) + onDuplicate
		a := make([]any, 0, nColumns*len(chunk))
		for i := range chunk {
			a = args(a, route, storedAt, &chunk[i])
		}
		if _, err := tx.ExecContext(ctx, q, a...); err != nil {
			return fmt.Errorf("insert %d records: %w", len(chunk), err)
		}
	}
	return nil
}

// inTx runs fn in a transaction and commits, retrying the whole transaction a few
// times when MySQL reports a deadlock or lock wait timeout (safe: inserts are
// idempotent).
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 20 * time.Millisecond):
			}
		}
		err = s.tryTx(ctx, fn)
		if err == nil || !retryable(err) {
			return err
		}
	}
	return err
}

func (s *Store) tryTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func retryable(err error) bool {
	var me *driver.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205 // deadlock, lock wait timeout
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
