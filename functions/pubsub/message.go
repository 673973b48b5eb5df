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
// decimal int64). A heartbeat has no data and the attributes route, instance,
// sent_at, seq (1, 2, 3… per instance, one per heartbeat attempted, published or
// not) and every_ms (the instance's pace); each route instance sends one every
// few seconds so that a relay can tell a quiet topic from a stalled
// subscription, from the first heartbeat it sees and even when only some of
// them go missing. seq and every_ms are optional (earlier releases sent neither).
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
	AttrSeq      = "seq"       // a heartbeat's number in its instance's sequence, from 1
	AttrEveryMS  = "every_ms"  // the pace of an instance's heartbeats, milliseconds
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
	Record   []byte        // records: the record JSON
	Seq      uint64        // heartbeats: the number in the instance's sequence (0: unknown)
	Every    time.Duration // heartbeats: the instance's pace (0: unknown)
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

// HeartbeatMessage encodes heartbeat number seq of a route instance that sends
// one every interval.
func HeartbeatMessage(route, instance string, at time.Time, seq uint64, every time.Duration) *gps.Message {
	return &gps.Message{Attributes: map[string]string{
		AttrKind: KindHeartbeat, AttrRoute: route, AttrInstance: instance,
		AttrSentAt:  at.UTC().Format(time.RFC3339Nano),
		AttrSeq:     strconv.FormatUint(seq, 10),
		AttrEveryMS: strconv.FormatInt(every.Milliseconds(), 10),
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
		if v, ok := attrs[AttrSeq]; ok {
			if m.Seq, err = strconv.ParseUint(v, 10, 64); err != nil {
				return Message{}, fmt.Errorf("pubsub: heartbeat %s: %w", AttrSeq, err)
			}
		}
		if v, ok := attrs[AttrEveryMS]; ok {
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ms < 0 {
				return Message{}, fmt.Errorf("pubsub: heartbeat %s: %q is not a count of milliseconds", AttrEveryMS, v)
			}
			m.Every = time.Duration(ms) * time.Millisecond
		}
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
