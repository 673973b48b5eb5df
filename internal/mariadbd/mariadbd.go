// Package mariadbd runs private MariaDB servers: each on its own data directory
// and a port of 127.0.0.1, root without a password, started from a template data
// directory that mariadb-install-db makes once. `make up` runs one as its local
// database (the real engine, so the local pipeline is as fast as it is with
// Cloud SQL's); the fault suite runs one per scenario, to kill and restart
// without touching anybody else's server.
//
// The servers are for throwaway data: the redo log is written to the OS at each
// commit and synced once a second (innodb_flush_log_at_trx_commit=2), so a
// process crash (kill -9) loses nothing the server acknowledged, while a power
// cut may lose the last second.
package mariadbd

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// Hint says how to get MariaDB when it is missing.
const Hint = "install MariaDB: `make deps`, or `apt-get install mariadb-server`"

// baseArgs are shared by the template and every server.
var baseArgs = []string{
	"--no-defaults",
	"--skip-log-bin",
	"--skip-name-resolve",
	"--innodb-log-file-size=8M",
	"--innodb-buffer-pool-size=64M",
	"--innodb-flush-log-at-trx-commit=2",
	"--max-connections=400",
}

// rootArgs lets mariadbd run as root, which it refuses otherwise.
func rootArgs() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

// Binaries are the paths of mariadbd and mariadb-install-db. Debian puts the
// server in /usr/sbin, which is not on a user's PATH.
type Binaries struct{ Server, Install string }

// Find locates the binaries on PATH or in the usual directories.
func Find() (Binaries, error) {
	var b Binaries
	for _, x := range []struct {
		name string
		dst  *string
	}{{"mariadbd", &b.Server}, {"mariadb-install-db", &b.Install}} {
		p, err := exec.LookPath(x.name)
		if err != nil {
			for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin"} {
				if st, serr := os.Stat(filepath.Join(dir, x.name)); serr == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
					p, err = filepath.Join(dir, x.name), nil
					break
				}
			}
		}
		if err != nil {
			return Binaries{}, fmt.Errorf("%s not found (%s)", x.name, Hint)
		}
		*x.dst = p
	}
	return b, nil
}

// Template is a data directory made by mariadb-install-db (about 9 s on the
// 2-core machine the fault suite was measured on, mostly fsync) and copied for
// each server (a fraction of a second).
type Template struct {
	Dir     string
	Bin     Binaries
	Elapsed time.Duration // how long the install took (0 when reused)
}

// installArgs are mariadb-install-db's options besides the data directory; the
// template cache is keyed by them.
func installArgs() []string {
	args := append([]string{"--auth-root-authentication-method=normal", "--skip-test-db"}, baseArgs...)
	return append(args, rootArgs()...)
}

// newTemplate installs a template data directory at dir, which must not exist.
func newTemplate(bin Binaries, dir string) (*Template, error) {
	start := time.Now()
	args := append([]string{"--datadir=" + dir}, installArgs()...)
	cmd := exec.Command(bin.Install, args...)
	// mariadb-install-db looks for mariadbd on PATH and in its own directory.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin.Server)+string(os.PathListSeparator)+os.Getenv("PATH"))
	// Its bootstrap server dies with the parent, instead of running on alone
	// in a directory that is about to be deleted.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db into %s: %w\n%s", dir, err, tail(out, 2000))
	}
	return &Template{Dir: dir, Bin: bin, Elapsed: time.Since(start)}, nil
}

// CachedTemplate returns the template kept under root for this MariaDB version,
// installing it on first use. Processes that race to install it each install
// their own copy and the first to finish wins, so it is never half made.
func CachedTemplate(root string) (*Template, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bin.Server, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", bin.Server, err)
	}
	// Another MariaDB, user or set of options makes another template.
	sum := sha256.Sum256(fmt.Appendf(out, "%d %q", os.Geteuid(), installArgs()))
	dir := filepath.Join(root, "mariadb-template-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(dir, "mysql")); err == nil {
		return &Template{Dir: dir, Bin: bin}, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("MariaDB template cache: %w", err)
	}
	// An install takes seconds: one untouched for ten minutes is nobody's.
	RemoveStale(filepath.Join(root, installingPrefix+"*"), 10*time.Minute)
	tmp, err := os.MkdirTemp(root, installingPrefix)
	if err != nil {
		return nil, fmt.Errorf("MariaDB template cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	tpl, err := newTemplate(bin, filepath.Join(tmp, "data"))
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tpl.Dir, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "mysql")); serr != nil {
			return nil, fmt.Errorf("MariaDB template cache: %w", err)
		}
		// another process finished first: use its copy
	}
	tpl.Dir = dir
	return tpl, nil
}

// installingPrefix names the directories templates are installed in before
// they are renamed into place.
const installingPrefix = ".installing-"

