package kv

import "time"

// Decision is a rate limiter's answer to one request, carrying what a front
// end needs for its rate-limit headers and for Retry-After.
type Decision struct {
	// Allowed reports whether the request may proceed; its tokens were spent
	// only if it is true.
	Allowed bool
	// Limit is the bucket size, the most a client can ever have. It is zero
	// when rate limiting is off, which callers can use to leave out
	// rate-limit headers.
	Limit int
	// Remaining is the number of whole tokens left after this decision, so a
	// client can tell how many more requests of cost 1 would succeed now.
	Remaining int
	// RetryAfter is zero when Allowed. Otherwise it is how long until the
	// bucket holds the requested tokens, rounded up to whole seconds (and at
	// least one second) because HTTP's Retry-After has one-second resolution
	// and rounding down would send clients back too early. A request costing
	// more than Limit can never succeed; its RetryAfter is the time an empty
	// bucket takes to refill completely, so a client that honours it backs off
	// for a full refill instead of retrying at once.
	RetryAfter time.Duration
}

// Rate is how fast a client's rate-limit bucket refills: Tokens every
// Window, with room for Tokens at once. The zero Rate means the server's
// default.
type Rate struct {
	Tokens int
	Window time.Duration
}

// IsZero reports whether r is the zero Rate, the server's default.
func (r Rate) IsZero() bool { return r == Rate{} }
