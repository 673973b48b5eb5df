package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	driver "github.com/go-sql-driver/mysql"
)

// migrations are applied in order and recorded in schema_version. Two route
// replicas may start at once, so each step must be safe to run twice: a step that
// fails because its column, key or table is already there counts as applied.
var migrations = [][]string{{
	// 1: the records table. The primary key on id makes retries idempotent (ids
	// compare byte for byte: "abc" and "ABC" are two records); route
	// says which ingest strategy stored the row; stored_at is the commit time.
	`CREATE TABLE IF NOT EXISTS records (
		id                   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		vm                   VARCHAR(64) NOT NULL,
		route                VARCHAR(16) NOT NULL,
		hora                 DATETIME    NOT NULL,
		total_ram            BIGINT      NOT NULL,
		ram_libre            BIGINT      NOT NULL,
		uso_ram              BIGINT      NOT NULL,
		porcentaje_ram       DOUBLE      NOT NULL,
		porcentaje_cpu_uso   DOUBLE      NOT NULL,
		porcentaje_cpu_libre DOUBLE      NOT NULL,
		procesos_corriendo   INT         NOT NULL,
		total_procesos       INT         NOT NULL,
		procesos_durmiendo   INT         NOT NULL,
		procesos_zombie      INT         NOT NULL,
		procesos_parados     INT         NOT NULL,
		top_procesos         TEXT        NULL,
		stored_at            DATETIME(6) NOT NULL,
		PRIMARY KEY (id),
		KEY records_vm_hora (vm, hora)
	) DEFAULT CHARSET = utf8mb4`,
}, {
	// 2: the outbox. batch is the id of the commit that stored the row (see
	// ingest.BatchIDs: microseconds since the epoch and an instance tag, so batch
	// ranges are time ranges); a commit whose records all reached Pub/Sub gets a
	// row in published_batches, and whatever has none after a grace period is
	// published again from here. source says where the agent read the sample.
	`ALTER TABLE records ADD COLUMN source VARCHAR(16) CHARACTER SET ascii NULL`,
	`ALTER TABLE records ADD COLUMN batch BIGINT NOT NULL DEFAULT 0`,
	`ALTER TABLE records ADD KEY records_batch (batch)`,
	`CREATE TABLE IF NOT EXISTS published_batches (
		batch        BIGINT      NOT NULL,
		published_at DATETIME(6) NOT NULL,
		PRIMARY KEY (batch)
	)`,
}}

// SchemaVersion is the version Migrate brings the database to.
var SchemaVersion = len(migrations)

// Migrate creates or upgrades the schema.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INT         NOT NULL PRIMARY KEY,
		applied_at DATETIME(6) NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: create schema_version: %w", err)
	}
	var current int
	err := s.db.QueryRowContext(ctx, "SELECT version FROM schema_version ORDER BY version DESC LIMIT 1").Scan(&current)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("migrate: read schema_version: %w", err)
	}
	for v := current + 1; v <= len(migrations); v++ {
		for i, step := range migrations[v-1] {
			if _, err := s.db.ExecContext(ctx, step); err != nil && !alreadyApplied(err) {
				return fmt.Errorf("migrate: apply version %d step %d: %w", v, i+1, err)
			}
		}
		if _, err := s.db.ExecContext(ctx,
			"INSERT INTO schema_version (version, applied_at) VALUES (?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE version = version", v); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", v, err)
		}
	}
	return nil
}

// alreadyApplied reports an error saying a migration step's column, key or table
// exists already (another replica applied it first).
func alreadyApplied(err error) bool {
	var me *driver.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1050, 1060, 1061: // table, column, key name exists
			return true
		}
	}
	// The embedded server answers with its own messages.
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "already exists") || strings.Contains(msg, "duplicate column") || strings.Contains(msg, "duplicate key name")
}
