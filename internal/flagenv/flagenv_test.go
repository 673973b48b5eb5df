package flagenv

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	t.Setenv("T_ADDR", ":9")
	t.Setenv("T_N", "7")
	t.Setenv("T_D", "250ms")
	t.Setenv("T_B", "true")
	s := New("t", "test")
	var addr, other string
	var n int
	var d time.Duration
	var b bool
	s.String(&addr, "addr", "T_ADDR", ":1", "listen")
	s.String(&other, "other", "T_UNSET", "dflt", "other")
	s.Int(&n, "n", "T_N", 1, "n")
	s.Duration(&d, "d", "T_D", time.Second, "d")
	s.Bool(&b, "b", "T_B", false, "b")
	if err := s.Parse([]string{"-n", "3"}); err != nil {
		t.Fatal(err)
	}
	if addr != ":9" || other != "dflt" || n != 3 || d != 250*time.Millisecond || !b {
		t.Fatalf("addr=%q other=%q n=%d d=%v b=%v", addr, other, n, d, b)
	}
}

func TestBadEnvNamesVariableAndFlag(t *testing.T) {
	t.Setenv("T_N", "seven")
	s := New("t", "test")
	var n int
	s.Int(&n, "n", "T_N", 1, "n")
	err := s.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "T_N") || !strings.Contains(err.Error(), "-n") {
		t.Fatalf("err = %v", err)
	}
}

func TestHelpListsEnv(t *testing.T) {
	s := New("t", "summary line")
	var a string
	s.String(&a, "addr", "T_ADDR", ":1", "listen address")
	var out strings.Builder
	s.SetOutput(&out)
	if err := s.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "[$T_ADDR]") || !strings.Contains(out.String(), "summary line") {
		t.Fatalf("help:\n%s", out.String())
	}
}

func TestStrayArgument(t *testing.T) {
	s := New("t", "t")
	s.SetOutput(io.Discard)
	if err := s.Parse([]string{"oops"}); err == nil {
		t.Fatal("no error for a positional argument")
	}
}

func TestPortAddr(t *testing.T) {
	t.Setenv("PORT", "")
	if got := PortAddr(":8080"); got != ":8080" {
		t.Fatal(got)
	}
	t.Setenv("PORT", "9000")
	if got := PortAddr(":8080"); got != ":9000" {
		t.Fatal(got)
	}
}
