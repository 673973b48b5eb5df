// Package mysql stores records in MySQL (Cloud SQL for MySQL 8 in production,
// MariaDB in tests, an embedded MySQL-compatible server in local mode). It connects
// through the Cloud SQL Go connector when an instance connection name is given and
// through a plain DSN otherwise, creates its schema at start, and offers the two
// write paths the ingest strategies are built on: one transaction per request with
// single-row INSERTs, and multi-row INSERTs for group commit. Every INSERT is
// idempotent on the record id.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"cloud.google.com/go/cloudsqlconn"
	driver "github.com/go-sql-driver/mysql"
)

// Config says how to reach the database. Exactly one of DSN and Instance is used:
// Instance when set.
type Config struct {
	// DSN is a go-sql-driver/mysql data source name, e.g.
	// "root@tcp(127.0.0.1:3306)/vmpulse".
	DSN string
	// Instance is a Cloud SQL instance connection name "project:region:instance".
	Instance string
	// PrivateIP dials the instance's private IP (from inside its VPC).
	PrivateIP bool
	// IAMAuth logs in with the caller's IAM identity instead of a password; for
	// MySQL, User is then the service account's name (its email up to the "@").
	IAMAuth  bool
	User     string
	Password string
	Database string
	// MaxOpenConns bounds the connection pool (0: 32).
	MaxOpenConns int
	// Wait is how long Open keeps retrying an unreachable database (0: no retry).
	Wait time.Duration
	// StatementTimeout bounds each round trip of the writes (BEGIN, each INSERT,
	// COMMIT): a database that stops answering fails a write within it, however
	// many statements the write holds (0: DefaultStatementTimeout).
	StatementTimeout time.Duration
}

// Network deadlines of every connection (a DSN may set its own).
const (
	DialTimeout = 5 * time.Second
	IOTimeout   = 30 * time.Second
	// DefaultStatementTimeout is Config.StatementTimeout's default.
	DefaultStatementTimeout = 5 * time.Second
)

// Store is a migrated database handle.
type Store struct {
	dbName      string
	db          *sql.DB
	stmtTimeout time.Duration
	locks       *sql.DB
	closeFn     func() error
}

