// Package flagenv defines command-line flags that fall back to environment
// variables, so every vmpulse binary is configured the same way on a laptop
// (flags), in Kubernetes (ConfigMap → env) and on Cloud Run (env). Precedence:
// flag, then environment, then the default. --help lists the variable of each flag.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Set is a flag set with environment fallbacks.
type Set struct {
	fs   *flag.FlagSet
	errs []error
}

// New returns a Set for a program; summary is printed at the top of --help.
func New(name, summary string) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nUsage: %s [flags]\n\nFlags (each falls back to the environment variable in brackets):\n", summary, name)
		fs.PrintDefaults()
	}
	return &Set{fs: fs}
}

// SetOutput sets where usage and errors are printed.
func (s *Set) SetOutput(w io.Writer) { s.fs.SetOutput(w) }

func (s *Set) env(env string) (string, bool) {
	if env == "" {
		return "", false
	}
	v, ok := os.LookupEnv(env)
	return v, ok && v != ""
}

func usage(u, env string) string {
	if env == "" {
		return u
	}
	return u + " [$" + env + "]"
}

// String defines a string flag.
func (s *Set) String(p *string, name, env, def, help string) {
	if v, ok := s.env(env); ok {
		def = v
	}
	s.fs.StringVar(p, name, def, usage(help, env))
}

// Bool defines a boolean flag; the variable accepts strconv.ParseBool values.
func (s *Set) Bool(p *bool, name, env string, def bool, help string) {
	if v, ok := s.env(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("environment variable %s=%q (for -%s): want true or false", env, v, name))
		} else {
			def = b
		}
	}
	s.fs.BoolVar(p, name, def, usage(help, env))
}

// Int defines an integer flag.
func (s *Set) Int(p *int, name, env string, def int, help string) {
	if v, ok := s.env(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("environment variable %s=%q (for -%s): want an integer", env, v, name))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, name, def, usage(help, env))
}

// Int64 defines a 64-bit integer flag.
func (s *Set) Int64(p *int64, name, env string, def int64, help string) {
	if v, ok := s.env(env); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("environment variable %s=%q (for -%s): want an integer", env, v, name))
		} else {
			def = n
		}
	}
	s.fs.Int64Var(p, name, def, usage(help, env))
}

// Duration defines a duration flag (e.g. 1s, 250ms).
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, help string) {
	if v, ok := s.env(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("environment variable %s=%q (for -%s): want a duration like 1s or 250ms", env, v, name))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, usage(help, env))
}

// Parse parses args (without the program name). It returns flag.ErrHelp for -h.
func (s *Set) Parse(args []string) error {
	if err := errors.Join(s.errs...); err != nil {
		return err
	}
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see -h)", s.fs.Arg(0))
	}
	return nil
}

// PortAddr returns ":"+$PORT when PORT is set (Cloud Run and many PaaS set it),
// otherwise def.
func PortAddr(def string) string {
	if p := strings.TrimSpace(os.Getenv("PORT")); p != "" {
		return ":" + p
	}
	return def
}
