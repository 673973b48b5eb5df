package pubsub

// STAND-IN, replaced when the lead's message.go lands: the API below is exactly
// the contract's (Message, Decode, KindRecord, KindHeartbeat); the relay uses
// nothing else from this file.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Message kinds (attribute "kind").
const (
	KindRecord    = "record"
	KindHeartbeat = "heartbeat"
)

// Message is one decoded Pub/Sub message.
type Message struct {
	Kind     string // KindRecord or KindHeartbeat
	Route    string
	Instance string // heartbeat sender
	ID       string // record id (records)
	VM       string
	StoredAt time.Time
	CommitMS float64
	Batch    int64
	Record   []byte // record JSON (records)
}

// Decode reads a message published by a route. A message without a kind is a
// record (routes that predate heartbeats).
func Decode(data []byte, attrs map[string]string) (Message, error) {
	m := Message{Kind: attrs["kind"], Route: attrs[AttrRoute]}
	switch m.Kind {
	case KindHeartbeat:
		m.Instance = attrs["instance"]
		if s := attrs["sent_at"]; s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return m, fmt.Errorf("pubsub: heartbeat attribute sent_at %q: %w", s, err)
			}
			m.StoredAt = t
		}
		return m, nil
	case "", KindRecord:
		m.Kind = KindRecord
	default:
		return m, fmt.Errorf("pubsub: unknown message kind %q", m.Kind)
	}
	var head struct {
		ID string `json:"id"`
		VM string `json:"vm"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return m, errors.New("pubsub: record message data is not a JSON record: " + err.Error())
	}
	m.ID, m.VM, m.Record = head.ID, head.VM, data
	if v := attrs[AttrVM]; v != "" {
		m.VM = v
	}
	if s := attrs[AttrStoredAt]; s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return m, fmt.Errorf("pubsub: record attribute %s %q: %w", AttrStoredAt, s, err)
		}
		m.StoredAt = t
	}
	if s := attrs[AttrCommitMS]; s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return m, fmt.Errorf("pubsub: record attribute %s %q: %w", AttrCommitMS, s, err)
		}
		m.CommitMS = f
	}
	if s := attrs["batch"]; s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return m, fmt.Errorf("pubsub: record attribute batch %q: %w", s, err)
		}
		m.Batch = n
	}
	return m, nil
}
