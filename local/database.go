package local

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vmpulse/vmpulse/internal/mariadbd"
)

// startDatabase starts the stack's own MySQL at cfg.MySQLAddr and returns its
// DSN. MariaDB is the default when it is installed: the same engine as Cloud
// SQL's MySQL in speed and behaviour, on a data directory that is deleted when
// the stack stops. The in-memory go-mysql-server is the fallback for machines
// without it: it re-sorts a table on every INSERT, so it manages a few hundred
// records/s and slows as the table grows (see docs/performance.md).
func (s *Stack) startDatabase(ctx context.Context, cfg Config) (string, error) {
	log := cfg.Log
	mode := cfg.Database
	if mode == "" {
		mode = DatabaseAuto
	}
	switch mode {
	case DatabaseAuto, DatabaseMariaDB:
		if _, err := mariadbd.Find(); err != nil {
			if mode == DatabaseMariaDB {
				return "", fmt.Errorf("-database mariadb: %w", err)
			}
			log.Warn("MariaDB is not installed: using the in-memory MySQL stand-in, which falls behind beyond a few hundred records/s; "+mariadbd.Hint+" for the real engine",
				"err", err)
			mode = DatabaseEmbedded
		} else {
			mode = DatabaseMariaDB
		}
	case DatabaseEmbedded:
	default:
		return "", fmt.Errorf("-database %q: want auto, mariadb or embedded", cfg.Database)
	}
	s.Addrs.Database = mode

	// Check the address first, for the error that names the flag.
	ln, err := listen("MySQL", cfg.MySQLAddr, "-mysql-addr")
	if err != nil {
		return "", err
	}
	if mode == DatabaseEmbedded {
		db, err := startMySQL(ln, cfg.DBName)
		if err != nil {
			ln.Close()
			return "", err
		}
		s.infra = append(s.infra, db.Close)
		s.Addrs.MySQL = db.addr
		return db.DSN(cfg.DBName), nil
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // mariadbd binds it next

	start := time.Now()
	tpl, err := mariadbd.CachedTemplate(mariadbd.CacheRoot())
	if err != nil {
		return "", fmt.Errorf("MariaDB for the stack: %w (or run with -database embedded)", err)
	}
	removeStale(log)
	dir, err := os.MkdirTemp("", dataDirPrefix)
	if err != nil {
		return "", fmt.Errorf("MariaDB for the stack: %w", err)
	}
	srv, err := mariadbd.New(ctx, tpl, dir, "vmpulse-up", port)
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("MariaDB for the stack: %w (or run with -database embedded)", err)
	}
	s.infra = append(s.infra, func() error {
		srv.Stop(10 * time.Second)
		return os.RemoveAll(dir)
	})
	s.Addrs.MySQL = srv.Addr()
	log.Info("MariaDB started for this stack (its data is deleted when the stack stops)",
		"addr", srv.Addr(), "pid", srv.PID(), "template_install", tpl.Elapsed.Round(time.Millisecond),
		"took", time.Since(start).Round(time.Millisecond), "dir", dir)
	return srv.DSN(cfg.DBName), nil
}

// dataDirPrefix names the temporary directories of the stacks' MariaDB servers.
const dataDirPrefix = "vmpulse-mariadb-"

// removeStale deletes data directories that stacks killed without a chance to
// clean up left behind: no live server in them, untouched for a minute.
func removeStale(log *slog.Logger) {
	for _, d := range mariadbd.RemoveStale(filepath.Join(os.TempDir(), dataDirPrefix+"*"), time.Minute) {
		log.Info("removed a data directory left by a stack that did not stop cleanly", "dir", d)
	}
}
