// Package rpc routes remote procedure calls to one provider each, in the
// style of deepstream's RPC: a request goes to one of the providers
// registered for its name, chosen least-busy first (ties in turn); a
// provider that rejects it or goes away passes it to the next provider not
// yet tried; a call that no provider answers in time ends.
//
// The package knows nothing of MQTT: the broker finds the candidate
// providers (connected clients subscribed to $rpc/<name>), sends the
// requests and delivers the answers. The Router holds the calls in flight,
// who holds each, and the timers.
package rpc
