// Package logging makes the structured logs of every vmpulse command: JSON lines
// whose fields Google Cloud Logging reads as they are (severity, message, time),
// so logs from GKE and Cloud Run are filtered by severity and shown by message
// without a parser. Locally the same lines go to the terminal.
package logging

import (
	"io"
	"log/slog"
)

// New returns a JSON logger writing to w at level and above.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: cloudFields}))
}

// cloudFields renames slog's level and msg to Cloud Logging's severity and
// message, with Cloud Logging's severity names.
func cloudFields(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "message"
	case slog.LevelKey:
		a.Key = "severity"
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(Severity(l))
		}
	}
	return a
}

// Severity is Cloud Logging's name for a slog level.
func Severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}
