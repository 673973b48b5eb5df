package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/vmpulse/vmpulse/record"
)

// The outbox side of the store. Every commit writes its batch id into its rows;
// a batch whose records all reached Pub/Sub gets a marker row in
// published_batches. A republisher looks for batches without a marker and
// publishes their rows again, as MySQL holds them. Markers are one small row per
// commit, written off the request path, so the outbox costs the insert path one
// BIGINT column and its index.

// MarkPublished records that every record of these batches reached Pub/Sub.
func (s *Store) MarkPublished(ctx context.Context, batches []int64) error {
	if len(batches) == 0 {
		return nil
	}
	now := time.Now().UTC()
	for start := 0; start < len(batches); start += 1000 {
		chunk := batches[start:min(start+1000, len(batches))]
		a := make([]any, 0, 2*len(chunk))
		for _, b := range chunk {
			a = append(a, b, now)
		}
		q := "INSERT INTO published_batches (batch, published_at) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?,?),", len(chunk)), ",") + " ON DUPLICATE KEY UPDATE batch = batch"
		if _, err := s.db.ExecContext(ctx, q, a...); err != nil {
			return fmt.Errorf("mark %d batches published: %w", len(chunk), err)
		}
	}
	return nil
}

// Unpublished returns, oldest first, up to limit batches with from < batch < to
// that have rows and no marker, with how many records each holds.
func (s *Store) Unpublished(ctx context.Context, from, to int64, limit int) ([]BatchCount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT r.batch, COUNT(*) FROM records r
		LEFT JOIN published_batches p ON p.batch = r.batch
		WHERE r.batch > ? AND r.batch < ? AND p.batch IS NULL
		GROUP BY r.batch ORDER BY r.batch LIMIT ?`, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("look for unpublished batches: %w", err)
	}
	defer rows.Close()
	var out []BatchCount
	for rows.Next() {
		var bc BatchCount
		if err := rows.Scan(&bc.Batch, &bc.Records); err != nil {
			return nil, fmt.Errorf("look for unpublished batches: %w", err)
		}
		out = append(out, bc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look for unpublished batches: %w", err)
	}
	return out, nil
}

// BatchCount is a batch and how many records it stored.
type BatchCount struct {
	Batch   int64
	Records int64
}

// StoredBatch is a batch read back from MySQL: its route, the rows' stored_at, and
// the records as stored.
type StoredBatch struct {
	Route    string
	StoredAt time.Time
	Records  []record.Record
}

// ReadBatches reads the rows of the given batches, in one query.
func (s *Store) ReadBatches(ctx context.Context, batches []int64) (map[int64]*StoredBatch, error) {
	out := make(map[int64]*StoredBatch, len(batches))
	if len(batches) == 0 {
		return out, nil
	}
	a := make([]any, len(batches))
	for i, b := range batches {
		a[i] = b
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+recordColumns+", route, stored_at, batch FROM records WHERE batch IN ("+
		strings.TrimSuffix(strings.Repeat("?,", len(batches)), ",")+") ORDER BY batch, id", a...)
	if err != nil {
		return nil, fmt.Errorf("read %d batches: %w", len(batches), err)
	}
	defer rows.Close()
	for rows.Next() {
		var route string
		var at time.Time
		var batch int64
		r, err := scanRecord(rows, &route, &at, &batch)
		if err != nil {
			return nil, fmt.Errorf("read %d batches: %w", len(batches), err)
		}
		sb := out[batch]
		if sb == nil {
			sb = &StoredBatch{Route: route, StoredAt: at}
			out[batch] = sb
		}
		sb.Records = append(sb.Records, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %d batches: %w", len(batches), err)
	}
	return out, nil
}

// PrunePublished deletes markers of batches older than before, a bounded number at
// a time, and says how many went.
func (s *Store) PrunePublished(ctx context.Context, before int64) (int64, error) {
	r, err := s.db.ExecContext(ctx, "DELETE FROM published_batches WHERE batch < ? LIMIT 10000", before)
	if err != nil {
		return 0, fmt.Errorf("prune published markers: %w", err)
	}
	n, _ := r.RowsAffected()
	return n, nil
}

// Lease is a MySQL named lock held on a connection of its own: while a process
// holds it, no other process holding the same Store's database gets it. It ends
// when released or when its connection dies.
type Lease struct {
	conn *sql.Conn
	name string
}

// Lead tries to take the named lock; it returns nil (and no error) when another
// process holds it. MySQL's lock names are server-wide, so the name is scoped to
// this store's database: routes of another database on the same server (another
// deployment, a test) take their own. The lease's connection comes from a small pool kept for
// locks, so a route pod holds at most its data pool's connections plus one (two
// for a moment while a second attempt is refused).
func (s *Store) Lead(ctx context.Context, name string) (*Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	name = lockName(name, s.dbName)
	conn, err := s.locks.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("take lock %s: %w", name, err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", name).Scan(&got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("take lock %s: %w", name, err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, nil
	}
	return &Lease{conn: conn, name: name}, nil
}

// Held checks, on the lease's own connection, that the lock is still this
// process's (the connection may have been cut and the lock taken by another).
func (l *Lease) Held(ctx context.Context) bool {
	var mine sql.NullBool
	err := l.conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", l.name).Scan(&mine)
	return err == nil && mine.Valid && mine.Bool
}

// Release gives the lock up.
func (l *Lease) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = l.conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", l.name)
	l.conn.Close()
}

// lockName scopes a lock name to a database, within MySQL's 64 characters.
func lockName(name, db string) string {
	full := name + "@" + db
	if len(full) <= 64 {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	return full[:40] + "#" + hex.EncodeToString(sum[:8])
}
