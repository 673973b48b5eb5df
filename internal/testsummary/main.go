// Command testsummary reads `go test -json` on stdin, prints what plain `go test`
// prints (each package's result, and the output of failing tests), and ends with
// a summary that names every skipped test and why: a run where the integration
// suite skipped because MariaDB or the emulator was missing says so at the
// bottom, instead of showing PASS. Below that it repeats, for every failed test, the
// lines its test files logged (file:line and the message's first line), so that a CI
// log cut to its last lines still says why. It exits 1 when a test or a build failed.
//
//	go test -json ./... | go run ./internal/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// logLine is the first line of a t.Log/t.Error/t.Fatal message: indented file:line.
var logLine = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: `)

// maxWhy bounds what the closing section repeats per failed test.
const (
	maxWhyLines = 20
	maxWhyChars = 300
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type key struct{ pkg, test string }

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	output := map[key][]string{}
	var skipped, failures []string
	skipReason := map[key]string{}
	failed := 0
	passed, nskipped := 0, 0
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Fprintln(out, string(line)) // build errors and other plain output
			if strings.Contains(string(line), "FAIL") || strings.Contains(string(line), "build failed") {
				failed++
			}
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			output[k] = append(output[k], e.Output)
			if e.Test != "" && strings.Contains(e.Output, ".go:") && skipReason[k] == "" {
				skipReason[k] = strings.TrimSpace(e.Output)
			}
		case "skip":
			if e.Test != "" {
				nskipped++
				skipped = append(skipped, fmt.Sprintf("%s %s: %s", e.Package, e.Test, skipReason[k]))
			}
		case "pass":
			if e.Test != "" {
				passed++
			} else {
				fmt.Fprintf(out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
			}
			delete(output, k)
		case "fail":
			if e.Test == "" {
				fmt.Fprint(out, strings.Join(output[k], ""))
				fmt.Fprintf(out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
			} else {
				failed++
				fmt.Fprint(out, strings.Join(output[k], ""))
				failures = append(failures, why(e.Package, e.Test, output[k]))
			}
			delete(output, k)
		}
	}
	sort.Strings(skipped)
	fmt.Fprintf(out, "\n%d tests passed, %d failed, %d skipped\n", passed, failed, nskipped)
	if len(skipped) > 0 {
		fmt.Fprintln(out, "SKIPPED (these did not run; see why):")
		for _, s := range skipped {
			fmt.Fprintln(out, "  "+s)
		}
	}
	if len(failures) > 0 {
		fmt.Fprintln(out, "FAILED (what each failed test logged, first line of each message):")
		for _, f := range failures {
			fmt.Fprint(out, f)
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// why is a failed test's name and the first line of each message its test files
// logged, the last maxWhyLines of them, each cut to maxWhyChars.
func why(pkg, test string, output []string) string {
	var lines []string
	for _, o := range output {
		if logLine.MatchString(o) {
			l := strings.TrimSpace(o)
			if len(l) > maxWhyChars {
				l = l[:maxWhyChars] + " …"
			}
			lines = append(lines, l)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %s %s\n", pkg, test)
	if len(lines) > maxWhyLines {
		fmt.Fprintf(&b, "      … (%d lines before)\n", len(lines)-maxWhyLines)
		lines = lines[len(lines)-maxWhyLines:]
	}
	for _, l := range lines {
		fmt.Fprintf(&b, "      %s\n", l)
	}
	return b.String()
}
