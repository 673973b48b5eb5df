package faults

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// CommitCutter is a TCP proxy in front of MySQL that understands the protocol just
// enough to find commit points and cut the connection right after one: the
// server has committed, the client never hears so. That is the ambiguous outcome
// a real network gives when it fails between the server's commit and the OK
// reaching the client.
//
// "Right after the commit" is decided on the server's answer, not on the
// client's statement: a commit point is an OK packet (0x00) answering COMMIT or a
// data-changing statement (INSERT, REPLACE, UPDATE, DELETE; text or prepared)
// whose status flags say no transaction is open any more
// (SERVER_STATUS_IN_TRANS clear). That covers route1's explicit transactions
// (the OK of COMMIT) and multi-row INSERTs in autocommit (each INSERT's OK is its
// commit) alike, without tracking BEGIN/SET autocommit in the client's text. The
// OK packet is dropped and both connections are closed, so the client's driver
// reports a broken connection for a statement the server did commit.
//
// Connections that negotiate TLS or compression are passed through untouched
// (the packets are opaque then); Unparsed counts them.
type CommitCutter struct {
	ln       net.Listener
	upstream string

	every     atomic.Int64 // cut every Nth commit point while armed; 0: disarmed
	seen      atomic.Int64 // commit points while armed
	Cuts      atomic.Int64 // connections cut after a commit
	Commits   atomic.Int64 // commit points seen, armed or not
	Unparsed  atomic.Int64 // connections passed through without parsing
	closeOnce sync.Once

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// NewCommitCutter listens on a free port of 127.0.0.1 and forwards to upstream.
func NewCommitCutter(upstream string) (*CommitCutter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &CommitCutter{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	go c.accept()
	return c, nil
}

// Addr is where clients connect.
func (c *CommitCutter) Addr() string { return c.ln.Addr().String() }

// Arm cuts every nth commit point from now on (1: every one).
func (c *CommitCutter) Arm(n int) {
	c.seen.Store(0)
	c.every.Store(int64(max(n, 1)))
}

// Disarm lets every commit through again.
func (c *CommitCutter) Disarm() { c.every.Store(0) }

// Close stops listening and closes every connection.
func (c *CommitCutter) Close() {
	c.closeOnce.Do(func() {
		c.ln.Close()
		c.mu.Lock()
		for conn := range c.conns {
			conn.Close()
		}
		c.conns = nil
		c.mu.Unlock()
	})
}

func (c *CommitCutter) track(conns ...net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil {
		return false
	}
	for _, x := range conns {
		c.conns[x] = struct{}{}
	}
	return true
}

func (c *CommitCutter) untrack(conns ...net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range conns {
		delete(c.conns, x) // a no-op on a nil map after Close
		x.Close()
	}
}

func (c *CommitCutter) accept() {
	for {
		client, err := c.ln.Accept()
		if err != nil {
			return
		}
		go c.serve(client)
	}
}

// MySQL protocol constants used here.
const (
	comQuery       = 0x03
	comStmtPrepare = 0x16
	comStmtExecute = 0x17
	comStmtClose   = 0x19

	clientCompress = 0x00000020
	clientSSL      = 0x00000800

	serverStatusInTrans = 0x0001
)

type cmdKind int

const (
	cmdOther cmdKind = iota
	cmdCommit
	cmdWrite
	cmdPrepare
)

// cutConn is the state of one proxied connection.
type cutConn struct {
	mu       sync.Mutex
	last     cmdKind  // kind of the command whose answer is awaited
	prepares [][]byte // texts of COM_STMT_PREPAREs awaiting their answer
	stmts    map[uint32]cmdKind
	raw      bool // TLS or compression: pass bytes through
}

func (c *CommitCutter) serve(client net.Conn) {
	server, err := net.Dial("tcp", c.upstream)
	if err != nil {
		client.Close()
		return
	}
	if !c.track(client, server) {
		client.Close()
		server.Close()
		return
	}
	defer c.untrack(client, server)
	st := &cutConn{stmts: map[uint32]cmdKind{}}
	done := make(chan struct{}, 2)
	go func() { c.upstreamLoop(st, client, server); done <- struct{}{} }()
	go func() { c.downstreamLoop(st, server, client); done <- struct{}{} }()
	<-done // either side ending ends both
}

// readPacket reads one MySQL packet: 3-byte little-endian length, sequence id, payload.
func readPacket(r io.Reader, buf []byte) (hdr [4]byte, payload []byte, err error) {
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return hdr, nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	payload = buf[:n]
	_, err = io.ReadFull(r, payload)
	return hdr, payload, err
}

func writePacket(w io.Writer, hdr [4]byte, payload []byte) error {
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func (c *CommitCutter) upstreamLoop(st *cutConn, client, server net.Conn) {
	buf := make([]byte, 64<<10)
	handshake := true
	for {
		hdr, p, err := readPacket(client, buf)
		if err != nil {
			return
		}
		if cap(p) > cap(buf) {
			buf = p[:cap(p)]
		}
		st.mu.Lock()
		raw := st.raw
		if handshake && hdr[3] == 1 && len(p) >= 4 {
			// The handshake response (or SSL request): the capability flags.
			caps := binary.LittleEndian.Uint32(p[:4])
			if caps&(clientSSL|clientCompress) != 0 {
				st.raw, raw = true, true
				c.Unparsed.Add(1)
			}
			handshake = false
		}
		if !raw && hdr[3] == 0 && len(p) > 0 { // a command
			switch p[0] {
			case comQuery:
				st.last = classify(p[1:])
			case comStmtPrepare:
				st.last = cmdPrepare
				st.prepares = append(st.prepares, append([]byte(nil), p[1:]...))
			case comStmtExecute:
				st.last = cmdOther
				if len(p) >= 5 {
					st.last = st.stmts[binary.LittleEndian.Uint32(p[1:5])]
				}
			case comStmtClose:
				if len(p) >= 5 {
					delete(st.stmts, binary.LittleEndian.Uint32(p[1:5]))
				}
				st.last = cmdOther
			default:
				st.last = cmdOther
			}
		}
		st.mu.Unlock()
		if err := writePacket(server, hdr, p); err != nil {
			return
		}
		if raw {
			_, _ = io.Copy(server, client)
			return
		}
	}
}

// downstreamLoop forwards the server's bytes as they come, packet by packet, and
// drops the OK of a commit point it cuts. It reads chunks rather than whole
// packets so that a connection switching to TLS (opaque bytes) never leaves it
// waiting for a packet that will not come.
func (c *CommitCutter) downstreamLoop(st *cutConn, server, client net.Conn) {
	chunk := make([]byte, 64<<10)
	var pending []byte
	for {
		n, err := server.Read(chunk)
		if n > 0 {
			pending = append(pending, chunk[:n]...)
			st.mu.Lock()
			raw := st.raw
			st.mu.Unlock()
			ready := len(pending)
			if !raw {
				ready = 0
				for len(pending)-ready >= 4 {
					l := int(pending[ready]) | int(pending[ready+1])<<8 | int(pending[ready+2])<<16
					if len(pending)-ready < 4+l {
						break
					}
					if c.observe(st, pending[ready+3], pending[ready+4:ready+4+l]) {
						c.Cuts.Add(1)
						_, _ = client.Write(pending[:ready])
						return // the OK is dropped; serve closes both sides
					}
					ready += 4 + l
				}
			}
			if ready > 0 {
				if _, werr := client.Write(pending[:ready]); werr != nil {
					return
				}
				pending = append(pending[:0], pending[ready:]...)
			}
		}
		if err != nil {
			return
		}
	}
}

// observe looks at one packet from the server and reports whether to cut the
// connection instead of forwarding it.
func (c *CommitCutter) observe(st *cutConn, seq byte, p []byte) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.raw || seq != 1 || len(p) == 0 { // only the first packet of an answer
		return false
	}
	last := st.last
	st.last = cmdOther
	switch last {
	case cmdCommit, cmdWrite:
		if p[0] == 0x00 && !okInTrans(p) {
			c.Commits.Add(1)
			if n := c.every.Load(); n > 0 && c.seen.Add(1)%n == 0 {
				return true
			}
		}
	case cmdPrepare:
		if len(st.prepares) > 0 {
			if p[0] == 0x00 && len(p) >= 5 {
				st.stmts[binary.LittleEndian.Uint32(p[1:5])] = classify(st.prepares[0])
			}
			st.prepares = st.prepares[1:]
		}
	}
	return false
}

// okInTrans reads the status flags of an OK packet: 0x00, affected rows and last
// insert id (length-encoded integers), then 2 bytes of status.
func okInTrans(p []byte) bool {
	i := 1
	for k := 0; k < 2; k++ {
		n, ok := lenencLen(p[i:])
		if !ok {
			return true // unreadable: treat as not a commit point
		}
		i += n
	}
	if len(p) < i+2 {
		return true
	}
	return binary.LittleEndian.Uint16(p[i:i+2])&serverStatusInTrans != 0
}

func lenencLen(p []byte) (int, bool) {
	if len(p) == 0 {
		return 0, false
	}
	switch p[0] {
	case 0xfc:
		return 3, len(p) >= 3
	case 0xfd:
		return 4, len(p) >= 4
	case 0xfe:
		return 9, len(p) >= 9
	default:
		return 1, true
	}
}

// classify looks at the first keyword of a statement, after blanks and comments.
func classify(q []byte) cmdKind {
	q = skipBlank(q)
	end := 0
	for end < len(q) && (q[end] >= 'a' && q[end] <= 'z' || q[end] >= 'A' && q[end] <= 'Z') {
		end++
	}
	switch string(bytes.ToUpper(q[:end])) {
	case "COMMIT":
		return cmdCommit
	case "INSERT", "REPLACE", "UPDATE", "DELETE":
		return cmdWrite
	}
	return cmdOther
}

func skipBlank(q []byte) []byte {
	for {
		q = bytes.TrimLeft(q, " \t\r\n(")
		switch {
		case bytes.HasPrefix(q, []byte("/*")):
			i := bytes.Index(q, []byte("*/"))
			if i < 0 {
				return nil
			}
			q = q[i+2:]
		case bytes.HasPrefix(q, []byte("-- ")), bytes.HasPrefix(q, []byte("#")):
			i := bytes.IndexByte(q, '\n')
			if i < 0 {
				return nil
			}
			q = q[i+1:]
		default:
			return q
		}
	}
}

// String summarises what the cutter did.
func (c *CommitCutter) String() string {
	return fmt.Sprintf("%d commit points, %d cut, %d connections not parsed", c.Commits.Load(), c.Cuts.Load(), c.Unparsed.Load())
}
