package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// ErrEmpty is returned for a body with no records.
var ErrEmpty = errors.New("no records: send one JSON object or a non-empty JSON array")

// TooManyError is returned for an array of more than MaxBatch records.
type TooManyError struct{ Max int }

func (e *TooManyError) Error() string {
	return fmt.Sprintf("more than %d records in one request: send at most %d per request", e.Max, e.Max)
}

// DecodeBatch parses one JSON record or a JSON array of at most MaxBatch records,
// normalizes each (see Normalize) and validates it. Errors are *FieldError naming
// the record's index (for arrays) and the field, *TooManyError, or ErrEmpty.
// Unknown fields are ignored so that records from other implementations are
// accepted; a missing required field is an error, never a zero.
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
	var out []Record
	err := eachElement(data, func(i int, raw []byte) error {
		if i >= MaxBatch {
			return &TooManyError{Max: MaxBatch}
		}
		r, err := decodeOne(raw, i)
		if err != nil {
			return err
		}
		if out == nil {
			out = make([]Record, 0, min(MaxBatch, len(data)/256+1))
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrEmpty
	}
	return out, nil
}

// eachElement calls fn with each element of the JSON array data (which starts with
// '['), in order, without decoding them: it only finds where each one ends,
// following strings and nesting. It stops at fn's first error. Elements are
// checked by whoever decodes them; eachElement checks the array's own syntax.
func eachElement(data []byte, fn func(i int, raw []byte) error) error {
	bad := func(msg string) error {
		return &FieldError{Index: -1, Field: "body", Msg: "not a JSON array of records: " + msg}
	}
	i := 1 // past '['
	skipSpace := func() {
		for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
			i++
		}
	}
	skipSpace()
	if i < len(data) && data[i] == ']' {
		i++
		skipSpace()
		if i != len(data) {
			return bad("data after the closing ]")
		}
		return nil
	}
	for n := 0; ; n++ {
		skipSpace()
		start, depth := i, 0
	scan:
		for ; i < len(data); i++ {
			switch data[i] {
			case '"':
				for i++; i < len(data) && data[i] != '"'; i++ {
					if data[i] == '\\' {
						i++
					}
				}
			case '{', '[':
				depth++
			case '}', ']':
				if depth == 0 {
					break scan
				}
				depth--
			case ',':
				if depth == 0 {
					break scan
				}
			}
		}
		if i >= len(data) {
			return bad("unexpected end of input")
		}
		raw := bytes.TrimRight(data[start:i], " \t\n\r")
		if len(raw) == 0 {
			return bad(fmt.Sprintf("missing element %d", n))
		}
		if err := fn(n, raw); err != nil {
			return err
		}
		if data[i] == ']' {
			i++
			skipSpace()
			if i != len(data) {
				return bad("data after the closing ]")
			}
			return nil
		}
		if data[i] != ',' {
			return bad(fmt.Sprintf("unexpected %q after element %d", data[i], n))
		}
		i++ // past ','
	}
}

// missing marks a required number the input did not give: encoding/json leaves a
// field untouched when its key is absent or null, so a field still holding its
// marker after decoding was not there.
const missingInt = math.MinInt64

func decodeOne(data []byte, index int) (Record, error) {
	if len(data) == 0 || data[0] != '{' {
		return Record{}, &FieldError{Index: index, Field: "record", Msg: "not a JSON object"}
	}
	nan := math.NaN()
	r := Record{
		TotalRAM: missingInt, RAMLibre: missingInt, UsoRAM: missingInt, PorcentajeRAM: nan,
		PorcentajeCPUUso: nan, PorcentajeCPULibre: nan, ProcesosCorriendo: missingInt,
		TotalProcesos: missingInt, ProcesosDurmiendo: missingInt, ProcesosZombie: missingInt,
		ProcesosParados: missingInt,
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, &FieldError{Index: index, Field: fieldOf(err), Msg: jsonMsg(err)}
	}
	if f := missingField(&r); f != "" {
		return Record{}, &FieldError{Index: index, Field: f, Msg: "missing (required)"}
	}
	r.Normalize()
	if err := r.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Index = index
		}
		return Record{}, err
	}
	return r, nil
}

// missingField names the first required field decodeOne's markers say was absent.
func missingField(r *Record) string {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"total_ram", r.TotalRAM}, {"ram_libre", r.RAMLibre}, {"uso_ram", r.UsoRAM},
		{"total_procesos", r.TotalProcesos}, {"procesos_corriendo", r.ProcesosCorriendo},
		{"procesos_durmiendo", r.ProcesosDurmiendo}, {"procesos_zombie", r.ProcesosZombie},
		{"procesos_parados", r.ProcesosParados},
	} {
		if f.v == missingInt {
			return f.name
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"porcentaje_ram", r.PorcentajeRAM}, {"porcentaje_cpu_uso", r.PorcentajeCPUUso},
		{"porcentaje_cpu_libre", r.PorcentajeCPULibre},
	} {
		if math.IsNaN(f.v) {
			return f.name
		}
	}
	if r.Hora.IsZero() {
		return "hora"
	}
	return ""
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
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}
