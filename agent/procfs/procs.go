package procfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/vmpulse/vmpulse/agent/source"
	"github.com/vmpulse/vmpulse/record"
)

// statBufSize holds any /proc/[pid]/stat line (about 52 numbers and a 15-byte comm).
const statBufSize = 4096

// mark is a multi-threaded process's identity (start time, against pid reuse) and
// CPU time (utime + stime of all its threads, in ticks) at one read.
type mark struct{ start, cpu uint64 }

// readProcs counts processes (thread-group leaders, one per /proc/[pid], as ps -e
// shows them) by state and returns the TopN by resident memory.
//
// A process counts as running when any of its threads is runnable, as the kernel
// module does: /proc/[pid]/stat shows only the leader thread's state, and a busy
// multi-threaded program whose main thread waits would otherwise count as
// sleeping. So when the leader is not running and the process has more than one
// thread, its threads' /proc/[pid]/task/[tid]/stat are read until one is R.
//
// Reading every thread of every process would cost one file read per thread per
// sample (a few thousand on a machine running JVMs or Go services). A process's
// own stat line also gives the CPU time of all its threads, so a process whose
// threads used no CPU time since the previous read (less than one 10 ms tick) is
// not checked: all its threads are waiting. The rule's blind spot is a thread that
// became runnable within the last tick of an otherwise idle process; the kernel
// module, which walks the threads in the kernel, has no such gap. The first read
// checks every multi-threaded process.
func (s *Source) readProcs(ctx context.Context) (source.Procs, []record.Process, error) {
	var procs source.Procs
	d, err := os.Open(s.Root)
	if err != nil {
		return procs, nil, fmt.Errorf("open %s: %w", s.Root, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return procs, nil, fmt.Errorf("list %s: %w", s.Root, err)
	}
	if len(s.buf) < 2*statBufSize {
		s.buf = make([]byte, 2*statBufSize)
	}
	// The leader's line stays in buf while its threads are read into tbuf.
	buf, tbuf := s.buf[:statBufSize], s.buf[statBufSize:]
	if s.pageSize <= 0 {
		s.pageSize = int64(os.Getpagesize())
	}
	if s.spare == nil {
		s.spare = make(map[int64]mark, len(s.marks))
	}
	next := s.spare
	clear(next)
	top := topList{n: s.TopN}
	for _, name := range names {
		if !isPID(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return procs, nil, err
		}
		st, err := readStat(s.Root+"/"+name+"/stat", buf)
		if err != nil {
			if errors.Is(err, errGone) {
				continue // exited between listing and reading
			}
			return procs, nil, err
		}
		state := st.state
		if st.threads > 1 {
			m := mark{start: st.start, cpu: st.utime + st.stime}
			next[st.pid] = m
			if prev, seen := s.marks[st.pid]; state != 'R' && (!seen || prev != m) {
				running, err := anyThreadRunning(s.Root+"/"+name+"/task", name, tbuf)
				if err != nil {
					return procs, nil, err
				}
				if running {
					state = 'R'
				}
			}
		}
		procs.Classify(state)
		top.offer(st.pid, st.comm, state, st.rssPages*s.pageSize)
	}
	s.marks, s.spare = next, s.marks
	return procs, top.list(), nil
}

// anyThreadRunning reports whether a thread other than the leader (tid == pid)
// listed in dir (/proc/[pid]/task) is runnable. A process or thread that exits
// meanwhile is not an error.
func anyThreadRunning(dir, pid string, buf []byte) (bool, error) {
	d, err := os.Open(dir)
	if err != nil {
		if gone(err) {
			return false, nil
		}
		return false, fmt.Errorf("open %s: %w", dir, err)
	}
	tids, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		if gone(err) {
			return false, nil
		}
		return false, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, tid := range tids {
		if tid == pid || !isPID(tid) {
			continue
		}
		st, err := readStat(dir+"/"+tid+"/stat", buf)
		if err != nil {
			if errors.Is(err, errGone) {
				continue
			}
			return false, err
		}
		if st.state == 'R' {
			return true, nil
		}
	}
	return false, nil
}

func isPID(name string) bool { return name != "" && name[0] >= '1' && name[0] <= '9' }

var errGone = errors.New("process gone")

func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// readStat reads a /proc stat file with one open, read and close (no poller
// registration, no second read for EOF: a proc stat file is generated whole on
// the first read) and parses it. A process that exited gives errGone.
func readStat(path string, buf []byte) (procStat, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		if gone(err) {
			return procStat{}, errGone
		}
		return procStat{}, fmt.Errorf("open %s: %w", path, err)
	}
	n, err := syscall.Read(fd, buf)
	for err == syscall.EINTR {
		n, err = syscall.Read(fd, buf)
	}
	syscall.Close(fd)
	switch {
	case err != nil && gone(err), err == nil && n == 0:
		return procStat{}, errGone // exited between open and read
	case err != nil:
		return procStat{}, fmt.Errorf("read %s: %w", path, err)
	}
	st, err := parseStat(buf[:n])
	if err != nil {
		return st, fmt.Errorf("parse %s: %w", path, err)
	}
	return st, nil
}

