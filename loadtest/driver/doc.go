// Package driver is the Go load generator of vmpulse: the same two phases as the
// Locust files next to it (loadtest/locustfile_collect.py, loadtest/locustfile_send.py),
// with the same parameters and the same records file, for machines without Locust and
// for measuring how many requests per second one core can drive.
//
// Phase 1, Collect: simulated users poll the agent's GET /sample, each waiting a random
// time in a range between requests, users started at a spawn rate. The agent serves
// its latest snapshot, so polling faster than its sampling interval returns the same
// record again: records are de-duplicated by id (records without one by content, see
// Key). The phase stops at the target number of unique records or at the time limit.
//
// Phase 2, Send: users take records from one shared queue, so that every record is sent
// by exactly one user at a time and committed exactly once, and POST each to the
// ingress. Retryable failures (5xx, 408, 429, connection errors, timeouts) go back to
// the queue with exponential backoff and are counted; 4xx are rejections, counted with
// the server's message. The phase ends when the queue is empty and nothing is in flight.
//
// The records file (ReadFile, WriteFile) is a JSON array of records, one per line,
// written atomically. Split reads back from MySQL which route stored each record and
// tests the split against 50/50.
package driver
