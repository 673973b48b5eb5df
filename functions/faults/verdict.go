package faults

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// SeenWithin is how soon after the end of a fault every stored record must have
// reached a websocket client.
const SeenWithin = 30 * time.Second

// Row is one line of the fault table.
type Row struct {
	Fault        string
	Acked        int           // ids acknowledged 2xx
	AckedMissing int           // acknowledged but not in MySQL
	Duplicates   int           // ids stored more than once
	InMySQL      int           // ids in MySQL
	Seen         int           // of those, seen on a websocket within SeenWithin after the fault
	Late         int           // seen, but later than that
	Never        int           // never seen by the time the check gave up
	WorstLag     time.Duration // max over the ids seen of sighting − max(fault end, stored_at); ids never seen are left out (Never counts them)
	Unsent       int           // records the sender ended with unacknowledged
	Rejected     int           // 4xx
	PeakRSS      map[string]float64
	Elapsed      time.Duration
	Notes        []string
	Failed       []string // failed criteria
}

// Verdict applies the pass criteria after a fault that ended at faultEnd: the
// load must be done (Wait). It waits until every id in MySQL was seen on the
// websocket or SeenWithin has passed for each, and fills the row.
func (s *Stack) Verdict(ctx context.Context, fault string, ld *Load, acked []string, faultEnd time.Time) Row {
	row := Row{Fault: fault, Acked: len(acked), PeakRSS: map[string]float64{}}
	var ids map[string]time.Time
	var dups map[string]int
	var err error
	// MariaDB may be restarting: retry reading for a while.
	for i := 0; i < 60; i++ {
		if ids, dups, err = s.rowsInMySQL(ctx); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		row.Failed = append(row.Failed, "could not read MySQL: "+err.Error())
		return row
	}
	due := func(stored time.Time) time.Time {
		if stored.Before(faultEnd) {
			stored = faultEnd
		}
		return stored.Add(SeenWithin)
	}
	var lastDue time.Time
	for _, at := range ids {
		if d := due(at); d.After(lastDue) {
			lastDue = d
		}
	}
	// Past the deadline, keep watching while records still arrive (at most
	// lateGrace more), to tell late records from lost ones.
	const lateGrace, stillArriving = 60 * time.Second, 5 * time.Second
	lastMissing, lastProgress := -1, time.Now()
	for {
		missing := 0
		for id := range ids {
			if _, ok := s.WS.Has(id); !ok {
				missing++
			}
		}
		now := time.Now()
		if missing != lastMissing {
			lastMissing, lastProgress = missing, now
		}
		if missing == 0 || now.After(lastDue.Add(lateGrace)) ||
			(now.After(lastDue) && now.Sub(lastProgress) > stillArriving) {
			break
		}
		time.Sleep(250 * time.Millisecond)
		// Rows committed late (a hung request finishing) count too.
		if more, d2, err := s.rowsInMySQL(ctx); err == nil {
			for id, at := range more {
				if _, ok := ids[id]; !ok {
					ids[id] = at
					if d := due(at); d.After(lastDue) {
						lastDue = d
					}
				}
			}
			dups = d2
		}
	}
	row.InMySQL = len(ids)
	row.Duplicates = len(dups)
	for _, id := range acked {
		if _, ok := ids[id]; !ok {
			row.AckedMissing++
		}
	}
	seen := s.WS.Seen()
	var neverIDs []string
	for id, at := range ids {
		sg, ok := seen[id]
		if !ok {
			row.Never++
			neverIDs = append(neverIDs, id)
			continue
		}
		from := at
		if from.Before(faultEnd) {
			from = faultEnd
		}
		lag := sg.At.Sub(from)
		if lag > row.WorstLag {
			row.WorstLag = lag
		}
		if sg.At.After(due(at)) {
			row.Late++
		} else {
			row.Seen++
		}
	}
	if ld != nil && ld.Result != nil {
		row.Unsent = len(ld.Result.Unsent)
		row.Rejected = len(ld.Result.Rejected)
	}
	for _, p := range s.Processes() {
		row.PeakRSS[p.Name] = p.PeakRSS()
	}

	if row.AckedMissing > 0 {
		row.Failed = append(row.Failed, fmt.Sprintf("%d acknowledged ids not in MySQL", row.AckedMissing))
	}
	if row.Duplicates > 0 {
		row.Failed = append(row.Failed, fmt.Sprintf("%d ids stored more than once", row.Duplicates))
	}
	if row.Never > 0 && s.Witness != nil {
		pub := 0
		for _, id := range neverIDs {
			if s.Witness.Published(id) {
				pub++
			}
		}
		row.Notes = append(row.Notes, fmt.Sprintf("of the %d never seen, %d were on the topic (the harness's own subscription saw them: lost or stuck in the relay) and %d were not (never published by a route)", row.Never, pub, row.Never-pub))
	}
	if row.Never > 0 {
		slices.Sort(neverIDs)
		ex := neverIDs[:min(3, len(neverIDs))]
		row.Failed = append(row.Failed, fmt.Sprintf("%d ids in MySQL never reached a websocket (e.g. %s)", row.Never, strings.Join(ex, ", ")))
	}
	if row.Late > 0 {
		row.Failed = append(row.Failed, fmt.Sprintf("%d ids reached a websocket later than %v after the fault", row.Late, SeenWithin))
	}
	if row.Unsent > 0 {
		row.Failed = append(row.Failed, fmt.Sprintf("the sender ended with %d records unsent (give-up window %v)", row.Unsent, giveUpWindow().Round(time.Second)))
	}
	if row.Rejected > 0 {
		row.Failed = append(row.Failed, fmt.Sprintf("%d records rejected (4xx): %s", row.Rejected, ld.Result.Rejected[0].Message))
	}
	for _, p := range s.Processes() {
		if p.PeakRSS() > p.LimitMiB {
			row.Failed = append(row.Failed, fmt.Sprintf("%s peak RSS %.0f MiB > limit %.0f MiB", p.Name, p.PeakRSS(), p.LimitMiB))
		}
	}
	if row.InMySQL == 0 {
		row.Failed = append(row.Failed, "nothing reached MySQL: the scenario proved nothing")
	}
	return row
}

