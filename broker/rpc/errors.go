package rpc

import "errors"

var (
	// ErrUnknown is returned by Answer and Reject for an id that was
	// never issued.
	ErrUnknown = errors.New("rpc: no such request")

	// ErrEnded is returned by Answer, Reject and Assign for a call that was
	// answered, timed out or failed already.
	ErrEnded = errors.New("rpc: request ended already (answered, timed out or failed)")

	// ErrNotHolder is returned by Answer and Reject when the call is held
	// by another provider, or by none (it is being passed on).
	ErrNotHolder = errors.New("rpc: request is not held by this provider")

	// ErrNoProvider is returned by Assign when every candidate has been
	// tried, or there is none; the call has ended.
	ErrNoProvider = errors.New("rpc: no provider left to try")

	// ErrBusy is returned by Start when the Router's maxPending calls are
	// in flight.
	ErrBusy = errors.New("rpc: too many requests in flight")
)
