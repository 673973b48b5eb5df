package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummaryNamesSkips(t *testing.T) {
	in := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    x_test.go:12: MySQL at 127.0.0.1:3306 is missing: run make services\n"}
{"Action":"skip","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Test":"TestB"}
{"Action":"pass","Package":"p","Elapsed":0.5}
`
	var out bytes.Buffer
	if code := run(strings.NewReader(in), &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	s := out.String()
	for _, want := range []string{"ok  \tp", "1 tests passed, 0 failed, 1 skipped", "SKIPPED", "p TestA: x_test.go:12: MySQL at 127.0.0.1:3306 is missing"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	fail := `{"Action":"output","Package":"p","Test":"TestC","Output":"boom\n"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    e2e_test.go:222: collect: exit 1:\n"}
{"Action":"output","Package":"p","Test":"TestC","Output":"        a long log of the tool\n"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    e2e_test.go:100: vmpulse-up output:\n"}
{"Action":"fail","Package":"p","Test":"TestC"}
{"Action":"fail","Package":"p","Elapsed":1}
`
	out.Reset()
	if code := run(strings.NewReader(fail), &out); code != 1 || !strings.Contains(out.String(), "boom") {
		t.Fatalf("exit %d, output %s", code, out.String())
	}
	// The closing section repeats the messages' first lines, after the summary.
	_, closing, _ := strings.Cut(out.String(), "0 tests passed, 1 failed")
	want := "FAILED (what each failed test logged, first line of each message):\n  p TestC\n" +
		"      e2e_test.go:222: collect: exit 1:\n      e2e_test.go:100: vmpulse-up output:\n"
	if !strings.Contains(closing, want) || strings.Contains(closing, "a long log") {
		t.Errorf("closing section: want %q, got:\n%s", want, closing)
	}
}
