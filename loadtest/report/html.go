package report

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/vmpulse/vmpulse/loadtest/driver"
)

// WriteJSON writes the report's data for tools.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(r)
}

// WriteHTML writes the report as one self-contained HTML file: inline CSS and SVG,
// no script, no external resource, so that it opens from disk anywhere.
func (r *Report) WriteHTML(w io.Writer) error {
	return page.Execute(w, r)
}

var funcs = template.FuncMap{
	"ts":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"hms":     func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"f1":      func(x float64) string { return strconv.FormatFloat(Round1(x), 'f', 1, 64) },
	"f3":      func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) },
	"pval":    func(x float64) string { return strconv.FormatFloat(x, 'g', 4, 64) },
	"pct":     pct,
	"dur":     func(s float64) string { return Elapsed(int(s)) },
	"unit":    driver.UnitName,
	"cpuSVG":  func(v VMReport) template.HTML { return vmChart(v, "CPU", true) },
	"ramSVG":  func(v VMReport) template.HTML { return vmChart(v, "RAM", false) },
	"procSVG": procBar,
	"raceSVG": raceChart,
	"splitSVG": func(s *SplitFigures) template.HTML {
		return splitBar(s)
	},
	"verdictClass": func(v string) string { return "v-" + v },
	"anchor": func(s string) string {
		return "vm-" + strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
				return r
			}
			return '_'
		}, s)
	},
}

