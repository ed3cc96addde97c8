package policy

import (
	"errors"
	"fmt"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Kind classifies an Error: one kind for each refusal a client may want to
// tell from the others. Its Code names it the same way on every wire; each
// front end maps kinds to its own status (an HTTP status, later a RESP
// error) in one place of its own, so policy knows no protocol.
type Kind uint8

// The kinds of refusal a caller can get. Their values are not stable, their
// codes are.
const (
	KindBadRequest      Kind = iota + 1 // malformed key, value, TTL, header or parameter
	KindForbidden                       // ip/ key written or deleted by another site's web page
	KindNotFound                        // missing or expired key
	KindConflict                        // load-or-store or compare-and-swap lost; Current is set
	KindRateLimited                     // over the caller's token budget; Limit is set
	KindFull                            // the store is at its key cap
	KindUnavailable                     // storage refused the write (e.g. journal I/O error) or is not ready
	KindTooLarge                        // value plus owner secret beyond the size limit
	KindPrecondition                    // If-Match / If-None-Match did not hold; Current may be set
	KindNotModified                     // a conditional long-poll saw no change
	KindOwned                           // owned key, wrong or missing owner secret
	KindTooManyWatches                  // the caller's, its network's or the server's cap of open watches
	KindShuttingDown                    // the server is stopping; a retry elsewhere or later succeeds
	KindWatchDisabled                   // this server has no change feed
	KindCheckFailed                     // a check of a transaction did not hold; Failed is set
	KindUnauthenticated                 // no valid token where one is needed: missing, unknown, expired or badly signed
	KindNoPermission                    // the caller's identity has no grant for the operation on the key
	KindOverloaded                      // too many requests in flight; a retry in a moment succeeds

	kindEnd // one past the last kind, for tests that visit them all
)

// codes are the kinds' machine-readable names, stable across versions:
// clients branch on them, so a code is never renamed or reused.
var codes = [kindEnd]string{
	KindBadRequest:      "bad_request",
	KindForbidden:       "forbidden",
	KindNotFound:        "key_not_found",
	KindConflict:        "conflict",
	KindRateLimited:     "rate_limited",
	KindFull:            "store_full",
	KindUnavailable:     "storage_unavailable",
	KindTooLarge:        "too_large",
	KindPrecondition:    "precondition_failed",
	KindNotModified:     "not_modified",
	KindOwned:           "owned",
	KindTooManyWatches:  "too_many_watches",
	KindShuttingDown:    "shutting_down",
	KindWatchDisabled:   "watch_disabled",
	KindCheckFailed:     "check_failed",
	KindUnauthenticated: "unauthenticated",
	KindNoPermission:    "no_permission",
	KindOverloaded:      "overloaded",
}

// CodeInternal is the code of a failure that is the server's fault, and of
// a Kind this version does not know.
const CodeInternal = "internal"

// Code returns k's machine-readable name, such as "key_not_found".
func (k Kind) Code() string {
	if k == 0 || k >= kindEnd {
		return CodeInternal
	}
	return codes[k]
}

// Error is a refusal with a one-line message meant for the caller.
type Error struct {
	Kind    Kind
	Message string
	// Current is the stored item when Kind is KindConflict.
	Current *kv.Item
	// Limit is the rate-limit decision when Kind is KindRateLimited.
	Limit *kv.Decision
	// Failed lists, ascending, the indexes in TxnRequest.Checks of the
	// checks that did not hold, when Kind is KindCheckFailed.
	Failed []int
}

func (e *Error) Error() string { return e.Message }

// Code returns the machine-readable name of e's kind.
func (e *Error) Code() string { return e.Kind.Code() }

// Errorf returns an Error of kind with a formatted message.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Shared refusals, allocated once because the hot paths return them often.
var (
	errNotFound     = &Error{Kind: KindNotFound, Message: "key not found"}
	errOwned        = &Error{Kind: KindOwned, Message: "key is owned: wrong or missing owner secret"}
	errFull         = &Error{Kind: KindFull, Message: "store is full"}
	errPrecondition = &Error{Kind: KindPrecondition, Message: "precondition failed: the key changed or does not exist"}
	errCrossSite    = &Error{Kind: KindForbidden, Message: "ip/ keys cannot be written or deleted by a page of another web site, which acts from its visitor's address"}
)

// fromStore turns a store's refusal (one of kv's errors) into an Error.
func fromStore(err error, cur kv.Item) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kv.ErrNotFound):
		return errNotFound
	case errors.Is(err, kv.ErrForbidden):
		return errOwned
	case errors.Is(err, kv.ErrFull):
		return errFull
	case errors.Is(err, kv.ErrExists):
		return &Error{Kind: KindConflict, Message: "key already exists", Current: &cur}
	case errors.Is(err, kv.ErrVersionMismatch):
		return errPrecondition
	case errors.Is(err, kv.ErrMismatch):
		return &Error{Kind: KindConflict, Message: "value does not match", Current: &cur}
	}
	return &Error{Kind: KindUnavailable, Message: "storage unavailable: " + err.Error()}
}
