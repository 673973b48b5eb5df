// Package pubsub connects vmpulse to Google Cloud Pub/Sub (or its emulator, or the
// in-process fake pstest): the ingest routes publish every committed record to a
// topic, and each relay instance reads them through a subscription of its own.
package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"

	gps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Connect returns a client for project. With emulatorHost ("host:port") it talks
// plain gRPC to the Pub/Sub emulator or pstest without credentials; otherwise it
// uses Application Default Credentials (Workload Identity on GKE, the service
// account on Cloud Run).
func Connect(ctx context.Context, project, emulatorHost string) (*gps.Client, error) {
	if project == "" {
		return nil, errors.New("pubsub: no project: set -project (PUBSUB_PROJECT or GOOGLE_CLOUD_PROJECT)")
	}
	var opts []option.ClientOption
	if emulatorHost != "" {
		opts = append(opts,
			option.WithEndpoint(emulatorHost),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithTelemetryDisabled(),
		)
	}
	c, err := gps.NewClient(ctx, project, opts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub: connect to project %s: %w", project, err)
	}
	return c, nil
}

// TopicName returns the full resource name of topic (an id or a full name).
func TopicName(project, topic string) string {
	if strings.HasPrefix(topic, "projects/") {
		return topic
	}
	return "projects/" + project + "/topics/" + topic
}

// SubscriptionName returns the full resource name of a subscription id.
func SubscriptionName(project, sub string) string {
	if strings.HasPrefix(sub, "projects/") {
		return sub
	}
	return "projects/" + project + "/subscriptions/" + sub
}

// EnsureTopic checks that the topic exists and, when create is true, creates it if
// it does not (the emulator and pstest start empty; in Google Cloud Terraform
// creates the topic and the routes need no admin rights).
func EnsureTopic(ctx context.Context, c *gps.Client, topic string, create bool) error {
	name := TopicName(c.Project(), topic)
	_, err := c.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: name})
	if err == nil {
		return nil
	}
	if status.Code(err) != codes.NotFound || !create {
		return fmt.Errorf("pubsub: topic %s: %w", name, err)
	}
	_, err = c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: name})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("pubsub: create topic %s: %w", name, err)
	}
	return nil
}
