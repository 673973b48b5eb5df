package relay

import (
	"errors"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

// errHeartbeat marks a route's heartbeat: not a record, never sent to clients.
var errHeartbeat = errors.New("relay: heartbeat")

// FromMessage turns a Pub/Sub message published by a route into an Item and the
// record's id.
func FromMessage(data []byte, attrs map[string]string) (string, Item, error) {
	m, err := pubsub.Decode(data, attrs)
	if err != nil {
		return "", Item{}, err
	}
	if m.Kind == pubsub.KindHeartbeat {
		return "", Item{}, errHeartbeat
	}
	at := ""
	if !m.StoredAt.IsZero() {
		at = attrs[pubsub.AttrStoredAt]
	}
	return m.ID, Item{Route: m.Route, CommitMS: m.CommitMS, StoredAt: at, Record: m.Record}, nil
}
