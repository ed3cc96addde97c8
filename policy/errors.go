package policy

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// Kind classifies an Error. Every front end maps a Kind to its own way of
// saying it; HTTPStatus is the HTTP one.
type Kind uint8

// The kinds of refusal a caller can get.
const (
	KindBadRequest   Kind = iota + 1 // malformed key, value, TTL or header
	KindForbidden                    // owned key, wrong or missing secret; ip/ key written cross-site
	KindNotFound                     // missing or expired key
	KindConflict                     // load-or-store or compare-and-swap lost; Current is set
	KindRateLimited                  // over the caller's token budget; Limit is set
	KindFull                         // the store is at its key cap
	KindUnavailable                  // storage refused the write (e.g. journal I/O error)
	KindTooLarge                     // a request body far beyond any accepted size
	KindPrecondition                 // If-Match / If-None-Match did not hold; Current may be set
	KindNotModified                  // a conditional long-poll saw no change
)

// Error is a refusal with a one-line message meant for the caller.
type Error struct {
	Kind    Kind
	Message string
	// Current is the stored item when Kind is KindConflict.
	Current *ttlstore.Item
	// Limit is the rate-limit decision when Kind is KindRateLimited.
	Limit *limiter.Decision
}

func (e *Error) Error() string { return e.Message }

// HTTPStatus returns the HTTP status code for e.
func (e *Error) HTTPStatus() int {
	switch e.Kind {
	case KindBadRequest:
		return http.StatusBadRequest
	case KindForbidden:
		return http.StatusForbidden
	case KindNotFound:
		return http.StatusNotFound
	case KindConflict:
		return http.StatusConflict
	case KindRateLimited:
		return http.StatusTooManyRequests
	case KindFull:
		return http.StatusInsufficientStorage
	case KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindPrecondition:
		return http.StatusPreconditionFailed
	case KindNotModified:
		return http.StatusNotModified
	}
	return http.StatusServiceUnavailable
}

// Errorf returns an Error of kind with a formatted message.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Shared refusals, allocated once because the hot paths return them often.
var (
	errNotFound     = &Error{Kind: KindNotFound, Message: "key not found"}
	errForbidden    = &Error{Kind: KindForbidden, Message: "key is owned: wrong or missing owner secret"}
	errFull         = &Error{Kind: KindFull, Message: "store is full"}
	errPrecondition = &Error{Kind: KindPrecondition, Message: "precondition failed: the key changed or does not exist"}
	errCrossSite    = &Error{Kind: KindForbidden, Message: "ip/ keys cannot be written or deleted by a page of another web site, which acts from its visitor's address"}
)

// fromStore turns a ttlstore error into an Error.
func fromStore(err error, cur ttlstore.Item) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ttlstore.ErrNotFound):
		return errNotFound
	case errors.Is(err, ttlstore.ErrForbidden):
		return errForbidden
	case errors.Is(err, ttlstore.ErrFull):
		return errFull
	case errors.Is(err, ttlstore.ErrExists):
		return &Error{Kind: KindConflict, Message: "key already exists", Current: &cur}
	case errors.Is(err, ttlstore.ErrVersionMismatch):
		return errPrecondition
	case errors.Is(err, ttlstore.ErrMismatch):
		return &Error{Kind: KindConflict, Message: "value does not match", Current: &cur}
	}
	return &Error{Kind: KindUnavailable, Message: "storage unavailable: " + err.Error()}
}
