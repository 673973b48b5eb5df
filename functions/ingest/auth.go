package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// MinTokenLen is the shortest ingest token accepted: a guessable token is no
// credential.
const MinTokenLen = 16

// Tokens are the bearer tokens ingest accepts: one, or two while one replaces the
// other. They come from a file, one per line (blank lines and lines starting with
// # are ignored), which Watch reads again when it changes, so a rotation needs
// no restart: add the new token as a second line, move the senders to it, then
// remove the old line.
type Tokens struct {
	path string

	mu     sync.RWMutex
	tokens [][]byte
	stat   fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// LoadTokens reads the token file.
func LoadTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// StaticTokens accepts the given tokens (tests, and callers that hold them already).
func StaticTokens(tokens ...string) (*Tokens, error) {
	t := &Tokens{}
	list, err := parseTokens([]byte(strings.Join(tokens, "\n")))
	if err != nil {
		return nil, err
	}
	t.tokens = list
	return t, nil
}

func parseTokens(b []byte) ([][]byte, error) {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(line) < MinTokenLen {
			return nil, fmt.Errorf("token on line %d is %d characters; at least %d are needed", n, len(line), MinTokenLen)
		}
		if bytes.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("token on line %d contains a space", n)
		}
		out = append(out, bytes.Clone(line))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	switch {
	case len(out) == 0:
		return nil, errors.New("no token")
	case len(out) > 2:
		return nil, fmt.Errorf("%d tokens; at most two (the current one and its replacement)", len(out))
	}
	return out, nil
}

func (t *Tokens) reload() error {
	st, err := os.Stat(t.path)
	if err != nil {
		return fmt.Errorf("ingest token file: %w", err)
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("ingest token file: %w", err)
	}
	list, err := parseTokens(b)
	if err != nil {
		return fmt.Errorf("ingest token file %s: %w", t.path, err)
	}
	t.mu.Lock()
	t.tokens, t.stat = list, fileStamp{st.ModTime(), st.Size()}
	t.mu.Unlock()
	return nil
}

// Watch reads the file again whenever its time or size changes, checking every
// interval until ctx ends. A file that became invalid is reported and the tokens
// in force stay.
func (t *Tokens) Watch(ctx context.Context, every time.Duration, log *slog.Logger) {
	if t.path == "" {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st, err := os.Stat(t.path)
		t.mu.RLock()
		same := err == nil && st.ModTime().Equal(t.stat.mod) && st.Size() == t.stat.size
		t.mu.RUnlock()
		if same {
			continue
		}
		if err := t.reload(); err != nil {
			log.Error("ingest tokens not reloaded; the previous ones stay in force", "err", err)
			continue
		}
		t.mu.RLock()
		n := len(t.tokens)
		t.mu.RUnlock()
		log.Info("ingest tokens reloaded", "tokens", n)
	}
}

// Allow reports whether an Authorization header carries an accepted bearer token.
// Every token is compared, in constant time, whatever the outcome.
func (t *Tokens) Allow(header string) bool {
	const prefix = "Bearer "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	got := []byte(strings.TrimSpace(header[len(prefix):]))
	t.mu.RLock()
	defer t.mu.RUnlock()
	ok := 0
	for _, tok := range t.tokens {
		ok |= subtle.ConstantTimeCompare(got, tok)
	}
	return ok == 1
}
