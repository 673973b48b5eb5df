package driver

// Reading records files written by any implementation of the assignment: the layout
// (a bare array, JSON Lines, one record, or an object holding the array under a
// common key) and the unit of the RAM figures (MiB, KiB or bytes) are found per file
// and said, and the figures are converted to MiB before anything is sent, so that a
// file in KiB is never stored 1 024 times too large. loadtest/recordsfile.py does the
// same for Locust; both are tested on loadtest/testdata/records.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// WrapperKeys are the members of a JSON object under which a records file may hold
// its array of records, in the order they are looked for.
var WrapperKeys = []string{"metrics", "records", "data", "samples", "items", "results",
	"registros", "muestras", "datos", "metricas", "métricas"}

// RAM units of the figures total_ram, ram_libre and uso_ram.
const (
	UnitAuto  = "auto"
	UnitMiB   = "mib"
	UnitKiB   = "kib"
	UnitBytes = "bytes"
)

var unitDiv = map[string]float64{UnitMiB: 1, UnitKiB: 1 << 10, UnitBytes: 1 << 20}

// UnitName is how a unit is written for people.
func UnitName(u string) string {
	return map[string]string{UnitMiB: "MiB", UnitKiB: "KiB", UnitBytes: "bytes"}[u]
}

// ParseRAMUnit reads the -ram-unit value: auto, mib, kib or bytes (MB, KB, B and
// their long forms are accepted too).
func ParseRAMUnit(s string) (string, error) {
	if strings.EqualFold(strings.TrimSpace(s), UnitAuto) || strings.TrimSpace(s) == "" {
		return UnitAuto, nil
	}
	if u := unitWord(s); u != "" {
		return u, nil
	}
	return "", fmt.Errorf("RAM unit %q: want auto, mib, kib or bytes", s)
}

// unitWord recognizes a unit written in a file's metadata or on the command line.
func unitWord(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "mib", "mb", "m", "megabytes", "mebibytes", "mbytes":
		return UnitMiB
	case "kib", "kb", "k", "kilobytes", "kibibytes", "kbytes":
		return UnitKiB
	case "bytes", "byte", "b":
		return UnitBytes
	}
	return ""
}

// A VM's RAM lies between these (MiB) in any plausible records file: the only unit
// that puts the file's total_ram in this range is the file's unit. The ranges of the
// three units touch but do not overlap: MiB 256..262 143, KiB 262 144..2^28-1,
// bytes 2^28..2^38-1.
const (
	minVMRAMMiB = 256
	maxVMRAMMiB = 256 << 10
)

// File is a records file as read: its records (RAM figures in MiB) and what was
// found out about it.
type File struct {
	Items []Item
	// Layout says where the records were, e.g. `a JSON array` or `a JSON object,
	// records under "metrics" (other members: "metadata")`.
	Layout string
	// Wrapper is the member that held the records ("" when the file is not an
	// object wrapping them).
	Wrapper string
	// Unit is the unit the file's RAM figures were in (UnitMiB, UnitKiB or
	// UnitBytes), UnitReason why it was chosen, Converted how many records had
	// their figures converted to MiB.
	Unit       string
	UnitReason string
	Converted  int
}

// Describe is one line for people: how many records, the layout, the unit and why.
func (f *File) Describe() string {
	n := fmt.Sprintf("%d records", len(f.Items))
	if len(f.Items) == 1 {
		n = "1 record"
	}
	s := fmt.Sprintf("%s in %s; RAM figures in %s (%s)", n, f.Layout, UnitName(f.Unit), f.UnitReason)
	if f.Converted > 0 {
		s += fmt.Sprintf("; converted to MiB in %d records", f.Converted)
	}
	return s
}

