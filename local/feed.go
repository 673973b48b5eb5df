package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// Feeder is the local stack's built-in load, so the dashboard moves without any
// other: every interval it fetches the agent's latest sample and, when it is new
// (by id), posts it through the split with the ingest token. A sample whose post
// fails is retried with backoff until it is stored; samples taken meanwhile are
// not fetched, so nothing accepted is ever dropped.
type Feeder struct {
	agentURL, splitURL, token string
	interval                  time.Duration
	log                       *slog.Logger
	client                    *http.Client

	sent, retries, rejected atomic.Int64
}

// NewFeeder returns a feeder from agentURL to splitURL (base URLs) that posts at
// most one sample per interval.
func NewFeeder(agentURL, splitURL, token string, interval time.Duration, log *slog.Logger) *Feeder {
	return &Feeder{agentURL: agentURL, splitURL: splitURL, token: token, interval: interval, log: log,
		client: &http.Client{Timeout: 10 * time.Second}}
}

// Sent is how many samples were stored.
func (f *Feeder) Sent() int64 { return f.sent.Load() }

// Run feeds until ctx ends.
func (f *Feeder) Run(ctx context.Context) {
	t := time.NewTicker(max(f.interval, 5*time.Millisecond))
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		body, id, err := f.fetch(ctx)
		if err != nil || id == last {
			continue // agent starting, or no new sample yet
		}
		for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			err := f.post(ctx, body)
			if err == nil {
				f.sent.Add(1)
				break
			}
			var rej *rejected
			if errors.As(err, &rej) {
				// The routes refuse this sample for good (it is invalid): retrying
				// would stop all feeding. It was never accepted, so nothing is lost.
				f.rejected.Add(1)
				f.log.Error("the routes rejected a sample; skipping it", "id", id, "err", err)
				break
			}
			if ctx.Err() != nil {
				return
			}
			f.retries.Add(1)
			f.log.Warn("feeding a sample failed; retrying", "id", id, "err", err, "in", backoff.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		last = id
	}
}

func (f *Feeder) fetch(ctx context.Context) ([]byte, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.agentURL+"/sample", nil)
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("agent: %s %v", resp.Status, err)
	}
	var head struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, "", fmt.Errorf("agent sample: %w", err)
	}
	return b, head.ID, nil
}

func (f *Feeder) post(ctx context.Context, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.splitURL+"/ingest", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusCreated:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 &&
		resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return &rejected{fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(msg))}
	}
	return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
}

// rejected is a final refusal (4xx): the sample is invalid, retrying cannot help.
type rejected struct{ msg string }

func (r *rejected) Error() string { return r.msg }
