package pubsub

// The subscription side: each relay instance reads the topic through a
// subscription of its own, so every instance sees every message (a shared
// subscription would split the stream between instances). A new subscription
// starts empty; Seek to a time before its creation replays what the topic still
// retains, which is how a relay that starts serves recent history.

import (
	"context"
	"errors"
	"fmt"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// EnsureRetainingTopic checks that topic exists and returns how long it retains
// messages (0: only until every subscription acknowledged them, so Seek cannot
// replay anything published before a subscription existed).
//
// With create (emulators; in Google Cloud Terraform owns the topic) a missing
// topic is created with retention, and an existing topic that retains less is
// updated, which updated reports. Beware: the Java emulator accepts the update
// and reports the new retention, but a Seek then replays nothing, neither what
// was published before the update nor after it (measured). Only a topic created
// with retention replays there, so whoever creates the topic first must give it.
func EnsureRetainingTopic(ctx context.Context, c *gps.Client, topic string, create bool, retention time.Duration) (have time.Duration, updated bool, err error) {
	name := TopicName(c.Project(), topic)
	t, err := c.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: name})
	switch {
	case err == nil:
		have := t.GetMessageRetentionDuration().AsDuration()
		if have >= retention || !create {
			return have, false, nil
		}
		_, err = c.TopicAdminClient.UpdateTopic(ctx, &pubsubpb.UpdateTopicRequest{
			Topic:      &pubsubpb.Topic{Name: name, MessageRetentionDuration: durationpb.New(retention)},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"message_retention_duration"}},
		})
		if err != nil {
			return have, false, fmt.Errorf("pubsub: set the message retention of topic %s to %v: %w", name, retention, err)
		}
		return retention, true, nil
	case status.Code(err) != codes.NotFound || !create:
		return 0, false, fmt.Errorf("pubsub: topic %s: %w", name, err)
	}
	_, err = c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: name, MessageRetentionDuration: durationpb.New(retention)})
	if status.Code(err) == codes.AlreadyExists { // created meanwhile by a route
		return EnsureRetainingTopic(ctx, c, topic, create, retention)
	}
	if err != nil {
		return 0, false, fmt.Errorf("pubsub: create topic %s: %w", name, err)
	}
	return retention, false, nil
}

// CreateInstanceSubscription creates a subscription that belongs to one relay
// instance. It expires after a day without subscribers (the minimum Pub/Sub
// allows), in case the instance dies without deleting it, and keeps
// unacknowledged messages for 10 minutes.
func CreateInstanceSubscription(ctx context.Context, c *gps.Client, topic, id string) (string, error) {
	name := SubscriptionName(c.Project(), id)
	_, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                     name,
		Topic:                    TopicName(c.Project(), topic),
		AckDeadlineSeconds:       10,
		MessageRetentionDuration: durationpb.New(10 * time.Minute),
		ExpirationPolicy:         &pubsubpb.ExpirationPolicy{Ttl: durationpb.New(24 * time.Hour)},
		Labels:                   map[string]string{"app": "vmpulse", "role": "relay-instance"},
	})
	if err != nil {
		return "", fmt.Errorf("pubsub: create subscription %s on topic %s: %w", name, topic, err)
	}
	return name, nil
}

// SeekToTime marks every message the topic retains that was published at or
// after t as unacknowledged on subscription sub, so it is delivered (again). On a
// new subscription this replays history, as far back as the topic's retention.
// The real service applies a seek eventually (allow about a minute).
func SeekToTime(ctx context.Context, c *gps.Client, sub string, t time.Time) error {
	_, err := c.SubscriptionAdminClient.Seek(ctx, &pubsubpb.SeekRequest{
		Subscription: sub,
		Target:       &pubsubpb.SeekRequest_Time{Time: timestamppb.New(t)},
	})
	if err != nil {
		return fmt.Errorf("pubsub: seek subscription %s to %s: %w", sub, t.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// DeleteSubscription deletes a subscription; a missing one is not an error.
func DeleteSubscription(ctx context.Context, c *gps.Client, name string) error {
	err := c.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: name})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("pubsub: delete subscription %s: %w", name, err)
	}
	return nil
}

// Delivery is one message as a subscriber receives it.
type Delivery struct {
	Data        []byte
	Attributes  map[string]string
	PublishTime time.Time // set by the server: what SeekToTime compares with
}

// ReceiveDeliveries calls fn for every message of subscription sub until ctx
// ends, and acks each message after fn returns. fn may run concurrently. It
// returns nil when ctx ended, an error when the stream failed for good (e.g. the
// subscription was deleted). Note: after a connection reset the Java emulator can
// keep a stream open and silent for minutes without an error; callers that must
// notice watch the age of the last message.
func ReceiveDeliveries(ctx context.Context, c *gps.Client, sub string, fn func(Delivery)) error {
	s := c.Subscriber(sub)
	s.ReceiveSettings.MaxOutstandingMessages = 10000
	s.ReceiveSettings.MaxOutstandingBytes = 64 << 20
	err := s.Receive(ctx, func(_ context.Context, m *gps.Message) {
		fn(Delivery{Data: m.Data, Attributes: m.Attributes, PublishTime: m.PublishTime})
		m.Ack()
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("pubsub: receive from %s: %w", sub, err)
	}
	return nil
}

// Receive is ReceiveDeliveries for callers that need only data and attributes.
func Receive(ctx context.Context, c *gps.Client, sub string, fn func(data []byte, attrs map[string]string)) error {
	return ReceiveDeliveries(ctx, c, sub, func(d Delivery) { fn(d.Data, d.Attributes) })
}

// Retryable reports whether an admin call that failed with err may succeed when
// tried again shortly: the service was unavailable or slow, or, right after a
// deployment, IAM grants or the topic have not propagated yet.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted,
		codes.Internal, codes.Unknown, codes.PermissionDenied, codes.NotFound:
		return true
	}
	return false
}
