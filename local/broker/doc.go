// Package broker is an in-process Pub/Sub server for the local stack.
package broker
