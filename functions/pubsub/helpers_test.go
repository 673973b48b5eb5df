package pubsub

import "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

func getSubReq(name string) *pubsubpb.GetSubscriptionRequest {
	return &pubsubpb.GetSubscriptionRequest{Subscription: name}
}
