package pubsub

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
)

// The message format, in one place: the routes encode with RecordMessage and
// HeartbeatMessage, the relay decodes with Decode.
//
// Every message has the attribute kind. A record message carries the record JSON
// exactly as stored in MySQL as its data, and the attributes route, id, vm,
// commit_ms, stored_at (RFC 3339 with nanoseconds) and batch (the commit's id, a
// decimal int64). A heartbeat has no data and the attributes route, instance and
// sent_at; each route instance sends one every few seconds so that a relay can
// tell a quiet topic from a stalled subscription.
const (
	KindRecord    = "record"
	KindHeartbeat = "heartbeat"

	AttrKind     = "kind"
	AttrRoute    = "route"     // "route1" or "route2"
	AttrID       = "id"        // the record's id
	AttrVM       = "vm"        // the record's vm
	AttrCommitMS = "commit_ms" // how long the commit took, milliseconds (0 when republished)
	AttrStoredAt = "stored_at" // the rows' stored_at, RFC 3339 with nanoseconds
	AttrBatch    = "batch"     // the commit's id
	AttrInstance = "instance"  // the route instance that sent a heartbeat
	AttrSentAt   = "sent_at"   // when a heartbeat was sent
)

// Message is a decoded message of either kind.
type Message struct {
	Kind     string // KindRecord or KindHeartbeat
	Route    string
	Instance string // heartbeats: the sending route instance
	ID       string // records: the record's id
	VM       string
	StoredAt time.Time // records: the rows' stored_at; heartbeats: when sent
	CommitMS float64
	Batch    int64
	Record   []byte // records: the record JSON
}

// Batch describes one commit of records: its id, the stored_at of its rows, and how
// long the commit took (0 when unknown, e.g. when republished from MySQL).
type Batch struct {
	ID       int64
	StoredAt time.Time
	Commit   time.Duration
}

// RecordMessage encodes one committed record (its JSON as stored) of a batch
// committed by route.
func RecordMessage(route string, b Batch, id, vm string, data []byte) *gps.Message {
	return &gps.Message{Data: data, Attributes: map[string]string{
		AttrKind: KindRecord, AttrRoute: route, AttrID: id, AttrVM: vm,
		AttrCommitMS: strconv.FormatFloat(float64(b.Commit.Microseconds())/1000, 'f', 3, 64),
		AttrStoredAt: b.StoredAt.UTC().Format(time.RFC3339Nano),
		AttrBatch:    strconv.FormatInt(b.ID, 10),
	}}
}

// HeartbeatMessage encodes a heartbeat of a route instance.
func HeartbeatMessage(route, instance string, at time.Time) *gps.Message {
	return &gps.Message{Attributes: map[string]string{
		AttrKind: KindHeartbeat, AttrRoute: route, AttrInstance: instance,
		AttrSentAt: at.UTC().Format(time.RFC3339Nano),
	}}
}

// Decode reads a message published by a route. A message without a kind is a
// record (the format of earlier releases); a record without an id attribute has
// its id read from the data.
func Decode(data []byte, attrs map[string]string) (Message, error) {
	m := Message{Kind: attrs[AttrKind], Route: attrs[AttrRoute]}
	switch m.Kind {
	case KindHeartbeat:
		m.Instance = attrs[AttrInstance]
		t, err := time.Parse(time.RFC3339Nano, attrs[AttrSentAt])
		if err != nil {
			return Message{}, fmt.Errorf("pubsub: heartbeat %s: %w", AttrSentAt, err)
		}
		m.StoredAt = t
		return m, nil
	case "", KindRecord:
		m.Kind = KindRecord
	default:
		return Message{}, fmt.Errorf("pubsub: unknown message kind %q", m.Kind)
	}
	if !json.Valid(data) || len(data) == 0 || data[0] != '{' {
		return Message{}, errors.New("pubsub: record message data is not a JSON object")
	}
	m.Record, m.VM, m.ID = data, attrs[AttrVM], attrs[AttrID]
	if m.ID == "" {
		var head struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(data, &head) // valid JSON object: cannot fail
		m.ID = head.ID
	}
	if s := attrs[AttrStoredAt]; s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return Message{}, fmt.Errorf("pubsub: record %s: %w", AttrStoredAt, err)
		}
		m.StoredAt = t
	}
	if s := attrs[AttrCommitMS]; s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Message{}, fmt.Errorf("pubsub: record %s: %w", AttrCommitMS, err)
		}
		m.CommitMS = v
	}
	if s := attrs[AttrBatch]; s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Message{}, fmt.Errorf("pubsub: record %s: %w", AttrBatch, err)
		}
		m.Batch = v
	}
	return m, nil
}
