// Package testenv gives tests the real components they need: MariaDB/MySQL and
// the Pub/Sub emulator. When one is missing, a test fails in CI (CI=true: the
// component must be installed there, `make test` does it) and is skipped
// elsewhere with a message saying how to get it.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// Missing fails the test in CI and skips it elsewhere.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (CI must provide it): %s", what, how)
	}
	t.Skipf("%s is missing: %s", what, how)
}

// mysqlServerDSN is the DSN of the test server without a database:
// $VMPULSE_TEST_MYSQL, default root@tcp(127.0.0.1:3306)/.
func mysqlServerDSN() string {
	if d := os.Getenv("VMPULSE_TEST_MYSQL"); d != "" {
		return d
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// MySQL creates a fresh database on the test server and returns its DSN; the
// database is dropped when the test ends.
func MySQL(t testing.TB) string {
	t.Helper()
	cfg, err := driver.ParseDSN(mysqlServerDSN())
	if err != nil {
		t.Fatalf("VMPULSE_TEST_MYSQL: %v", err)
	}
	cfg.DBName = ""
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		Missing(t, "MySQL at "+cfg.Addr, "run `make services` (MariaDB on 127.0.0.1:3306, root without password) or set VMPULSE_TEST_MYSQL ("+err.Error()+")")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "vmpulse_test_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	if len(name) > 50 {
		name = name[:50]
	}
	name += "_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec("DROP DATABASE IF EXISTS `" + name + "`")
		db.Close()
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// PubsubEmulator returns the host:port of the Pub/Sub emulator:
// $VMPULSE_TEST_PUBSUB, default 127.0.0.1:8681 (where `make services` starts it).
func PubsubEmulator(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("VMPULSE_TEST_PUBSUB")
	if addr == "" {
		addr = "127.0.0.1:8681"
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		Missing(t, "the Pub/Sub emulator at "+addr, "run `make services` (gcloud beta emulators pubsub start --host-port="+addr+") or set VMPULSE_TEST_PUBSUB")
	}
	c.Close()
	return addr
}

// Unique returns name with a random suffix, for topics and subscriptions shared
// by concurrent test runs on one emulator.
func Unique(name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}