// RemoveStale deletes the directories matching pattern (a filepath.Glob
// pattern) that processes killed without a chance to clean up left behind: no
// server running in them (Running), untouched for age. It returns those it
// removed.
func RemoveStale(pattern string, age time.Duration) []string {
	dirs, _ := filepath.Glob(pattern)
	var removed []string
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() || time.Since(st.ModTime()) < age || Running(d) {
			continue
		}
		if os.RemoveAll(d) == nil {
			removed = append(removed, d)
		}
	}
	return removed
}

// PIDFile is the file in a server's directory that holds its process id while
// it runs.
const PIDFile = "mariadbd.pid"

// Running reports whether a server runs in dir: its PIDFile names a live process.
func Running(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, PIDFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && pid > 0 && syscall.Kill(pid, 0) == nil
}

// Server is one private mariadbd on 127.0.0.1.
type Server struct {
	Name    string
	Dir     string // its directory: data/, the socket, the error log
	Port    int
	Extra   []string      // extra server options (e.g. a capped tablespace)
	Started time.Duration // how long the first start took

	bin Binaries
	mu  sync.Mutex
	cmd *exec.Cmd
	out *os.File
	// exited is closed when the running process has been reaped.
	exited chan struct{}
}

// New copies the template to dir/data and starts a server there on port (0:
// a free one).
func New(ctx context.Context, tpl *Template, dir, name string, port int, extra ...string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(data); err == nil { // cp would copy the template inside it
		return nil, fmt.Errorf("MariaDB data directory %s exists already", data)
	}
	if out, err := exec.Command("cp", "-a", tpl.Dir, data).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy the MariaDB template: %w: %s", err, out)
	}
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	s := &Server{Name: name, Dir: dir, Port: port, Extra: extra, bin: tpl.Bin}
	start := time.Now()
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	s.Started = time.Since(start)
	return s, nil
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// DSN returns a DSN for database db on this server (db may be empty).
func (s *Server) DSN(db string) string { return DSN(s.Addr(), db) }

// DSN is root without password at addr, database db.
func DSN(addr, db string) string {
	c := driver.NewConfig()
	c.User = "root"
	c.Net = "tcp"
	c.Addr = addr
	c.DBName = db
	c.ParseTime = true
	c.Loc = time.UTC
	return c.FormatDSN()
}

// Start runs mariadbd on the server's data directory and waits until it answers.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("mariadb " + s.Name + ": already running")
	}
	args := append([]string{}, baseArgs...)
	args = append(args,
		"--datadir="+filepath.Join(s.Dir, "data"),
		"--port="+strconv.Itoa(s.Port),
		"--bind-address=127.0.0.1",
		"--socket="+filepath.Join(s.Dir, "sock"),
		"--pid-file="+filepath.Join(s.Dir, PIDFile),
	)
	args = append(args, rootArgs()...)
	args = append(args, s.Extra...)
	out, err := os.OpenFile(filepath.Join(s.Dir, "error.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin.Server, args...)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group (a terminal's Ctrl-C reaches the parent, which
	// stops it in order), killed if the parent dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start mariadbd %s: %w", s.Name, err)
	}
	exited := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(exited) }()
	s.cmd, s.out, s.exited = cmd, out, exited
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	db, _ := sql.Open("mysql", s.DSN(""))
	defer db.Close()
	for {
		pctx, pcancel := context.WithTimeout(waitCtx, time.Second)
		err := db.PingContext(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			out.Close()
			log, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
			return fmt.Errorf("mariadbd %s exited at start (%v) (is port %d taken?):\n%s", s.Name, werr, s.Port, tail(log, 3000))
		case <-waitCtx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			s.cmd = nil
			out.Close()
			return fmt.Errorf("mariadbd %s did not answer within 60 s: %v", s.Name, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PID of the running server (0 when stopped).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill9 kills the server with SIGKILL and waits until it is gone.
func (s *Server) Kill9() { s.stop(syscall.SIGKILL, 0) }

// Stop asks the server to shut down (SIGTERM) and kills it if it has not
// within grace.
func (s *Server) Stop(grace time.Duration) { s.stop(syscall.SIGTERM, grace) }

func (s *Server) stop(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	cmd, exited, out := s.cmd, s.exited, s.out
	s.cmd, s.out = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	if sig != syscall.SIGKILL {
		select {
		case <-exited:
		case <-time.After(grace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	<-exited
	if out != nil {
		out.Close()
	}
}

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

// CacheRoot is where CachedTemplate keeps templates by default: vmpulse's
// directory in the user's cache ($XDG_CACHE_HOME or ~/.cache), else the
// temporary directory.
func CacheRoot() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "vmpulse")
	}
	return filepath.Join(os.TempDir(), "vmpulse-cache")
}
