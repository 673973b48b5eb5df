package broker

import (
	"context"
	"fmt"
	"strings"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

func notFound(kind, name string) error {
	return status.Errorf(codes.NotFound, "vmpulse broker: %s not found: %s", kind, quote(name))
}

// topic returns the topic called name; b.mu must be held.
func (b *Server) topic(name string) (*topic, error) { return find(b.topics, "topic", name) }

// CreateTopic creates a topic. message_retention_duration (10 min to 31 days)
// makes the topic keep its messages for Seek; labels, kms_key_name and
// message_storage_policy are stored and have no effect; schemas, ingestion and
// message transforms are not implemented.
func (b *Server) CreateTopic(_ context.Context, req *pb.Topic) (*pb.Topic, error) {
	if err := checkName("name", req.Name, "topics"); err != nil {
		return nil, err
	}
	if req.SchemaSettings != nil {
		return nil, unimplemented("schema_settings: schemas are not implemented")
	}
	if req.IngestionDataSourceSettings != nil {
		return nil, unimplemented("ingestion_data_source_settings: ingestion is not implemented")
	}
	if len(req.MessageTransforms) > 0 {
		return nil, unimplemented("message_transforms: message transforms are not implemented")
	}
	t := &topic{name: req.Name}
	if req.MessageRetentionDuration != nil {
		d, err := checkRetention("message_retention_duration", req.MessageRetentionDuration, minTopicRetention, maxTopicRetention)
		if err != nil {
			return nil, err
		}
		t.retention = d
	}
	t.proto = proto.Clone(req).(*pb.Topic)
	t.proto.State = pb.Topic_ACTIVE
	t.recomputeKeep()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.topics[req.Name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "vmpulse broker: topic already exists: %s", quote(req.Name))
	}
	b.topics[req.Name] = t
	return proto.Clone(t.proto).(*pb.Topic), nil
}

