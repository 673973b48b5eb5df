package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// What one response carries at most. The client accepts 20 MiB, but gRPC
// pools its buffers up to 1 MiB only: larger responses cost a fresh zeroed
// allocation on both sides, and a client that is short of CPU then falls
// behind a little more with each one.
const (
	maxBatchMessages = 1000
	maxBatchBytes    = 768 << 10
	// pullWait is how long a Pull without return_immediately waits for a
	// message before answering with none.
	pullWait = 30 * time.Second
)

// unsupportedSub names the first feature of req this server does not
// implement.
func unsupportedSub(req *pb.Subscription) error {
	switch {
	case req.PushConfig.GetPushEndpoint() != "":
		return unimplemented("push_config: push delivery is not implemented; use pull or streaming pull")
	case req.BigqueryConfig != nil:
		return unimplemented("bigquery_config: BigQuery subscriptions are not implemented")
	case req.CloudStorageConfig != nil:
		return unimplemented("cloud_storage_config: Cloud Storage subscriptions are not implemented")
	case req.BigtableConfig != nil:
		return unimplemented("bigtable_config: Bigtable subscriptions are not implemented")
	case req.EnableMessageOrdering:
		return unimplemented("enable_message_ordering: ordered delivery is not implemented")
	case req.Filter != "":
		return unimplemented("filter: subscription filters are not implemented (filter %s)", quote(req.Filter))
	case req.DeadLetterPolicy != nil:
		return unimplemented("dead_letter_policy: dead-letter topics are not implemented")
	case req.RetryPolicy != nil:
		return unimplemented("retry_policy: retry back-off is not implemented (redelivery is immediate)")
	case req.EnableExactlyOnceDelivery:
		return unimplemented("enable_exactly_once_delivery: exactly-once delivery is not implemented")
	case len(req.MessageTransforms) > 0:
		return unimplemented("message_transforms: message transforms are not implemented")
	case req.Detached:
		return invalid("detached", "cannot be set on creation")
	}
	return nil
}

func checkExpiration(field string, p *pb.ExpirationPolicy) (time.Duration, error) {
	if p == nil {
		return defExpirationTTL, nil
	}
	if p.Ttl == nil {
		return 0, nil // never expires
	}
	if err := p.Ttl.CheckValid(); err != nil {
		return 0, invalid(field, "%v", err)
	}
	ttl := p.Ttl.AsDuration()
	if ttl < minExpirationTTL {
		return 0, invalid(field, "ttl %v is shorter than the minimum of 1 day", ttl)
	}
	return ttl, nil
}

// CreateSubscription creates a pull subscription: ack deadline 10 to 600 s
// (default 10), message_retention_duration 10 min to 31 days (default 7 days),
// retain_acked_messages, expiration_policy (ttl at least 1 day, default 31
// days) and labels. Push, export, ordering, filters, dead letters, retry
// policies and exactly-once delivery are not implemented.
func (b *Server) CreateSubscription(_ context.Context, req *pb.Subscription) (*pb.Subscription, error) {
	if err := checkName("name", req.Name, "subscriptions"); err != nil {
		return nil, err
	}
	if err := checkName("topic", req.Topic, "topics"); err != nil {
		return nil, err
	}
	if err := unsupportedSub(req); err != nil {
		return nil, err
	}
	s := &subscription{
		name:        req.Name,
		ackDeadline: defAckDeadline,
		retention:   defSubRetention,
		retainAcked: req.RetainAckedMessages,
		entries:     map[uint64]*entry{},
		flows:       map[string]*flow{},
		wake:        make(chan struct{}),
		gone:        make(chan struct{}),
	}
	var err error
	if req.AckDeadlineSeconds != 0 {
		if s.ackDeadline, err = checkAckDeadline("ack_deadline_seconds", req.AckDeadlineSeconds); err != nil {
			return nil, err
		}
	}
	if req.MessageRetentionDuration != nil {
		if s.retention, err = checkRetention("message_retention_duration", req.MessageRetentionDuration, minSubRetention, maxSubRetention); err != nil {
			return nil, err
		}
	}
	if s.ttl, err = checkExpiration("expiration_policy", req.ExpirationPolicy); err != nil {
		return nil, err
	}
	s.proto = proto.Clone(req).(*pb.Subscription)
	s.proto.AckDeadlineSeconds = int32(s.ackDeadline / time.Second)
	s.proto.MessageRetentionDuration = durationpb.New(s.retention)
	if s.ttl > 0 {
		s.proto.ExpirationPolicy = &pb.ExpirationPolicy{Ttl: durationpb.New(s.ttl)}
	} else {
		s.proto.ExpirationPolicy = &pb.ExpirationPolicy{}
	}
	if s.proto.PushConfig == nil {
		s.proto.PushConfig = &pb.PushConfig{}
	}
	s.proto.State = pb.Subscription_ACTIVE

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs[req.Name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "vmpulse broker: subscription already exists: %s", quote(req.Name))
	}
	t, err := b.topic(req.Topic)
	if err != nil {
		return nil, err
	}
	s.topic = t
	s.created = b.wallNow()
	s.lastActive = s.created
	t.subs = append(t.subs, s)
	t.recomputeKeep()
	b.subs[req.Name] = s
	return s.snapshot(), nil
}

