package relay

import (
	gps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

func pubMsg(id string) *gps.Message {
	return &gps.Message{Data: []byte(`{"id":"` + id + `"}`), Attributes: map[string]string{pubsub.AttrRoute: "route1"}}
}

func getSub(name string) *pubsubpb.GetSubscriptionRequest {
	return &pubsubpb.GetSubscriptionRequest{Subscription: name}
}
