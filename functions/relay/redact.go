package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// redactProcessNames returns rec with the value of every top_procesos[].name
// replaced by "" and every other byte unchanged. A record without top_procesos
// is returned as is. The relay is public: process names tell anyone who opens
// the dashboard what runs on the VM, so they are sent only when the operator
// asks for them (-expose-processes).
func redactProcessNames(rec []byte) ([]byte, error) {
	if !bytes.Contains(rec, []byte(`"top_procesos"`)) {
		return rec, nil
	}
	spans, err := nameSpans(rec)
	if err != nil {
		return nil, fmt.Errorf("relay: record is not a JSON object: %w", err)
	}
	if len(spans) == 0 {
		return rec, nil
	}
	out := make([]byte, 0, len(rec))
	last := 0
	for _, s := range spans {
		out = append(out, rec[last:s[0]]...)
		out = append(out, `""`...)
		last = s[1]
	}
	return append(out, rec[last:]...), nil
}

// nameSpans finds the byte ranges of the string values of top_procesos[].name in
// a JSON object.
func nameSpans(rec []byte) ([][2]int, error) {
	dec := json.NewDecoder(bytes.NewReader(rec))
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var spans [][2]int
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if key != "top_procesos" {
			if err := skipValue(dec); err != nil {
				return nil, err
			}
			continue
		}
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if t == nil { // null
			continue
		}
		if d, ok := t.(json.Delim); !ok || d != '[' {
			return nil, errors.New("top_procesos is not an array")
		}
		for dec.More() {
			if err := expectDelim(dec, '{'); err != nil {
				return nil, fmt.Errorf("top_procesos: %w", err)
			}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				end := int(dec.InputOffset()) // just after the key
				if k != "name" {
					if err := skipValue(dec); err != nil {
						return nil, err
					}
					continue
				}
				v, err := dec.Token()
				if err != nil {
					return nil, err
				}
				if _, ok := v.(string); !ok {
					continue
				}
				start := end
				for start < len(rec) && rec[start] != '"' { // whitespace and ':'
					start++
				}
				spans = append(spans, [2]int{start, int(dec.InputOffset())})
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the record")
	}
	return spans, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, found %v", want, t)
	}
	return nil
}

func skipValue(dec *json.Decoder) error {
	var v json.RawMessage
	return dec.Decode(&v)
}