// ReadRecordsFile reads a records file of any layout ParseRecordsFile knows.
func ReadRecordsFile(path, unit string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := ParseRecordsFile(data, unit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// ReadFile reads a records file (auto-detected units) and returns its records.
func ReadFile(path string) ([]Item, error) {
	f, err := ReadRecordsFile(path, UnitAuto)
	if err != nil {
		return nil, err
	}
	return f.Items, nil
}

// ParseRecordsFile reads the records of a file and converts their RAM figures to
// MiB. unit is UnitAuto (found from the file: metadata naming it, else the size of
// total_ram) or the unit to assume. Records that break the contract are kept with
// Item.Err set; the error is about the file as a whole (not JSON, no records, a
// unit that cannot be told).
func ParseRecordsFile(data []byte, unit string) (*File, error) {
	unit, err := ParseRAMUnit(unit)
	if err != nil {
		return nil, err
	}
	raws, layout, wrapper, hints, err := splitFile(data)
	if err != nil {
		return nil, err
	}
	f := &File{Layout: layout, Wrapper: wrapper}
	f.Unit, f.UnitReason, err = detectUnit(raws, unit, hints)
	if err != nil {
		return nil, err
	}
	f.Items = make([]Item, len(raws))
	for i, raw := range raws {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		b := buf.Bytes()
		if f.Unit != UnitMiB {
			conv, changed, err := convertRAM(b, unitDiv[f.Unit])
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", i, err)
			}
			if changed {
				f.Converted++
			}
			b = conv
		}
		key, err := Key(b)
		f.Items[i] = Item{Index: i, Raw: b, Key: key, Err: err}
	}
	return f, nil
}

// splitFile finds the records in data. hints are strings from the file's other
// members that may name the RAM unit ("metadata": {"ram_unit": "KB"}).
func splitFile(data []byte) (raws []json.RawMessage, layout, wrapper string, hints []unitHint, err error) {
	data = bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if len(data) == 0 {
		return nil, "", "", nil, errors.New("empty: want a JSON array of records")
	}
	switch data[0] {
	case '[':
		if err := json.Unmarshal(data, &raws); err != nil {
			return nil, "", "", nil, fmt.Errorf("not a JSON array of records: %w", err)
		}
		if err := objectsOnly(raws); err != nil {
			return nil, "", "", nil, err
		}
		return raws, "a JSON array", "", nil, nil
	case '{':
	default:
		return nil, "", "", nil, errors.New("not JSON: want a JSON array of records (or an object holding one)")
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&obj); err != nil {
		return nil, "", "", nil, fmt.Errorf("not JSON: %w", err)
	}
	if dec.More() || dec.InputOffset() < int64(len(data)) {
		raws, err := jsonLines(data)
		if err != nil {
			return nil, "", "", nil, err
		}
		return raws, "JSON Lines (one record per line)", "", nil, nil
	}
	if isRecord(obj) {
		return []json.RawMessage{data}, "one JSON object", "", nil, nil
	}
	others := func(except string) []string {
		var ks []string
		for k := range obj {
			if k != except {
				ks = append(ks, strconv.Quote(k))
			}
		}
		sort.Strings(ks)
		return ks
	}
	pick := func(key, how string) ([]json.RawMessage, string, string, []unitHint, error) {
		var arr []json.RawMessage
		if err := json.Unmarshal(obj[key], &arr); err != nil {
			return nil, "", "", nil, fmt.Errorf("member %q: not an array of records: %w", key, err)
		}
		if err := objectsOnly(arr); err != nil {
			return nil, "", "", nil, fmt.Errorf("member %q: %w", key, err)
		}
		l := fmt.Sprintf("a JSON object, records under %q%s", key, how)
		if o := others(key); len(o) > 0 {
			l += " (other members: " + strings.Join(o, ", ") + ")"
		}
		var hs []unitHint
		for k, v := range obj {
			if k != key {
				hs = append(hs, findHints(k, v, 0)...)
			}
		}
		return arr, l, key, hs, nil
	}
	for _, k := range WrapperKeys {
		if _, ok := obj[k]; ok {
			return pick(k, "")
		}
	}
	// Any other single member that is an array of objects.
	var cands []string
	for k, v := range obj {
		var arr []json.RawMessage
		if json.Unmarshal(v, &arr) == nil && len(arr) > 0 && objectsOnly(arr) == nil {
			cands = append(cands, k)
		}
	}
	if len(cands) == 1 {
		return pick(cands[0], ", its only array of objects")
	}
	return nil, "", "", nil, fmt.Errorf("a JSON object that is neither a record nor holds records under one of %s (members: %s)",
		quoteAll(WrapperKeys), strings.Join(others(""), ", "))
}

func quoteAll(ks []string) string {
	q := make([]string, len(ks))
	for i, k := range ks {
		q[i] = strconv.Quote(k)
	}
	return strings.Join(q, ", ")
}

func objectsOnly(raws []json.RawMessage) error {
	for i, r := range raws {
		r = bytes.TrimSpace(r)
		if len(r) == 0 || r[0] != '{' {
			return fmt.Errorf("element %d is not a JSON object (a record)", i)
		}
	}
	return nil
}

func jsonLines(data []byte) ([]json.RawMessage, error) {
	var raws []json.RawMessage
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if line[0] != '{' || !json.Valid(line) {
			return nil, fmt.Errorf("line %d: not a JSON object (the file looked like JSON Lines: one record per line)", i+1)
		}
		raws = append(raws, json.RawMessage(line))
	}
	return raws, nil
}