// snapshot returns a copy of s's resource as the service shows it.
func (s *subscription) snapshot() *pb.Subscription {
	p := proto.Clone(s.proto).(*pb.Subscription)
	p.Topic = s.topicName()
	if s.topic != nil && !s.topic.deleted && s.topic.retention > 0 {
		p.TopicMessageRetentionDuration = durationpb.New(s.topic.retention)
	}
	return p
}

// sub returns the subscription called name; b.mu must be held.
func (b *Server) sub(name string) (*subscription, error) { return find(b.subs, "subscription", name) }

// GetSubscription returns a subscription.
func (b *Server) GetSubscription(_ context.Context, req *pb.GetSubscriptionRequest) (*pb.Subscription, error) {
	if err := checkName("subscription", req.Subscription, "subscriptions"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := find(b.subs, "subscription", req.Subscription)
	if err != nil {
		return nil, err
	}
	return s.snapshot(), nil
}

// UpdateSubscription changes ack_deadline_seconds, labels,
// message_retention_duration, retain_acked_messages or expiration_policy.
func (b *Server) UpdateSubscription(_ context.Context, req *pb.UpdateSubscriptionRequest) (*pb.Subscription, error) {
	u := req.Subscription
	if u == nil {
		return nil, invalid("subscription", "missing")
	}
	if err := checkName("subscription.name", u.Name, "subscriptions"); err != nil {
		return nil, err
	}
	if len(req.UpdateMask.GetPaths()) == 0 {
		return nil, invalid("update_mask", "must list the fields to update")
	}
	var (
		ack       time.Duration
		retention = defSubRetention
		ttl       time.Duration
		err       error
	)
	for _, p := range req.UpdateMask.Paths {
		switch p {
		case "labels", "retain_acked_messages":
		case "ack_deadline_seconds":
			ack = defAckDeadline
			if u.AckDeadlineSeconds != 0 {
				if ack, err = checkAckDeadline("subscription.ack_deadline_seconds", u.AckDeadlineSeconds); err != nil {
					return nil, err
				}
			}
		case "message_retention_duration":
			if u.MessageRetentionDuration != nil {
				if retention, err = checkRetention("subscription.message_retention_duration", u.MessageRetentionDuration, minSubRetention, maxSubRetention); err != nil {
					return nil, err
				}
			}
		case "expiration_policy":
			if ttl, err = checkExpiration("subscription.expiration_policy", u.ExpirationPolicy); err != nil {
				return nil, err
			}
		case "push_config":
			if u.PushConfig.GetPushEndpoint() != "" {
				return nil, unimplemented("push_config: push delivery is not implemented")
			}
		case "bigquery_config", "cloud_storage_config", "bigtable_config", "filter", "dead_letter_policy",
			"retry_policy", "enable_exactly_once_delivery", "enable_message_ordering", "message_transforms":
			return nil, unimplemented("update_mask: %s is not implemented", p)
		default:
			return nil, invalid("update_mask", "unknown or read-only field %s", quote(p))
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.sub(u.Name)
	if err != nil {
		return nil, err
	}
	for _, p := range req.UpdateMask.Paths {
		switch p {
		case "labels":
			s.proto.Labels = u.Labels
		case "retain_acked_messages":
			s.retainAcked = u.RetainAckedMessages
			s.proto.RetainAckedMessages = u.RetainAckedMessages
		case "ack_deadline_seconds":
			s.ackDeadline = ack
			s.proto.AckDeadlineSeconds = int32(ack / time.Second)
		case "message_retention_duration":
			s.retention = retention
			s.proto.MessageRetentionDuration = durationpb.New(retention)
		case "expiration_policy":
			s.ttl = ttl
			s.proto.ExpirationPolicy = &pb.ExpirationPolicy{}
			if ttl > 0 {
				s.proto.ExpirationPolicy.Ttl = durationpb.New(ttl)
			}
		}
	}
	if s.topic != nil && !s.topic.deleted {
		s.topic.recomputeKeep()
	}
	return s.snapshot(), nil
}

// ListSubscriptions lists the subscriptions of a project.
func (b *Server) ListSubscriptions(_ context.Context, req *pb.ListSubscriptionsRequest) (*pb.ListSubscriptionsResponse, error) {
	if err := checkProject("project", req.Project); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sel, next, err := page(inProject(b.subs, req.Project), req.PageSize, req.PageToken, "page_size")
	if err != nil {
		return nil, err
	}
	res := &pb.ListSubscriptionsResponse{NextPageToken: next}
	for _, n := range sel {
		res.Subscriptions = append(res.Subscriptions, b.subs[n].snapshot())
	}
	return res, nil
}

// DeleteSubscription deletes a subscription; its open streams and waiting
// pulls end with NotFound.
func (b *Server) DeleteSubscription(_ context.Context, req *pb.DeleteSubscriptionRequest) (*emptypb.Empty, error) {
	if err := checkName("subscription", req.Subscription, "subscriptions"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := find(b.subs, "subscription", req.Subscription)
	if err != nil {
		return nil, err
	}
	b.deleteSubscription(s)
	return &emptypb.Empty{}, nil
}

// ModifyPushConfig accepts only an empty push config (pull delivery).
func (b *Server) ModifyPushConfig(_ context.Context, req *pb.ModifyPushConfigRequest) (*emptypb.Empty, error) {
	if req.PushConfig.GetPushEndpoint() != "" {
		return nil, unimplemented("push_config: push delivery is not implemented")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.sub(req.Subscription); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Snapshots are not implemented.

func (b *Server) GetSnapshot(context.Context, *pb.GetSnapshotRequest) (*pb.Snapshot, error) {
	return nil, errSnapshots
}

func (b *Server) ListSnapshots(context.Context, *pb.ListSnapshotsRequest) (*pb.ListSnapshotsResponse, error) {
	return nil, errSnapshots
}

func (b *Server) CreateSnapshot(context.Context, *pb.CreateSnapshotRequest) (*pb.Snapshot, error) {
	return nil, errSnapshots
}

func (b *Server) UpdateSnapshot(context.Context, *pb.UpdateSnapshotRequest) (*pb.Snapshot, error) {
	return nil, errSnapshots
}

func (b *Server) DeleteSnapshot(context.Context, *pb.DeleteSnapshotRequest) (*emptypb.Empty, error) {
	return nil, errSnapshots
}

// checkAckIDs rejects ack ids this server cannot have issued.
func checkAckIDs(field string, ids []string) error {
	for i, id := range ids {
		if _, _, ok := parseAckID(id); !ok {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "%s is not an ack id of this server", quote(id))
		}
	}
	return nil
}

func checkModackSeconds(field string, secs []int32) error {
	for i, v := range secs {
		if v < 0 || time.Duration(v)*time.Second > maxAckDeadline {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "%d s is outside the allowed range 0 to 600 s", v)
		}
	}
	return nil
}

// Acknowledge acknowledges delivered messages. Ids of messages acknowledged,
// redelivered or seeked over since are ignored, as the service may do.
func (b *Server) Acknowledge(_ context.Context, req *pb.AcknowledgeRequest) (*emptypb.Empty, error) {
	if err := checkAckRequest(req.Subscription, req.AckIds); err != nil {
		return nil, err
	}
	return b.eachAckID(req.Subscription, req.AckIds, b.ack)
}

// ModifyAckDeadline sets the deadline of delivered messages to now plus
// ack_deadline_seconds (0 to 600); 0 redelivers them at once (a nack).
func (b *Server) ModifyAckDeadline(_ context.Context, req *pb.ModifyAckDeadlineRequest) (*emptypb.Empty, error) {
	if err := checkAckRequest(req.Subscription, req.AckIds); err != nil {
		return nil, err
	}
	if err := checkModackSeconds("ack_deadline_seconds", []int32{req.AckDeadlineSeconds}); err != nil {
		return nil, err
	}
	d := time.Duration(req.AckDeadlineSeconds) * time.Second
	return b.eachAckID(req.Subscription, req.AckIds, func(s *subscription, id string) { b.modack(s, id, d) })
}

// checkAckRequest checks what Acknowledge and ModifyAckDeadline have in
// common: the subscription's name and at least one ack id, all of this server.
func checkAckRequest(sub string, ids []string) error {
	if err := checkName("subscription", sub, "subscriptions"); err != nil {
		return err
	}
	if len(ids) == 0 {
		return invalid("ack_ids", "at least one ack id is required")
	}
	return checkAckIDs("ack_ids", ids)
}

// eachAckID applies fn to each of ids on the subscription called name and
// counts the call as activity, which postpones the subscription's expiration.
func (b *Server) eachAckID(name string, ids []string, fn func(s *subscription, id string)) (*emptypb.Empty, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.sub(name)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		fn(s, id)
	}
	s.lastActive = b.now()
	return &emptypb.Empty{}, nil
}

// Pull returns up to max_messages messages; without return_immediately it
// waits (at most 30 s or the call's deadline) for the first one.
func (b *Server) Pull(ctx context.Context, req *pb.PullRequest) (*pb.PullResponse, error) {
	if err := checkName("subscription", req.Subscription, "subscriptions"); err != nil {
		return nil, err
	}
	if req.MaxMessages <= 0 {
		return nil, invalid("max_messages", "must be positive, got %d", req.MaxMessages)
	}
	max := int(req.MaxMessages)
	if max > maxBatchMessages {
		max = maxBatchMessages
	}
	timer := time.NewTimer(pullWait)
	defer timer.Stop()
	outage := b.outageChan()
	for {
		b.mu.Lock()
		s, err := b.sub(req.Subscription)
		if err != nil {
			b.mu.Unlock()
			return nil, err
		}
		msgs := b.take(s, nil, s.ackDeadline, max, maxBatchBytes)
		s.lastActive = b.now()
		wake := s.waitChan()
		b.mu.Unlock()
		// Old clients still send it; a server has to honour it.
		//lint:ignore SA1019 the broker serves the field, it does not choose to use it
		if len(msgs) > 0 || req.ReturnImmediately {
			return &pb.PullResponse{ReceivedMessages: msgs}, nil
		}
		select {
		case <-wake:
		case <-timer.C:
			return &pb.PullResponse{}, nil
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-outage:
			return nil, errUnavailable
		case <-s.gone:
			return nil, notFound("subscription", req.Subscription)
		case <-b.done:
			return nil, errShutdown
		}
	}
}

var errShutdown = status.Error(codes.Unavailable, "vmpulse broker: shutting down")

// Seek to a time acknowledges every message of the subscription published
// before it and makes every message published from then on unacknowledged
// again, delivering it anew with its data and attributes: what the
// subscription still holds, and what the topic keeps (message retention, even
// from before the subscription existed) or the subscription retains
// (retain_acked_messages). Seeking to a future time also acknowledges the
// messages published until then. Seek to a snapshot is not implemented.
func (b *Server) Seek(_ context.Context, req *pb.SeekRequest) (*pb.SeekResponse, error) {
	if err := checkName("subscription", req.Subscription, "subscriptions"); err != nil {
		return nil, err
	}
	var at time.Time
	switch v := req.Target.(type) {
	case *pb.SeekRequest_Time:
		if err := v.Time.CheckValid(); err != nil {
			return nil, invalid("time", "%v", err)
		}
		at = v.Time.AsTime()
	case *pb.SeekRequest_Snapshot:
		return nil, errSnapshots
	default:
		return nil, invalid("target", "a time or a snapshot is required")
	}
	b.mu.Lock()
	s, err := b.sub(req.Subscription)
	if err != nil {
		b.mu.Unlock()
		return nil, err
	}
	replayed, skipped := b.seek(s, at)
	s.lastActive = b.now()
	b.mu.Unlock()
	if skipped > 0 {
		b.log.Warn("broker: byte cap reached: Seek replays only the newest retained messages",
			"subscription", req.Subscription, "time", at, "replayed", replayed, "not_replayed", skipped, "max_bytes", b.maxBytes)
	}
	return &pb.SeekResponse{}, nil
}

// StreamingPull delivers messages as soon as they are published or become
// due again, within the flow-control limits of the first request, and takes
// acks, nacks and deadline changes from the client. A request without ack ids
// (the client's keepalive) gets an empty response.
func (b *Server) StreamingPull(ss pb.Subscriber_StreamingPullServer) error {
	req, err := ss.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	if err := checkName("subscription", req.Subscription, "subscriptions"); err != nil {
		return err
	}
	deadline, err := checkAckDeadline("stream_ack_deadline_seconds", req.StreamAckDeadlineSeconds)
	if err != nil {
		return err
	}
	if err := checkStreamAcks(req); err != nil {
		return err
	}
	outage := b.outageChan()

	b.mu.Lock()
	s, err := b.sub(req.Subscription)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	id := req.ClientId
	if id == "" {
		b.nextClient++
		id = fmt.Sprintf("\x00anonymous-%d", b.nextClient)
	}
	f := s.flows[id]
	if f == nil {
		f = &flow{id: id}
		s.flows[id] = f
	}
	f.maxN, f.maxB = max(req.MaxOutstandingMessages, 0), max(req.MaxOutstandingBytes, 0)
	f.streams++
	s.streams++
	s.lastActive = b.now()
	b.applyStreamRequest(s, req)
	b.mu.Unlock()

	st := &pullStream{deadline: deadline}
	defer func() {
		b.mu.Lock()
		s.streams--
		b.streamEnded(s, f)
		s.lastActive = b.now()
		b.mu.Unlock()
	}()

	errc := make(chan error, 1)
	pings := make(chan struct{}, 1)
	go b.streamRecv(ss, s, st, errc, pings)

	ctx := ss.Context()
	for {
		b.mu.Lock()
		if b.subs[s.name] != s {
			b.mu.Unlock()
			return notFound("subscription", s.name)
		}
		msgs := b.take(s, f, st.deadline, maxBatchMessages, maxBatchBytes)
		wake := s.waitChan()
		b.mu.Unlock()
		if len(msgs) > 0 {
			if err := ss.Send(&pb.StreamingPullResponse{ReceivedMessages: msgs}); err != nil {
				b.mu.Lock()
				if b.subs[s.name] == s {
					b.untake(s, msgs)
				}
				b.mu.Unlock()
				return err
			}
			continue
		}
		select {
		case <-wake:
		case <-pings:
			if err := ss.Send(&pb.StreamingPullResponse{}); err != nil {
				return err
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-outage:
			return errUnavailable
		case <-s.gone:
			return notFound("subscription", s.name)
		case <-b.done:
			return errShutdown
		}
	}
}

// pullStream is the state of one StreamingPull call; deadline is guarded by
// Server.mu.
type pullStream struct {
	deadline time.Duration
}

func checkStreamAcks(req *pb.StreamingPullRequest) error {
	if len(req.ModifyDeadlineAckIds) != len(req.ModifyDeadlineSeconds) {
		return invalid("modify_deadline_seconds", "%d values for %d modify_deadline_ack_ids", len(req.ModifyDeadlineSeconds), len(req.ModifyDeadlineAckIds))
	}
	if err := checkAckIDs("ack_ids", req.AckIds); err != nil {
		return err
	}
	if err := checkAckIDs("modify_deadline_ack_ids", req.ModifyDeadlineAckIds); err != nil {
		return err
	}
	return checkModackSeconds("modify_deadline_seconds", req.ModifyDeadlineSeconds)
}

// applyStreamRequest applies the acks and deadline changes of a stream
// request; b.mu must be held.
func (b *Server) applyStreamRequest(s *subscription, req *pb.StreamingPullRequest) {
	for _, id := range req.AckIds {
		b.ack(s, id)
	}
	for i, id := range req.ModifyDeadlineAckIds {
		b.modack(s, id, time.Duration(req.ModifyDeadlineSeconds[i])*time.Second)
	}
}

// streamRecv reads the client's requests until the stream ends, reporting the
// end (nil when the client closed its side) or an invalid request on errc.
func (b *Server) streamRecv(ss pb.Subscriber_StreamingPullServer, s *subscription, st *pullStream, errc chan<- error, pings chan<- struct{}) {
	for {
		req, err := ss.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			errc <- err
			return
		}
		if req.MaxOutstandingMessages != 0 || req.MaxOutstandingBytes != 0 {
			errc <- invalid("max_outstanding_messages", "flow control can only be set on the first request of a stream")
			return
		}
		if err := checkStreamAcks(req); err != nil {
			errc <- err
			return
		}
		var deadline time.Duration
		if req.StreamAckDeadlineSeconds != 0 {
			if deadline, err = checkAckDeadline("stream_ack_deadline_seconds", req.StreamAckDeadlineSeconds); err != nil {
				errc <- err
				return
			}
		}
		b.mu.Lock()
		if deadline > 0 {
			st.deadline = deadline
		}
		if b.subs[s.name] == s {
			b.applyStreamRequest(s, req)
			s.lastActive = b.now()
		}
		b.mu.Unlock()
		if len(req.AckIds) == 0 && len(req.ModifyDeadlineAckIds) == 0 {
			select {
			case pings <- struct{}{}:
			default:
			}
		}
	}
}
