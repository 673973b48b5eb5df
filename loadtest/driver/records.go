package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmpulse/vmpulse/record"
)

// Item is one record of a records file.
type Item struct {
	Index int             // position in the file
	Raw   json.RawMessage // the record exactly as it is in the file (compacted)
	// Key identifies the record: its id, or for a valid record without one the id the
	// ingress gives it (record.ContentID of the normalized record). Empty when the
	// record is invalid and has no id.
	Key string
	// Err is why the record does not satisfy the contract (nil when it does). Invalid
	// records are still sent, so that the ingress says what is wrong with them.
	Err error
}

// Key returns the identity of a record: its id when it has one, otherwise the id the
// ingress derives from its content (record.ContentID), so that the same sample seen
// twice counts once. A record that does not decode as a record and has no id has no
// key.
func Key(raw []byte) (key string, err error) {
	recs, err := record.DecodeBatch(raw)
	if err == nil && len(recs) != 1 {
		err = errors.New("not a single record")
	}
	if err != nil {
		var probe struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &probe) == nil && probe.ID != "" {
			return probe.ID, err
		}
		return "", err
	}
	r := recs[0]
	if r.ID != "" {
		return r.ID, nil
	}
	return record.ContentID(r), nil
}

// ParseRecords splits a JSON array of records (or one record), as the agent serves
// them, into items, as they are (no unit conversion: see ParseRecordsFile for
// files). It fails only when the data is not JSON of that shape; records that break
// the contract are returned with Item.Err set.
func ParseRecords(data []byte) ([]Item, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("empty: want a JSON array of records")
	}
	var raws []json.RawMessage
	if data[0] == '[' {
		if err := json.Unmarshal(data, &raws); err != nil {
			return nil, fmt.Errorf("not a JSON array of records: %w", err)
		}
	} else {
		if !json.Valid(data) {
			return nil, errors.New("not JSON: want a JSON array of records")
		}
		raws = []json.RawMessage{data}
	}
	items := make([]Item, len(raws))
	for i, raw := range raws {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		key, err := Key(buf.Bytes())
		items[i] = Item{Index: i, Raw: buf.Bytes(), Key: key, Err: err}
	}
	return items, nil
}

// EncodeRecords lays records out as the records file does: a JSON array with one
// compact record per line.
func EncodeRecords(recs []json.RawMessage) []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i, r := range recs {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n")
		if err := json.Compact(&b, r); err != nil {
			b.Write(r) // not reached for records that came from json.Unmarshal
		}
	}
	b.WriteString("\n]\n")
	return b.Bytes()
}

// WriteFile writes records to path atomically: a temporary file in the same directory,
// synced, then renamed over path, so that a reader never sees half a file. Missing
// directories are created.
func WriteFile(path string, recs []json.RawMessage) error {
	return WriteFileAtomic(path, EncodeRecords(recs))
}

// WriteFileAtomic writes data to path through a synced temporary file in the same
// directory renamed over it (directories are created).
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable; best effort
		d.Sync()
		d.Close()
	}
	return nil
}

// Raws returns the raw records of items.
func Raws(items []Item) []json.RawMessage {
	out := make([]json.RawMessage, len(items))
	for i, it := range items {
		out[i] = it.Raw
	}
	return out
}