// DB exposes the handle (for tests and reports).
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the pool and the Cloud SQL dialer, if any.
func (s *Store) Close() error {
	err := errors.Join(s.db.Close(), s.locks.Close())
	if s.closeFn != nil {
		err = errors.Join(err, s.closeFn())
	}
	return err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// driverConfig builds the driver configuration for cfg, without dialing.
func driverConfig(cfg Config) (*driver.Config, error) {
	var dc *driver.Config
	if cfg.Instance != "" {
		if strings.Count(cfg.Instance, ":") != 2 {
			return nil, fmt.Errorf("cloud SQL instance %q: want project:region:instance", cfg.Instance)
		}
		if cfg.User == "" {
			return nil, errors.New("cloud SQL: a database user is required")
		}
		if cfg.IAMAuth && cfg.Password != "" {
			return nil, errors.New("cloud SQL: a password must not be given with IAM authentication")
		}
		dc = driver.NewConfig()
		dc.User = cfg.User
		dc.Passwd = cfg.Password
		dc.Net = "cloudsql"
		dc.Addr = cfg.Instance
		dc.DBName = cfg.Database
		if cfg.IAMAuth {
			// The connector puts a short-lived OAuth token in the password; MySQL's IAM
			// plugin receives it over the connector's TLS tunnel as cleartext.
			dc.AllowCleartextPasswords = true
		}
	} else {
		if cfg.DSN == "" {
			return nil, errors.New("no database configured: give a DSN or a Cloud SQL instance")
		}
		var err error
		if dc, err = driver.ParseDSN(cfg.DSN); err != nil {
			return nil, fmt.Errorf("parse the DSN: %w", err)
		}
		if dc.DBName == "" {
			dc.DBName = cfg.Database
		}
	}
	if dc.DBName == "" {
		return nil, errors.New("no database name: give one, or put it in the DSN")
	}
	dc.ParseTime = true
	dc.Loc = time.UTC
	// Deadlines on every network step, so a database that stops answering (a
	// blackholed route, a failover) never hangs a request: dial, then each read
	// and write of a packet. Requests also carry their own, shorter, context
	// deadlines; these are the backstop for work without one.
	if dc.Timeout == 0 {
		dc.Timeout = DialTimeout
	}
	if dc.ReadTimeout == 0 {
		dc.ReadTimeout = IOTimeout
	}
	if dc.WriteTimeout == 0 {
		dc.WriteTimeout = IOTimeout
	}
	// Placeholders are still used everywhere; the driver escapes them client-side,
	// saving a prepare round trip per multi-row statement.
	dc.InterpolateParams = true
	if dc.Params == nil {
		dc.Params = map[string]string{}
	}
	dc.Params["time_zone"] = "'+00:00'"
	return dc, nil
}

// Open connects, waits up to cfg.Wait for the database, and migrates the schema.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	dc, err := driverConfig(cfg)
	if err != nil {
		return nil, err
	}
	st := &Store{stmtTimeout: cfg.StatementTimeout, dbName: dc.DBName}
	if st.stmtTimeout <= 0 {
		st.stmtTimeout = DefaultStatementTimeout
	}
	if cfg.Instance != "" {
		var opts []cloudsqlconn.Option
		opts = append(opts, cloudsqlconn.WithLazyRefresh()) // Cloud Run / scale-to-zero friendly
		if cfg.IAMAuth {
			opts = append(opts, cloudsqlconn.WithIAMAuthN())
		}
		d, err := cloudsqlconn.NewDialer(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("cloud SQL dialer: %w", err)
		}
		var dialOpts []cloudsqlconn.DialOption
		if cfg.PrivateIP {
			dialOpts = append(dialOpts, cloudsqlconn.WithPrivateIP())
		}
		inst := cfg.Instance
		dc.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.Dial(ctx, inst, dialOpts...)
		}
		st.closeFn = d.Close
	}
	// A database that does not exist yet is created (local MariaDB, the embedded
	// server); on Cloud SQL Terraform creates it and the user may lack the right.
	if err := createDatabase(ctx, dc, cfg.Wait, log); err != nil {
		return nil, err
	}
	conn, err := driver.NewConnector(dc)
	if err != nil {
		return nil, fmt.Errorf("mysql connector: %w", err)
	}
	st.db = sql.OpenDB(conn)
	// Named locks (Lead) hold a connection for as long as they last; they get a
	// small pool of their own so they never take one from the data pool.
	st.locks = sql.OpenDB(conn)
	st.locks.SetMaxOpenConns(2)
	st.locks.SetMaxIdleConns(1)
	max := cfg.MaxOpenConns
	if max <= 0 {
		max = 32
	}
	st.db.SetMaxOpenConns(max)
	st.db.SetMaxIdleConns(max)
	st.db.SetConnMaxLifetime(30 * time.Minute)
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// createDatabase waits for the server and creates dc.DBName if it is missing.
func createDatabase(ctx context.Context, dc *driver.Config, wait time.Duration, log *slog.Logger) error {
	server := dc.Clone()
	server.DBName = ""
	conn, err := driver.NewConnector(server)
	if err != nil {
		return fmt.Errorf("mysql connector: %w", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	deadline := time.Now().Add(wait)
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = db.PingContext(pctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("connect to MySQL at %s: %w", dc.Addr, err)
		}
		log.Warn("MySQL not reachable yet; retrying", "addr", dc.Addr, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(attempt)*500*time.Millisecond, 5*time.Second)):
		}
	}
	var exists int
	err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", dc.DBName).Scan(&exists)
	if err != nil {
		return fmt.Errorf("look up database %q: %w", dc.DBName, err)
	}
	if exists > 0 {
		return nil
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(dc.DBName)+" CHARACTER SET utf8mb4"); err != nil {
		return fmt.Errorf("create database %q: %w", dc.DBName, err)
	}
	log.Info("created database", "database", dc.DBName)
	return nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
