package record

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"sync"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDSource makes ULID-style ids (26 characters, Crockford base32, lexically sorted by
// time) that are unique even when many are made in the same millisecond: within one
// millisecond the random part is incremented, as the ULID spec's monotonic mode does.
type IDSource struct {
	mu      sync.Mutex
	lastMS  uint64
	entropy [10]byte
}

// New returns a fresh id for time t.
func (s *IDSource) New(t time.Time) string {
	ms := uint64(t.UnixMilli())
	s.mu.Lock()
	if ms <= s.lastMS {
		ms = s.lastMS
		for i := len(s.entropy) - 1; i >= 0; i-- { // increment, carrying
			s.entropy[i]++
			if s.entropy[i] != 0 {
				break
			}
		}
	} else {
		s.lastMS = ms
		if _, err := rand.Read(s.entropy[:]); err != nil {
			panic("record: crypto/rand failed: " + err.Error())
		}
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], ms<<16)
	copy(b[6:], s.entropy[:])
	s.mu.Unlock()
	return encode128(b)
}

// encode128 writes 128 bits as 26 Crockford base32 characters (the first carries 3 bits).
func encode128(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ContentID derives a stable id from a record's content, for records from other
// implementations that carry none: the same record sent twice gets the same id, so
// a retry is stored once. It starts with "c-" so it never collides with agent ids.
func ContentID(r Record) string {
	r.ID = ""
	b, _ := json.Marshal(r) // a Record always marshals
	sum := sha256.Sum256(b)
	var h [16]byte
	copy(h[:], sum[:16])
	return "c-" + encode128(h)
}
