package procfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"github.com/vmpulse/vmpulse/agent/source"
	"github.com/vmpulse/vmpulse/record"
)

// readProcs counts processes (thread-group leaders, one per /proc/[pid], as ps -e
// shows them) by state and returns the topN by resident memory. buf is reused
// between calls and returned, possibly grown.
func readProcs(ctx context.Context, root string, topN int, pageSize int64, buf []byte) (source.Procs, []record.Process, []byte, error) {
	var procs source.Procs
	d, err := os.Open(root)
	if err != nil {
		return procs, nil, buf, fmt.Errorf("open %s: %w", root, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return procs, nil, buf, fmt.Errorf("list %s: %w", root, err)
	}
	if cap(buf) < 1024 {
		buf = make([]byte, 1024)
	}
	var top []record.Process
	for _, name := range names {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		if err := ctx.Err(); err != nil {
			return procs, nil, buf, err
		}
		var st procStat
		st, buf, err = readStat(filepath.Join(root, name, "stat"), buf)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errGone) {
				continue // exited between listing and reading
			}
			return procs, nil, buf, err
		}
		procs.Classify(st.state)
		if topN > 0 {
			top = append(top, record.Process{PID: st.pid, Name: st.comm, State: string(st.state),
				RSSMiB: st.rssPages * pageSize >> 20})
		}
	}
	if topN > 0 {
		sort.Slice(top, func(i, j int) bool {
			if top[i].RSSMiB != top[j].RSSMiB {
				return top[i].RSSMiB > top[j].RSSMiB
			}
			return top[i].PID < top[j].PID
		})
		if len(top) > topN {
			top = top[:topN]
		}
	}
	return procs, top, buf, nil
}

var errGone = errors.New("process gone")

type procStat struct {
	pid      int64
	comm     string
	state    byte
	rssPages int64
}

func readStat(path string, buf []byte) (procStat, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return procStat{}, buf, err
	}
	n, err := io.ReadFull(f, buf[:cap(buf)])
	f.Close()
	if err != nil && err != io.ErrUnexpectedEOF {
		if errors.Is(err, io.EOF) || errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return procStat{}, buf, errGone // the process exited between open and read
		}
		return procStat{}, buf, fmt.Errorf("read %s: %w", path, err)
	}
	st, perr := ParseStat(buf[:n])
	if perr != nil {
		return st, buf, fmt.Errorf("parse %s: %w", path, perr)
	}
	return st, buf, nil
}

// ParseStat parses /proc/[pid]/stat: "pid (comm) state ppid … rss …". comm may hold
// spaces and parentheses, so the state is found after the last ')'.
func ParseStat(b []byte) (procStat, error) {
	var st procStat
	open := bytes.IndexByte(b, '(')
	close := bytes.LastIndexByte(b, ')')
	if open < 1 || close < open {
		return st, fmt.Errorf("no (comm) in %q", truncate(b))
	}
	pid, err := strconv.ParseInt(string(bytes.TrimSpace(b[:open])), 10, 64)
	if err != nil {
		return st, fmt.Errorf("pid: %w", err)
	}
	st.pid = pid
	st.comm = string(b[open+1 : close])
	rest := bytes.Fields(b[close+1:])
	if len(rest) < 1 || len(rest[0]) != 1 {
		return st, fmt.Errorf("no state after comm in %q", truncate(b))
	}
	st.state = rest[0][0]
	// rest[0] is field 3 (state); rss is field 24.
	if len(rest) > 21 {
		if rss, err := strconv.ParseInt(string(rest[21]), 10, 64); err == nil && rss > 0 {
			st.rssPages = rss
		}
	}
	return st, nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}
