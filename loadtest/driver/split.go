package driver

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Routes are the two ingest routes the split divides records between, 50/50.
var Routes = []string{"route1", "route2"}

// SplitReport says where the records of a file ended up.
type SplitReport struct {
	FileRecords  int // records in the file
	Invalid      int // records the contract rejects (not expected in MySQL)
	UniqueKeys   int // distinct ids among the valid records
	DuplicateIDs int // valid records whose id appeared earlier in the file

	Found      int            // distinct ids found in the table
	Missing    []string       // ids not in the table
	DupRows    int            // extra rows for an id already seen (0 with the id primary key)
	PerRoute   map[string]int // rows per route among the found ids
	ChiSquare  float64        // of route1/route2 against 50/50
	P          float64        // its p-value
	Alpha      float64        // significance level the verdict uses
	Consistent bool           // P >= Alpha
}

// OK reports whether every record is stored exactly once and the split is consistent
// with 50/50.
func (r *SplitReport) OK() bool {
	return len(r.Missing) == 0 && r.DupRows == 0 && r.Consistent && r.PerRoute["other"] == 0
}

// Split reads back from the records table which route stored each record of items and
// tests the route counts against 50/50 with Pearson's chi-square (alpha, default 0.001).
func Split(ctx context.Context, db *sql.DB, items []Item, alpha float64) (*SplitReport, error) {
	if alpha <= 0 {
		alpha = 0.001
	}
	rep := &SplitReport{FileRecords: len(items), PerRoute: map[string]int{}, Alpha: alpha}
	var keys []string
	seen := map[string]bool{}
	for _, it := range items {
		if it.Err != nil || it.Key == "" {
			rep.Invalid++
			continue
		}
		if seen[it.Key] {
			rep.DuplicateIDs++
			continue
		}
		seen[it.Key] = true
		keys = append(keys, it.Key)
	}
	rep.UniqueKeys = len(keys)

	found := map[string]bool{}
	const chunk = 500
	for i := 0; i < len(keys); i += chunk {
		part := keys[i:min(i+chunk, len(keys))]
		args := make([]any, len(part))
		for k, id := range part {
			args[k] = id
		}
		q := "SELECT id, route FROM records WHERE id IN (?" + strings.Repeat(",?", len(part)-1) + ")"
		rows, err := db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("split: %w", err)
		}
		for rows.Next() {
			var id, route string
			if err := rows.Scan(&id, &route); err != nil {
				rows.Close()
				return nil, fmt.Errorf("split: %w", err)
			}
			if found[id] {
				rep.DupRows++
				continue
			}
			found[id] = true
			if !slices.Contains(Routes, route) {
				route = "other"
			}
			rep.PerRoute[route]++
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("split: %w", err)
		}
	}
	rep.Found = len(found)
	for _, k := range keys {
		if !found[k] {
			rep.Missing = append(rep.Missing, k)
		}
	}
	obs := make([]int64, len(Routes))
	w := make([]float64, len(Routes))
	for i, r := range Routes {
		obs[i] = int64(rep.PerRoute[r])
		w[i] = 1
	}
	rep.ChiSquare, rep.P = ChiSquare(obs, w)
	rep.Consistent = rep.P >= alpha
	return rep, nil
}

// Write prints the report for people.
func (r *SplitReport) Write(w io.Writer) {
	fmt.Fprintf(w, "split report: %d records in the file", r.FileRecords)
	if r.Invalid > 0 {
		fmt.Fprintf(w, ", %d invalid (not expected in MySQL)", r.Invalid)
	}
	if r.DuplicateIDs > 0 {
		fmt.Fprintf(w, ", %d duplicate ids", r.DuplicateIDs)
	}
	fmt.Fprintf(w, "; %d distinct ids, %d found in MySQL, %d missing", r.UniqueKeys, r.Found, len(r.Missing))
	if r.DupRows > 0 {
		fmt.Fprintf(w, ", %d duplicate rows", r.DupRows)
	}
	fmt.Fprintln(w)
	for i, m := range r.Missing {
		if i == 10 {
			fmt.Fprintf(w, "  … and %d more missing\n", len(r.Missing)-10)
			break
		}
		fmt.Fprintf(w, "  missing: %s\n", m)
	}
	total := 0
	for _, n := range r.PerRoute {
		total += n
	}
	for _, route := range slices.Sorted(maps.Keys(r.PerRoute)) {
		n := r.PerRoute[route]
		fmt.Fprintf(w, "  %-7s %6d rows  %5.1f%%\n", route, n, pct(n, total))
	}
	verdict := "consistent with 50/50"
	if !r.Consistent {
		verdict = "NOT consistent with 50/50"
	}
	fmt.Fprintf(w, "  chi-square vs 50/50: %.3f (1 degree of freedom), p = %.4g: %s at alpha = %g\n",
		r.ChiSquare, r.P, verdict, r.Alpha)
}

func pct(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}
