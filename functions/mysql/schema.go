package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// migrations are applied in order; each must be idempotent (two route replicas may
// start at once) and is recorded in schema_version.
var migrations = []string{
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
}

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
		if _, err := s.db.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("migrate: apply version %d: %w", v, err)
		}
		if _, err := s.db.ExecContext(ctx,
			"INSERT INTO schema_version (version, applied_at) VALUES (?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE version = version", v); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", v, err)
		}
	}
	return nil
}