// procStat holds the fields of /proc/[pid]/stat the agent uses. comm aliases the
// buffer that was parsed.
type procStat struct {
	pid          int64
	comm         []byte
	state        byte
	utime, stime uint64 // field 14, 15: CPU ticks of all threads (one thread's in task/)
	threads      int64  // field 20
	start        uint64 // field 22: start time in ticks after boot
	rssPages     int64  // field 24
}

// parseStat parses /proc/[pid]/stat: "pid (comm) state ppid … rss …". comm may
// hold spaces and parentheses, so the fields after it are found after the last
// ')'. Fields an old kernel does not print read as 0.
func parseStat(b []byte) (procStat, error) {
	var st procStat
	open := bytes.IndexByte(b, '(')
	close := bytes.LastIndexByte(b, ')')
	if open < 1 || close < open {
		return st, fmt.Errorf("no (comm) in %q", truncate(b))
	}
	pid, ok := parseUint(bytes.TrimSpace(b[:open]))
	if !ok || pid == 0 {
		return st, fmt.Errorf("pid %q is not a number", truncate(b[:open]))
	}
	st.pid = int64(pid)
	st.comm = b[open+1 : close]
	rest := b[close+1:]
	for field := 3; field <= 24; field++ {
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\n') {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			break
		}
		end := bytes.IndexAny(rest, " \n")
		if end < 0 {
			end = len(rest)
		}
		f := rest[:end]
		rest = rest[end:]
		v, _ := parseUint(f)
		switch field {
		case 3:
			if len(f) != 1 {
				return st, fmt.Errorf("state %q after comm is not one letter", truncate(f))
			}
			st.state = f[0]
		case 14:
			st.utime = v
		case 15:
			st.stime = v
		case 20:
			st.threads = int64(v)
		case 22:
			st.start = v
		case 24:
			st.rssPages = int64(v)
		}
	}
	if st.state == 0 {
		return st, fmt.Errorf("no state after comm in %q", truncate(b))
	}
	return st, nil
}

// parseUint parses a decimal number of up to 19 digits (no sign).
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

func truncate(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

// topList keeps the n largest processes by RSS, largest first (ties: lower pid
// first). It copies a process's name only when the process enters the list.
type topList struct {
	n   int
	rss []int64 // bytes, parallel to ps
	ps  []record.Process
}

func (t *topList) offer(pid int64, comm []byte, state byte, rss int64) {
	if t.n <= 0 {
		return
	}
	before := func(i int) bool { return rss > t.rss[i] || rss == t.rss[i] && pid < t.ps[i].PID }
	if len(t.ps) == t.n && !before(t.n-1) {
		return
	}
	i := len(t.ps)
	if i < t.n {
		t.ps = append(t.ps, record.Process{})
		t.rss = append(t.rss, 0)
	} else {
		i--
	}
	for ; i > 0 && before(i-1); i-- {
		t.ps[i], t.rss[i] = t.ps[i-1], t.rss[i-1]
	}
	t.ps[i] = record.Process{PID: pid, Name: string(comm), State: string(rune(state)), RSSMiB: rss >> 20}
	t.rss[i] = rss
}

func (t *topList) list() []record.Process { return t.ps }
