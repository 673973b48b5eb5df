package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vmpulse/vmpulse/record"
)

// AgentInfo is what an agent's GET /healthz says about it (vmpulse's agent says
// {"status","source","vm","interval"}; other implementations may say nothing).
type AgentInfo struct {
	VM       string
	Source   string
	Interval time.Duration // 0: not said
}

// ProbeAgent reads the agent's /healthz. An agent without one, or one that does not
// say its interval, gives a zero Interval and no error; only an unreachable agent is
// an error.
func ProbeAgent(ctx context.Context, client *http.Client, agentURL string) (AgentInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(strings.TrimRight(agentURL, "/"), "/sample")+"/healthz", nil)
	if err != nil {
		return AgentInfo{}, fmt.Errorf("agent URL %q: %w", agentURL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return AgentInfo{}, fmt.Errorf("agent %s: %s", agentURL, shortErr(err))
	}
	defer resp.Body.Close()
	var h struct {
		VM, Source, Interval string
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(body, &h) != nil {
		return AgentInfo{}, nil
	}
	info := AgentInfo{VM: h.VM, Source: h.Source}
	if d, err := time.ParseDuration(h.Interval); err == nil && d > 0 {
		info.Interval = d
	}
	return info, nil
}

// InferInterval estimates an agent's sampling interval from the sample times (hora,
// one-second resolution) of the records it served: their span over their number.
// It returns 0 with fewer than two records or a span under two seconds.
func InferInterval(recs []json.RawMessage) time.Duration {
	var first, last time.Time
	n := 0
	for _, raw := range recs {
		var p struct {
			Hora string `json:"hora"`
		}
		if json.Unmarshal(raw, &p) != nil {
			continue
		}
		h, err := record.ParseHora(p.Hora)
		if err != nil {
			continue
		}
		if n == 0 || h.Before(first) {
			first = h.Time
		}
		if n == 0 || h.After(last) {
			last = h.Time
		}
		n++
	}
	span := last.Sub(first)
	if n < 2 || span < 2*time.Second {
		return 0
	}
	return (span + time.Second) / time.Duration(n) // hora is truncated: the span is up to 1 s longer
}

// SuggestInterval is the sampling interval to ask of an agent so that duration
// yields target unique samples with room for the users' ramp-up (10 %), rounded
// down to 5 ms, at least 10 ms.
func SuggestInterval(target int, duration time.Duration) time.Duration {
	if target <= 0 {
		return 0
	}
	d := duration * 9 / 10 / time.Duration(target)
	d = d.Truncate(5 * time.Millisecond)
	return max(d, 10*time.Millisecond)
}

// Shortfall says why a collect phase against one agent ended below its target and
// what to change; "" when it reached the target. interval is the agent's sampling
// interval (from its /healthz, else inferred: from says which; 0 unknown).
func Shortfall(res *CollectResult, agent string, target int, duration, interval time.Duration, from string) string {
	got := len(res.Records)
	if target <= 0 || got >= target {
		return ""
	}
	head := fmt.Sprintf("collected %d of %d unique samples from %s in %s", got, target, agent, res.Elapsed.Round(100*time.Millisecond))
	if res.Stop == "canceled" {
		return head + ": interrupted before the end"
	}
	fails := ""
	if res.Failures > 0 {
		fails = fmt.Sprintf("; %d of %d requests failed (see the failures above)", res.Failures, res.Requests)
	}
	if got == 0 {
		return head + ": the agent gave no valid sample" + fails
	}
	if interval <= 0 {
		return fmt.Sprintf("%s. The agent makes one sample per sampling interval, however often it is polled, and "+
			"neither its /healthz nor the samples tell the interval: for %d in %s it must sample every %s or faster "+
			"(vmpulse's agent: -interval %s; `make up -agent-interval %s`), or lower RECORDS, or raise DURATION%s",
			head, target, duration, duration/time.Duration(target), SuggestInterval(target, duration), SuggestInterval(target, duration), fails)
	}
	possible := int(duration / interval)
	if possible < target*105/100 {
		sugg := SuggestInterval(target, duration)
		return fmt.Sprintf("%s. The agent makes one sample every %s (%s), however often it is polled, so %s hold at most %d. "+
			"For %d in %s it must sample every %s or faster: restart it with -interval %s (`make up -agent-interval %s`, "+
			"or SAMPLE_INTERVAL=%s), or lower RECORDS, or raise DURATION to %s%s",
			head, interval, from, duration, possible, target, duration, duration/time.Duration(target), sugg, sugg, sugg,
			(interval * time.Duration(target) * 11 / 10).Round(time.Second), fails)
	}
	return fmt.Sprintf("%s. The agent samples every %s (%s), so %s hold about %d, but the users caught only %d: "+
		"they polled %.0f times a second for %.1f new samples a second. Poll more often: more users (-users, USERS), "+
		"a shorter wait (-wait, COLLECT_WAIT), a faster spawn rate (-spawn-rate, SPAWN_RATE)%s",
		head, interval, from, duration, possible, got, float64(res.Requests)/res.Elapsed.Seconds(), 1/interval.Seconds(), fails)
}
