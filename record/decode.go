package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrEmpty is returned for a body with no records.
var ErrEmpty = errors.New("no records: send one JSON object or a non-empty JSON array")

// DecodeBatch parses one JSON record or a JSON array of records, normalizes each
// (see Normalize) and validates it. Errors are *FieldError naming the record's index
// (for arrays) and the field. Unknown fields are ignored so that records from other
// implementations are accepted.
func DecodeBatch(data []byte) ([]Record, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, ErrEmpty
	}
	if data[0] != '[' {
		r, err := decodeOne(data, -1)
		if err != nil {
			return nil, err
		}
		return []Record{r}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, &FieldError{Index: -1, Field: "body", Msg: "not a JSON array of records: " + jsonMsg(err)}
	}
	if len(raws) == 0 {
		return nil, ErrEmpty
	}
	out := make([]Record, len(raws))
	for i, raw := range raws {
		r, err := decodeOne(raw, i)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

func decodeOne(data []byte, index int) (Record, error) {
	var r Record
	if len(data) == 0 || data[0] != '{' {
		return r, &FieldError{Index: index, Field: "record", Msg: "not a JSON object"}
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, &FieldError{Index: index, Field: fieldOf(err), Msg: jsonMsg(err)}
	}
	r.Normalize()
	if err := r.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Index = index
		}
		return r, err
	}
	return r, nil
}

// fieldOf extracts the JSON field a decoding error is about.
func fieldOf(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return te.Field
	}
	var he *horaError
	if errors.As(err, &he) {
		return "hora"
	}
	return "record"
}

func jsonMsg(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("got JSON %s, want %s", te.Value, te.Type)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