// Table collects rows from concurrent subtests.
type Table struct {
	mu   sync.Mutex
	rows []Row
}

// Add appends a row.
func (t *Table) Add(r Row) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows = append(t.rows, r)
}

// Rows returns the rows in insertion order.
func (t *Table) Rows() []Row {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Row(nil), t.rows...)
}

// Header is the markdown header of the table.
const Header = "| fault | acknowledged | in MySQL | seen on a websocket | worst lag after the fault | unsent | peak RSS MiB (route1 / route2 / relay) | time | verdict |\n|---|---|---|---|---|---|---|---|---|"

// Markdown formats one row.
func (r Row) Markdown() string {
	inMySQL := fmt.Sprint(r.InMySQL)
	if r.AckedMissing > 0 || r.Duplicates > 0 {
		inMySQL += fmt.Sprintf(" (%d acked missing, %d dup)", r.AckedMissing, r.Duplicates)
	}
	seen := fmt.Sprintf("%d", r.Seen)
	if r.Late > 0 || r.Never > 0 {
		seen += fmt.Sprintf(" (+%d late, %d never)", r.Late, r.Never)
	}
	lag := fmtDur(r.WorstLag)
	if r.Never > 0 {
		lag = "∞ (" + lag + " for the rest)"
	}
	rss := func(n string) string {
		if v, ok := r.PeakRSS[n]; ok {
			return fmt.Sprintf("%.0f", v)
		}
		return "–"
	}
	verdict := "PASS"
	if len(r.Failed) > 0 {
		verdict = "FAIL: " + strings.Join(r.Failed, "; ")
	}
	if len(r.Notes) > 0 {
		verdict += " [" + strings.Join(r.Notes, "; ") + "]"
	}
	return fmt.Sprintf("| %s | %d | %s | %s | %s | %d | %s / %s / %s | %s | %s |",
		r.Fault, r.Acked, inMySQL, seen, lag, r.Unsent, rss("route1"), rss("route2"), rss("relay"),
		fmtDur(r.Elapsed), strings.ReplaceAll(verdict, "|", "/"))
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

// SortedFaults orders rows by fault name for a stable table.
func SortedFaults(rows []Row, order []string) []Row {
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	out := append([]Row(nil), rows...)
	sort.SliceStable(out, func(i, j int) bool { return pos[out[i].Fault] < pos[out[j].Fault] })
	return out
}
