package faults

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// MariaDB binaries; the suite is skipped (or fails in CI) without them.
const (
	mariadbd       = "mariadbd"
	mariadbInstall = "mariadb-install-db"
)

// baseMariaDBArgs are shared by the template and every instance. The redo log is
// written to the OS at each commit but synced once a second
// (innodb_flush_log_at_trx_commit=2): a process crash (kill -9, what these tests
// do) loses nothing the server acknowledged, and the suite does not wait on fsync.
var baseMariaDBArgs = []string{
	"--no-defaults",
	"--skip-log-bin",
	"--skip-name-resolve",
	"--innodb-log-file-size=8M",
	"--innodb-buffer-pool-size=64M",
	"--innodb-flush-log-at-trx-commit=2",
	"--max-connections=400",
}

func rootArgs() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"} // mariadbd refuses to run as root otherwise
	}
	return nil
}

// Template is a data directory made once by mariadb-install-db (about 9 s here,
// mostly fsync) and copied for each instance (a fraction of a second).
type Template struct {
	Dir     string
	Elapsed time.Duration
}

var (
	templateOnce sync.Once
	template     *Template
	templateErr  error
)

// MariaDBTemplate installs the template data directory under root on first use.
func MariaDBTemplate(root string) (*Template, error) {
	templateOnce.Do(func() {
		for _, bin := range []string{mariadbd, mariadbInstall} {
			if _, err := exec.LookPath(bin); err != nil {
				templateErr = fmt.Errorf("%s not found (install MariaDB 10.11: `make deps`): %w", bin, err)
				return
			}
		}
		dir := filepath.Join(root, "mariadb-template")
		start := time.Now()
		args := append([]string{"--datadir=" + dir, "--auth-root-authentication-method=normal", "--skip-test-db"}, baseMariaDBArgs...)
		args = append(args, rootArgs()...)
		out, err := exec.Command(mariadbInstall, args...).CombinedOutput()
		if err != nil {
			templateErr = fmt.Errorf("mariadb-install-db into %s: %w\n%s", dir, err, tail(out, 2000))
			return
		}
		template = &Template{Dir: dir, Elapsed: time.Since(start)}
	})
	return template, templateErr
}

// MariaDB is one private mariadbd on a free port of 127.0.0.1, root without password.
type MariaDB struct {
	Name    string
	Dir     string // instance directory: data/, the socket, the error log
	Port    int
	Extra   []string // extra server options (e.g. the capped tablespace)
	Started time.Duration

	mu  sync.Mutex
	cmd *exec.Cmd
	out *os.File
}

// NewMariaDB copies the template to dir and starts a server there.
func NewMariaDB(ctx context.Context, tpl *Template, dir, name string, extra ...string) (*MariaDB, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if out, err := exec.Command("cp", "-a", tpl.Dir, data).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy the MariaDB template: %w: %s", err, out)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	m := &MariaDB{Name: name, Dir: dir, Port: port, Extra: extra}
	start := time.Now()
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	m.Started = time.Since(start)
	return m, nil
}

// Addr is host:port of the server.
func (m *MariaDB) Addr() string { return "127.0.0.1:" + strconv.Itoa(m.Port) }

// DSN returns a DSN for database db on this server (db may be empty).
func (m *MariaDB) DSN(db string) string { return DSNFor(m.Addr(), db) }

// DSNFor is root without password at addr, database db.
func DSNFor(addr, db string) string {
	c := driver.NewConfig()
	c.User = "root"
	c.Net = "tcp"
	c.Addr = addr
	c.DBName = db
	c.ParseTime = true
	c.Loc = time.UTC
	return c.FormatDSN()
}

// Start runs mariadbd on the instance's data directory and waits until it answers.
func (m *MariaDB) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return errors.New("mariadb " + m.Name + ": already running")
	}
	args := append([]string{}, baseMariaDBArgs...)
	args = append(args,
		"--datadir="+filepath.Join(m.Dir, "data"),
		"--port="+strconv.Itoa(m.Port),
		"--bind-address=127.0.0.1",
		"--socket="+filepath.Join(m.Dir, "sock"),
		"--pid-file="+filepath.Join(m.Dir, "mariadbd.pid"),
	)
	args = append(args, rootArgs()...)
	args = append(args, m.Extra...)
	out, err := os.OpenFile(filepath.Join(m.Dir, "error.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(mariadbd, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start mariadbd %s: %w", m.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	m.cmd, m.out = cmd, out
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	db, _ := sql.Open("mysql", m.DSN(""))
	defer db.Close()
	for {
		pctx, pcancel := context.WithTimeout(waitCtx, time.Second)
		err := db.PingContext(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case werr := <-exited:
			m.cmd = nil
			out.Close()
			log, _ := os.ReadFile(filepath.Join(m.Dir, "error.log"))
			return fmt.Errorf("mariadbd %s exited at start (%v):\n%s", m.Name, werr, tail(log, 3000))
		case <-waitCtx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			m.cmd = nil
			return fmt.Errorf("mariadbd %s did not answer within 60 s: %v", m.Name, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PID of the running server (0 when stopped).
func (m *MariaDB) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Kill9 kills the server with SIGKILL and waits until its port is free.
func (m *MariaDB) Kill9() {
	m.mu.Lock()
	cmd := m.cmd
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	for i := 0; i < 200; i++ { // the process is reaped by Start's goroutine
		if syscall.Kill(cmd.Process.Pid, 0) != nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if m.out != nil {
		m.out.Close()
	}
}

// Close kills the server (its data is temporary).
func (m *MariaDB) Close() { m.Kill9() }

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
