package mariadbd

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/internal/testenv"
)

// need skips (locally) or fails (in CI) when MariaDB is not installed.
func need(t *testing.T) {
	t.Helper()
	if _, err := Find(); err != nil {
		testenv.Missing(t, "MariaDB", err.Error())
	}
}

func TestCachedTemplateIsMadeOnceAndReused(t *testing.T) {
	need(t)
	root := t.TempDir()
	// What a killed install leaves: old ones go, a recent one may be running.
	abandoned, recent := filepath.Join(root, installingPrefix+"old"), filepath.Join(root, installingPrefix+"new")
	for _, d := range []string{abandoned, recent} {
		if err := os.MkdirAll(filepath.Join(d, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(abandoned, old, old)
	first, err := CachedTemplate(root)
	if err != nil {
		t.Fatal(err)
	}
	if first.Elapsed == 0 {
		t.Errorf("a fresh cache reports no install time")
	}
	second, err := CachedTemplate(root)
	if err != nil {
		t.Fatal(err)
	}
	if second.Dir != first.Dir || second.Elapsed != 0 {
		t.Errorf("second call: dir %s (first %s), install time %v; want the same directory, reused", second.Dir, first.Dir, second.Elapsed)
	}
	entries, _ := os.ReadDir(root)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 || !strings.HasPrefix(names[1], "mariadb-template-") || names[0] != filepath.Base(recent) {
		t.Errorf("cache holds %v; want the template and the recent install directory, the abandoned one gone", names)
	}
}

func TestServerKeepsCommittedRowsAcrossKill9(t *testing.T) {
	need(t)
	tpl, err := CachedTemplate(CacheRoot())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx := context.Background()
	s, err := New(ctx, tpl, dir, "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(10 * time.Second) })
	if !Running(dir) || s.PID() == 0 {
		t.Fatalf("started, but Running=%v PID=%d", Running(dir), s.PID())
	}
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"CREATE DATABASE t", "CREATE TABLE t.x (n INT PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO t.x VALUES (1), (2), (3)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	s.Kill9()
	if Running(dir) || s.PID() != 0 {
		t.Fatalf("after kill -9: Running=%v PID=%d", Running(dir), s.PID())
	}
	if err := s.Start(ctx); err != nil {
		t.Fatalf("restart after kill -9: %v", err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM t.x").Scan(&n); err != nil || n != 3 {
		t.Errorf("after kill -9 and restart: %d rows (%v), want the 3 committed", n, err)
	}
	if err := s.Start(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a second Start: %v, want 'already running'", err)
	}

	s.Stop(10 * time.Second)
	if Running(dir) {
		t.Errorf("still running after Stop")
	}
	// A directory that holds a server already is refused: cp would nest the
	// template inside its data directory.
	if _, err := New(ctx, tpl, dir, "again", 0); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "data")) {
		t.Errorf("New on a used directory: %v, want an error naming %s", err, filepath.Join(dir, "data"))
	}
}

func TestStartSaysWhyItFailed(t *testing.T) {
	need(t)
	tpl, err := CachedTemplate(CacheRoot())
	if err != nil {
		t.Fatal(err)
	}
	// An option mariadbd does not know makes it exit at once; the error carries
	// the server's own log.
	_, err = New(context.Background(), tpl, t.TempDir(), "bad", 0, "--no-such-option")
	if err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), "no-such-option") {
		t.Errorf("start with a bad option: %v", err)
	}
}