var page = template.Must(template.New("report").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vmpulse load report · {{ts .Started}}</title>
<style>
:root { color-scheme: light; --ink: #1d2330; --muted: #5b6474; --line: #d9dee7; --bg: #f6f7f9;
  --cpu: #1f6feb; --ram: #8250df; --users: #9aa3b2; --r1: #0a7d5a; --r2: #c2410c; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: var(--ink); background: var(--bg); }
main { max-width: 1080px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 16px 0 6px; color: var(--muted); font-weight: 600; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px; margin: 18px 0; }
.sub { color: var(--muted); margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 13px; }
td.n, th.n { text-align: right; }
.verdict { display: flex; gap: 14px; align-items: baseline; flex-wrap: wrap; margin: 4px 0 10px; }
.badge { display: inline-block; padding: 3px 12px; border-radius: 999px; font-weight: 700; text-transform: uppercase; letter-spacing: .04em; font-size: 14px; color: #fff; }
.v-fail { background: #b42318; } .v-tight { background: #b54708; } .v-ok { background: #067647; }
.v-unstressed { background: #475467; } .v-insufficient { background: #98a2b3; }
.explain { font-size: 17px; font-weight: 600; }
.rule { color: var(--muted); font-size: 13px; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
@media (max-width: 800px) { .charts { grid-template-columns: 1fr; } }
svg { display: block; width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
.legend { font-size: 12px; color: var(--muted); }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px 0 10px; vertical-align: -1px; }
.ok { color: #067647; font-weight: 600; } .bad { color: #b42318; font-weight: 600; }
ul.params { margin: 6px 0; padding-left: 18px; } .note { color: #b54708; }
nav a { margin-right: 12px; }
</style>
</head>
<body>
<main>
<header>
<h1>vmpulse load report</h1>
<p class="sub">Can these VMs carry the load? Generated {{ts .Generated}} from {{.RunFile}}.</p>
<nav><a href="#run">Run</a>{{range .VMs}}<a href="#{{anchor .VM}}">{{.VM}}</a>{{end}}<a href="#load">Load</a><a href="#split">Split</a><a href="#race">Route race</a></nav>
</header>

<section id="run" data-section="run">
<h2>Run</h2>
<p>From {{ts .Started}} to {{ts .Ended}} ({{dur (.Ended.Sub .Started).Seconds}}).</p>
<ul class="params">{{range .Params}}<li>{{.}}</li>{{end}}</ul>
{{range .Notes}}<p class="note">{{.}}</p>{{end}}
<table><tr><th>VM</th><th>verdict</th><th class="n">samples</th><th class="n">CPU p95</th><th class="n">RAM peak</th><th>why</th></tr>
{{range .VMs}}<tr><td><a href="#{{anchor .VM}}">{{.VM}}</a></td><td><span class="badge {{verdictClass .Judgement.Verdict}}">{{.Judgement.Verdict}}</span></td><td class="n">{{.Samples}}</td><td class="n">{{f1 .Judgement.CPUP95}} %</td><td class="n">{{f1 .Judgement.RAMPeak}} %</td><td>{{.Judgement.Explanation}}</td></tr>
{{end}}</table>
</section>

{{range .VMs}}
<section id="{{anchor .VM}}" class="vm" data-section="vm" data-vm="{{.VM}}">
<h2>VM {{.VM}}</h2>
<div class="verdict"><span class="badge {{verdictClass .Judgement.Verdict}}">{{.Judgement.Verdict}}</span><span class="explain">{{.Judgement.Explanation}}</span></div>
<p class="rule">Rule for {{.Judgement.Verdict}}: {{.Judgement.Rule}}. CPU is judged on one-second means; the verdict is insufficient under 30 samples or 30 s, fail at CPU p95 ≥ 90 % or RAM peak ≥ 90 %, tight at CPU p95 ≥ 70 % or RAM peak ≥ 80 %, unstressed below CPU p95 25 % and RAM peak 50 %, ok otherwise.</p>
<table>
<tr><th>window ({{.WindowFrom}})</th><th class="n">samples in MySQL</th><th class="n">seconds covered</th><th class="n">CPU p95</th><th class="n">CPU mean</th><th class="n">RAM peak</th><th class="n">RAM mean</th><th class="n">peak users</th></tr>
<tr><td>{{hms .WindowStart}} – {{hms .WindowEnd}}</td><td class="n">{{.Samples}}</td><td class="n">{{.Judgement.SpanS}}</td><td class="n">{{f1 .Judgement.CPUP95}} %</td><td class="n">{{f1 .CPUMean}} %</td><td class="n">{{f1 .Judgement.RAMPeak}} %</td><td class="n">{{f1 .RAMMean}} %</td><td class="n">{{.PeakUsers}}</td></tr>
</table>
<div class="charts">
<figure style="margin:0"><h3>CPU (one-second means)</h3>{{cpuSVG .}}</figure>
<figure style="margin:0"><h3>RAM</h3>{{ramSVG .}}</figure>
</div>
<p class="legend"><span class="sw" style="background:var(--cpu)"></span>CPU %<span class="sw" style="background:var(--ram)"></span>RAM %<span class="sw" style="background:var(--users)"></span>users (right axis)<span class="sw" style="background:#b54708"></span>tight<span class="sw" style="background:#b42318"></span>fail</p>
<h3>Process states</h3>
{{procSVG .Processes}}
<table><tr><th>state</th><th class="n">mean</th><th class="n">max</th></tr>
{{range .Processes}}<tr><td>{{.State}}</td><td class="n">{{f1 .Mean}}</td><td class="n">{{.Max}}</td></tr>{{end}}
</table>
</section>
{{end}}

<section id="load" data-section="load">
<h2>Load</h2>
<table>
<tr><th>phase</th><th>against</th><th class="n">users</th><th class="n">time</th><th class="n">requests</th><th class="n">failures</th><th class="n">req/s</th><th class="n">p50 ms</th><th class="n">p95 ms</th><th class="n">p99 ms</th><th class="n">records</th><th>outcome</th></tr>
{{range .Phases}}<tr><td>{{.Phase}}<br><span class="rule">{{.Tool}}</span></td><td>{{.URL}}<br><span class="rule">{{.VM}}</span></td><td class="n">{{.Users}}</td><td class="n">{{dur .Seconds}}</td><td class="n">{{.Requests}}</td><td class="n">{{.Failures}}</td><td class="n">{{f1 .ReqPerSec}}</td><td class="n">{{f1 .Latency.P50MS}}</td><td class="n">{{f1 .Latency.P95MS}}</td><td class="n">{{f1 .Latency.P99MS}}</td><td class="n">{{.Done}}/{{.Target}}</td><td>{{if eq .Outcome "ok"}}<span class="ok">ok</span>{{else}}<span class="bad">{{.Outcome}}</span>{{end}}{{if .Message}}<br><span class="rule">{{.Message}}</span>{{end}}</td></tr>
{{end}}</table>
</section>

<section id="split" data-section="split">
<h2>The 50/50 split</h2>
{{with .Split}}
{{splitSVG .}}
<table><tr><th>route</th><th class="n">records</th><th class="n">share</th></tr>
{{$t := .Total}}{{range $r, $n := .PerRoute}}<tr><td>{{$r}}</td><td class="n">{{$n}}</td><td class="n">{{pct $n $t}} %</td></tr>{{end}}
</table>
<p>Pearson's chi-square against 50/50: χ² = {{f3 .ChiSquare}} (1 degree of freedom), p = {{pval .P}}:
{{if .Consistent}}<span class="ok">consistent with 50/50</span>{{else}}<span class="bad">not consistent with 50/50</span>{{end}} at α = {{pval .Alpha}}.
Counted from {{.Source}}{{if .Missing}}; <span class="bad">{{.Missing}} records sent are not in MySQL</span>{{end}}.</p>
{{else}}<p>No send phase in this run.</p>{{end}}
</section>

<section id="race" data-section="race">
<h2>Route race</h2>
{{if .Race}}
<table><tr><th>route</th><th class="n">rows stored</th><th class="n">rows/s</th><th class="n">peak rows/s</th><th class="n">commit p50 ms</th><th class="n">commit p95 ms</th><th class="n">201 bodies</th><th>stored</th></tr>
{{range .Race}}<tr><td>{{.Route}}</td><td class="n">{{.Rows}}</td><td class="n">{{f1 .RowsPerSec}}</td><td class="n">{{.PeakPerSec}}</td><td class="n">{{f3 .CommitP50MS}}</td><td class="n">{{f3 .CommitP95MS}}</td><td class="n">{{.Acks}}</td><td>{{if .Rows}}{{hms .FirstStored}} – {{hms .LastStored}}{{end}}</td></tr>{{end}}
</table>
<div class="charts"><figure style="margin:0"><h3>Rows stored per second</h3>{{raceSVG .Race}}</figure></div>
<p class="rule">Throughput from MySQL (route and stored_at of each record sent); commit latency from the routes' 201 bodies (commit_ms).</p>
{{else}}<p>No send phase in this run.</p>{{end}}
</section>
</main>
</body>
</html>
`))

// chart geometry
const (
	cw, ch             = 480, 200
	padL, padR, padT   = 36, 62, 10
	padB               = 24
	plotW              = cw - padL - padR
	plotH              = ch - padT - padB
	tightCol, failCol  = "#b54708", "#b42318"
	usersCol           = "#9aa3b2"
	cpuCol, ramCol     = "#1f6feb", "#8250df"
	route1Col, route2C = "#0a7d5a", "#c2410c"
)

func fx(x float64) string { return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64) }

// vmChart draws CPU or RAM (0..100 %) over the window, its thresholds, and the users.
func vmChart(v VMReport, what string, cpu bool) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" role="img" aria-label="%s of %s over time">`, cw, ch, what, html.EscapeString(v.VM))
	maxT := 1
	for _, p := range v.Series {
		maxT = max(maxT, p.T)
	}
	maxT = max(maxT, int(v.WindowEnd.Sub(v.WindowStart.Truncate(time.Second))/time.Second))
	x := func(t int) float64 { return padL + float64(t)/float64(maxT)*plotW }
	y := func(p float64) float64 { return padT + (1-p/100)*plotH }
	axes(&b, maxT, "%")
	tight, fail := 70.0, 90.0
	if !cpu {
		tight = 80
	}
	for _, th := range []struct {
		v   float64
		col string
	}{{tight, tightCol}, {fail, failCol}} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="%s" stroke-dasharray="4 3"/>`, padL, padL+plotW, fx(y(th.v)), fx(y(th.v)), th.col)
	}
	// users, right axis
	maxU := 0
	for _, p := range v.Series {
		maxU = max(maxU, p.Users)
	}
	if maxU > 0 {
		var pts []string
		for _, p := range v.Series {
			if p.Users >= 0 {
				pts = append(pts, fx(x(p.T))+","+fx(padT+(1-float64(p.Users)/float64(maxU))*plotH))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, usersCol, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="start">%d users</text>`, padL+plotW+3, padT+8, maxU)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="start">0</text>`, padL+plotW+3, padT+plotH)
	}
	col := cpuCol
	if !cpu {
		col = ramCol
	}
	var pts []string
	for _, p := range v.Series {
		val := p.CPU
		if !cpu {
			val = p.RAM
		}
		pts = append(pts, fx(x(p.T))+","+fx(y(val)))
	}
	if len(pts) == 1 {
		pts = append(pts, pts[0])
	}
	if len(pts) > 0 {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`, col, strings.Join(pts, " "))
	} else {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">no samples in MySQL for this window</text>`, padL+plotW/2, padT+plotH/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// axes draws the frame, a 0/50/100 grid and time ticks (m:ss since the start).
func axes(b *strings.Builder, maxT int, unit string) {
	for _, p := range []int{0, 25, 50, 75, 100} {
		y := padT + (1-float64(p)/100)*plotH
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="#e7eaf0"/>`, padL, padL+plotW, fx(y), fx(y))
		if unit != "" {
			fmt.Fprintf(b, `<text x="%d" y="%s" text-anchor="end">%d%s</text>`, padL-4, fx(y+4), p, unit)
		}
	}
	step := niceStep(maxT)
	for t := 0; t <= maxT; t += step {
		x := padL + float64(t)/float64(maxT)*plotW
		fmt.Fprintf(b, `<text x="%s" y="%d" text-anchor="middle">%d:%02d</text>`, fx(x), ch-6, t/60, t%60)
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#c5cbd6"/>`, padL, padT, plotW, plotH)
}

func niceStep(maxT int) int {
	for _, s := range []int{5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600} {
		if maxT/s <= 6 {
			return s
		}
	}
	return 7200
}

// procBar is a stacked bar of the mean process counts by state.
func procBar(ps []ProcState) template.HTML {
	var total float64
	parts := map[string]float64{}
	for _, p := range ps {
		if p.State == "total" {
			total = p.Mean
		} else {
			parts[p.State] = p.Mean
		}
	}
	other := max(total-parts["running"]-parts["sleeping"]-parts["zombie"]-parts["stopped"], 0)
	segs := []struct {
		name string
		v    float64
		col  string
	}{{"running", parts["running"], "#1f6feb"}, {"sleeping", parts["sleeping"], "#98a2b3"}, {"zombie", parts["zombie"], "#b42318"},
		{"stopped", parts["stopped"], "#b54708"}, {"other (idle kernel threads, disk wait)", other, "#d0d5dd"}}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d 46" role="img" aria-label="mean processes by state">`, cw*2)
	if total <= 0 {
		b.WriteString(`<text x="4" y="20">no samples</text></svg>`)
		return template.HTML(b.String())
	}
	x := 0.0
	lx := 0.0
	for _, s := range segs {
		w := s.v / total * float64(cw*2)
		if w > 0 {
			fmt.Fprintf(&b, `<rect x="%s" y="2" width="%s" height="18" fill="%s"/>`, fx(x), fx(w), s.col)
		}
		x += w
		fmt.Fprintf(&b, `<rect x="%s" y="30" width="10" height="10" fill="%s"/><text x="%s" y="39">%s %s</text>`,
			fx(lx), s.col, fx(lx+14), html.EscapeString(s.name), strconv.FormatFloat(Round1(s.v), 'f', 1, 64))
		lx += float64(len(s.name))*6.2 + 70
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// splitBar shows the two routes' shares against the 50 % mark.
func splitBar(s *SplitFigures) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d 34" role="img" aria-label="records per route">`, cw*2)
	if s.Total == 0 {
		b.WriteString(`<text x="4" y="20">no records</text></svg>`)
		return template.HTML(b.String())
	}
	w1 := float64(s.PerRoute["route1"]) / float64(s.Total) * float64(cw*2)
	fmt.Fprintf(&b, `<rect x="0" y="2" width="%s" height="22" fill="%s"/>`, fx(w1), route1Col)
	fmt.Fprintf(&b, `<rect x="%s" y="2" width="%s" height="22" fill="%s"/>`, fx(w1), fx(float64(cw*2)-w1), route2C)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="0" y2="28" stroke="#1d2330" stroke-width="2"/>`, cw, cw)
	fmt.Fprintf(&b, `<text x="6" y="17" style="fill:#fff">route1 %s %%</text><text x="%d" y="17" text-anchor="end" style="fill:#fff">route2 %s %%</text>`,
		pct(s.PerRoute["route1"], s.Total), cw*2-6, pct(s.PerRoute["route2"], s.Total))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// raceChart draws the rows each route stored per second.
func raceChart(race []RouteRace) template.HTML {
	maxT, maxN := 1, 1
	for _, r := range race {
		maxT = max(maxT, len(r.PerSecond)-1)
		for _, n := range r.PerSecond {
			maxN = max(maxN, n)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" role="img" aria-label="rows stored per second by route">`, cw, ch)
	axes(&b, maxT, "")
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%d/s</text><text x="%d" y="%d" text-anchor="end">0</text>`, padL-4, padT+8, maxN, padL-4, padT+plotH)
	for i, r := range race {
		col := route1Col
		if i%2 == 1 {
			col = route2C
		}
		var pts []string
		for t, n := range r.PerSecond {
			pts = append(pts, fx(padL+float64(t)/float64(maxT)*plotW)+","+fx(padT+(1-float64(n)/float64(maxN))*plotH))
		}
		if len(pts) == 1 {
			pts = append(pts, pts[0])
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`, col, strings.Join(pts, " "))
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" text-anchor="start">%s</text>`,
			padL+8+i*90, padT+6, col, padL+22+i*90, padT+15, html.EscapeString(r.Route))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