// recordFields are fields only a record has; an object with one of them is a record.
var recordFields = []string{"total_ram", "ram_libre", "uso_ram", "porcentaje_cpu_uso", "porcentaje_ram", "total_procesos", "hora"}

func isRecord(obj map[string]json.RawMessage) bool {
	for _, f := range recordFields {
		if _, ok := obj[f]; ok {
			return true
		}
	}
	return false
}

type unitHint struct{ where, value, unit string }

// findHints looks for members named like a unit ("ram_unit", "units", "unidad")
// whose value names one, in the file's other members, two levels deep.
func findHints(key string, v json.RawMessage, depth int) []unitHint {
	lk := strings.ToLower(key)
	var s string
	if json.Unmarshal(v, &s) == nil {
		if strings.Contains(lk, "unit") || strings.Contains(lk, "unidad") {
			if u := unitWord(s); u != "" {
				return []unitHint{{key, s, u}}
			}
		}
		return nil
	}
	var m map[string]json.RawMessage
	if depth >= 2 || json.Unmarshal(v, &m) != nil {
		return nil
	}
	// A member "units": {"total_ram": "KB", ...} names the unit of each field.
	var hs []unitHint
	for k, sub := range m {
		where := key + "." + k
		if strings.Contains(lk, "unit") || strings.Contains(lk, "unidad") {
			if slices.Contains([]string{"total_ram", "ram", "memory", "memoria"}, strings.ToLower(k)) {
				if json.Unmarshal(sub, &s) == nil && unitWord(s) != "" {
					hs = append(hs, unitHint{where, s, unitWord(s)})
				}
			}
			continue
		}
		for _, h := range findHints(k, sub, depth+1) {
			h.where = key + "." + h.where
			hs = append(hs, h)
		}
	}
	return hs
}