// GetTopic returns a topic.
func (b *Server) GetTopic(_ context.Context, req *pb.GetTopicRequest) (*pb.Topic, error) {
	if err := checkName("topic", req.Topic, "topics"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := find(b.topics, "topic", req.Topic)
	if err != nil {
		return nil, err
	}
	return proto.Clone(t.proto).(*pb.Topic), nil
}

// UpdateTopic changes labels, message_retention_duration or
// message_storage_policy.
func (b *Server) UpdateTopic(_ context.Context, req *pb.UpdateTopicRequest) (*pb.Topic, error) {
	if req.Topic == nil {
		return nil, invalid("topic", "missing")
	}
	if err := checkName("topic.name", req.Topic.Name, "topics"); err != nil {
		return nil, err
	}
	if len(req.UpdateMask.GetPaths()) == 0 {
		return nil, invalid("update_mask", "must list the fields to update")
	}
	for _, p := range req.UpdateMask.Paths {
		switch p {
		case "labels", "message_retention_duration", "message_storage_policy":
		case "schema_settings", "ingestion_data_source_settings", "message_transforms", "kms_key_name":
			return nil, unimplemented("update_mask: updating %s is not implemented", p)
		default:
			return nil, invalid("update_mask", "unknown or read-only field %s", quote(p))
		}
	}
	retention, hasRetention := req.Topic.MessageRetentionDuration, false
	for _, p := range req.UpdateMask.Paths {
		if p == "message_retention_duration" {
			hasRetention = true
			if retention != nil {
				if _, err := checkRetention("topic.message_retention_duration", retention, minTopicRetention, maxTopicRetention); err != nil {
					return nil, err
				}
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.topic(req.Topic.Name)
	if err != nil {
		return nil, err
	}
	for _, p := range req.UpdateMask.Paths {
		switch p {
		case "labels":
			t.proto.Labels = req.Topic.Labels
		case "message_storage_policy":
			t.proto.MessageStoragePolicy = req.Topic.MessageStoragePolicy
		}
	}
	if hasRetention {
		t.proto.MessageRetentionDuration = retention
		t.retention = 0
		if retention != nil {
			t.retention = retention.AsDuration()
		}
		t.recomputeKeep()
		b.trimTopic(t, b.now())
	}
	return proto.Clone(t.proto).(*pb.Topic), nil
}

// DeleteTopic deletes a topic. Its subscriptions remain, detached (their topic
// reads _deleted-topic_), with what they hold.
func (b *Server) DeleteTopic(_ context.Context, req *pb.DeleteTopicRequest) (*emptypb.Empty, error) {
	if err := checkName("topic", req.Topic, "topics"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := find(b.topics, "topic", req.Topic)
	if err != nil {
		return nil, err
	}
	b.deleteTopic(t)
	return &emptypb.Empty{}, nil
}

// ListTopics lists the topics of a project.
func (b *Server) ListTopics(_ context.Context, req *pb.ListTopicsRequest) (*pb.ListTopicsResponse, error) {
	if err := checkProject("project", req.Project); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sel, next, err := page(inProject(b.topics, req.Project), req.PageSize, req.PageToken, "page_size")
	if err != nil {
		return nil, err
	}
	res := &pb.ListTopicsResponse{NextPageToken: next}
	for _, n := range sel {
		res.Topics = append(res.Topics, proto.Clone(b.topics[n].proto).(*pb.Topic))
	}
	return res, nil
}

// ListTopicSubscriptions lists the names of a topic's subscriptions.
func (b *Server) ListTopicSubscriptions(_ context.Context, req *pb.ListTopicSubscriptionsRequest) (*pb.ListTopicSubscriptionsResponse, error) {
	if err := checkName("topic", req.Topic, "topics"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := find(b.topics, "topic", req.Topic)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(t.subs))
	for _, s := range t.subs {
		names = append(names, s.name)
	}
	sel, next, err := page(names, req.PageSize, req.PageToken, "page_size")
	if err != nil {
		return nil, err
	}
	return &pb.ListTopicSubscriptionsResponse{Subscriptions: sel, NextPageToken: next}, nil
}

// ListTopicSnapshots is not implemented.
func (b *Server) ListTopicSnapshots(context.Context, *pb.ListTopicSnapshotsRequest) (*pb.ListTopicSnapshotsResponse, error) {
	return nil, errSnapshots
}

// DetachSubscription is not implemented.
func (b *Server) DetachSubscription(context.Context, *pb.DetachSubscriptionRequest) (*pb.DetachSubscriptionResponse, error) {
	return nil, unimplemented("DetachSubscription is not implemented; delete the subscription instead")
}

var errSnapshots = unimplemented("snapshots are not implemented; Seek to a time is")

// Publish stores messages and hands them to every subscription of the topic at
// once. It assigns message ids and the publish time.
func (b *Server) Publish(_ context.Context, req *pb.PublishRequest) (*pb.PublishResponse, error) {
	if err := checkName("topic", req.Topic, "topics"); err != nil {
		return nil, err
	}
	if len(req.Messages) == 0 {
		return nil, invalid("messages", "at least one message is required")
	}
	total := 0
	for i, m := range req.Messages {
		if err := checkMessage(m); err != nil {
			return nil, invalid(fmt.Sprintf("messages[%d]", i), "%s", err)
		}
		total += len(m.Data)
	}
	if total > maxPublishBytes {
		return nil, invalid("messages", "%d bytes of data in one request, more than the limit of %d", total, maxPublishBytes)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.topic(req.Topic)
	if err != nil {
		return nil, err
	}
	return &pb.PublishResponse{MessageIds: b.publish(t, req.Messages)}, nil
}

func checkMessage(m *pb.PubsubMessage) error {
	if m == nil || len(m.Data) == 0 && len(m.Attributes) == 0 {
		return fmt.Errorf("a message needs data or at least one attribute")
	}
	if len(m.Attributes) > maxAttributes {
		return fmt.Errorf("%d attributes, more than the limit of %d", len(m.Attributes), maxAttributes)
	}
	for k, v := range m.Attributes {
		switch {
		case k == "":
			return fmt.Errorf("attributes: empty key")
		case len(k) > maxAttrKeyBytes:
			return fmt.Errorf("attributes: key %s longer than %d bytes", quote(k), maxAttrKeyBytes)
		case strings.HasPrefix(k, "goog"):
			return fmt.Errorf("attributes: key %s: keys starting with \"goog\" are reserved", quote(k))
		case len(v) > maxAttrValueBytes:
			return fmt.Errorf("attributes[%s]: value longer than %d bytes", quote(k), maxAttrValueBytes)
		}
	}
	return nil
}
