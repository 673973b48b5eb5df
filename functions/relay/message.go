package relay

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

// FromMessage turns a Pub/Sub message published by a route into an Item and the
// record's id.
func FromMessage(data []byte, attrs map[string]string) (string, Item, error) {
	var head struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return "", Item{}, errors.New("relay: message data is not a JSON record: " + err.Error())
	}
	ms, _ := strconv.ParseFloat(attrs[pubsub.AttrCommitMS], 64)
	return head.ID, Item{
		Route:    attrs[pubsub.AttrRoute],
		CommitMS: ms,
		StoredAt: attrs[pubsub.AttrStoredAt],
		Record:   json.RawMessage(data),
	}, nil
}
