// Package faults is vmpulse's fault-injection harness: it runs the real
// vmpulse-route (×2, route1 and route2) and vmpulse-relay binaries, built from
// this checkout, against a MariaDB of its own and the Pub/Sub emulator, with a
// fault-injecting TCP proxy in front of each dependency, drives them with the
// project's load driver (loadtest/driver) through the 50/50 split, listens to
// the relay like a dashboard does, then injects one fault per subtest and checks
// that nothing acknowledged is lost:
//
//   - every id the sender saw acknowledged (2xx) is in MySQL exactly once;
//   - every id in MySQL reaches a websocket client within 30 s after the fault ends;
//   - the sender ends with nothing unsent (every fault here is shorter than its
//     give-up window, see giveUpWindow);
//   - no process's peak RSS exceeds its limit (512 MiB: the k8s manifests' limit
//     for the routes, and the relay's).
//
// The MySQL blackhole also checks issue 9's item 4: no request waits more than
// 12 s for an answer, and a route SIGTERMed during the partition exits within
// the 20 s k8s leaves it (30 s grace minus the 10 s preStop sleep).
//
// A subscription of the harness's own, straight to the emulator, tells a record
// that never reached the websocket apart: on the topic (lost or stuck in the
// relay) or not (never published by a route).
//
// Each subtest prints one row of a table (fault, acknowledged, in MySQL, seen on
// a websocket, worst lag after the fault, peak RSS per process); the table is
// also written to $FAULTS_OUT when it is set.
//
// The pieces:
//
//   - private mariadbd instances come from internal/mariadbd (a template data
//     directory cached between runs, copied per instance), started, killed (-9)
//     and restarted.
//   - proxy.go: Toxiproxy in-process for latency, a blackhole that stalls both
//     directions like a network partition (TCP holds the bytes; nothing is
//     dropped), and "down" (connections reset, new ones refused).
//   - mysqlcut.go: a MySQL-aware proxy that lets a commit reach the server and
//     drops the server's OK, so the client never learns the commit happened.
//   - process.go: start/SIGTERM/SIGKILL/restart of the binaries, RSS and
//     goroutine sampling.
//   - wsclient.go: a dashboard stand-in that records when it first saw each id.
//   - stack.go: the whole pipeline for one scenario; load.go: records and load;
//     verdict.go: the criteria and the table; soak.go: the soak's statistics;
//     sem.go: how many scenarios run at once, longest first.
//
// The suite runs only when VMPULSE_FAULTS=1 (`make test-faults`), because it
// takes minutes; the soak (TestSoak) only when SOAK_DURATION is set (`make soak`).
package faults