// detectUnit chooses the unit of the file's RAM figures and says why.
func detectUnit(raws []json.RawMessage, given string, hints []unitHint) (unit, reason string, err error) {
	var totals []float64
	for _, r := range raws {
		var probe struct {
			Total json.Number `json:"total_ram"`
		}
		if json.Unmarshal(r, &probe) != nil || probe.Total == "" {
			continue
		}
		if v, err := probe.Total.Float64(); err == nil && v > 0 {
			totals = append(totals, v)
		}
	}
	if given != UnitAuto {
		return given, "given by -ram-unit", nil
	}
	hinted := ""
	var hintText []string
	for _, h := range hints {
		if hinted != "" && h.unit != hinted {
			return "", "", fmt.Errorf("the file names two RAM units (%s): pass -ram-unit mib, kib or bytes", describeHints(hints))
		}
		hinted = h.unit
		hintText = append(hintText, fmt.Sprintf("%s is %q", h.where, h.value))
	}
	if len(totals) == 0 {
		if hinted != "" {
			return hinted, "the file says so: " + strings.Join(hintText, ", "), nil
		}
		return UnitMiB, "no record has a total_ram to tell the unit by; nothing converted", nil
	}
	// Every record's total must point at the same unit.
	byUnit := map[string]int{}
	for _, v := range totals {
		byUnit[unitOf(v)]++
	}
	sort.Float64s(totals)
	med := totals[len(totals)/2]
	magnitude := unitOf(med)
	if len(byUnit) > 1 {
		var parts []string
		for _, u := range []string{UnitMiB, UnitKiB, UnitBytes, ""} {
			if n := byUnit[u]; n > 0 {
				name := UnitName(u)
				if u == "" {
					name = "none (implausible)"
				}
				parts = append(parts, fmt.Sprintf("%d look like %s", n, name))
			}
		}
		return "", "", fmt.Errorf("the records' total_ram values disagree on their unit (%s; total_ram %s..%s): pass -ram-unit mib, kib or bytes",
			strings.Join(parts, ", "), fmtNum(totals[0]), fmtNum(totals[len(totals)-1]))
	}
	if magnitude == "" {
		return "", "", fmt.Errorf("total_ram %s is no plausible VM size in MiB, KiB or bytes (want 256 MiB..256 GiB): pass -ram-unit mib, kib or bytes", fmtNum(med))
	}
	why := fmt.Sprintf("total_ram %s is %s read as %s", fmtNum(med), humanMiB(med/unitDiv[magnitude]), UnitName(magnitude))
	if magnitude != UnitMiB {
		why += fmt.Sprintf(" but %s read as MiB", humanMiB(med))
	}
	why += medianOf(len(totals)) + "; a VM has 256 MiB..256 GiB"
	if hinted != "" {
		if hinted != magnitude {
			return "", "", fmt.Errorf("the file says its RAM unit is %s (%s) but %s: pass -ram-unit to say which is right",
				UnitName(hinted), strings.Join(hintText, ", "), why)
		}
		return hinted, "the file says so (" + strings.Join(hintText, ", ") + ") and " + why, nil
	}
	return magnitude, why, nil
}

func describeHints(hs []unitHint) string {
	var s []string
	for _, h := range hs {
		s = append(s, fmt.Sprintf("%s is %q", h.where, h.value))
	}
	return strings.Join(s, ", ")
}

func medianOf(n int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf(" (the median of %d records)", n)
}

// unitOf is the unit in which a total_ram of v is a plausible VM size ("" if none).
func unitOf(v float64) string {
	for _, u := range []string{UnitMiB, UnitKiB, UnitBytes} {
		m := v / unitDiv[u]
		if m >= minVMRAMMiB && m < maxVMRAMMiB {
			return u
		}
	}
	return ""
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// humanMiB writes a size in MiB the way people read it.
func humanMiB(m float64) string {
	switch {
	case m >= 1<<20:
		return fmt.Sprintf("%.1f TiB", m/(1<<20))
	case m >= 1<<10:
		return fmt.Sprintf("%.1f GiB", m/(1<<10))
	default:
		return fmt.Sprintf("%.0f MiB", m)
	}
}

// ramFields are the figures converted to MiB.
var ramFields = []string{"total_ram", "ram_libre", "uso_ram"}

// convertRAM divides the record's RAM figures by div, rounding to the nearest MiB
// (halves up), and re-encodes it. Other members are kept byte for byte (the object's
// members come out sorted by name). A figure that is not a number is left for the
// ingress to reject.
func convertRAM(raw []byte, div float64) ([]byte, bool, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false, err
	}
	changed := false
	for _, f := range ramFields {
		v, ok := m[f]
		if !ok {
			continue
		}
		var n json.Number
		if json.Unmarshal(v, &n) != nil {
			continue
		}
		x, err := n.Float64()
		if err != nil {
			continue
		}
		m[f] = json.RawMessage(strconv.FormatInt(int64(math.Floor(x/div+0.5)), 10))
		changed = true
	}
	if !changed {
		return raw, false, nil
	}
	b, err := json.Marshal(m)
	return b, true, err
}
