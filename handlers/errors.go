package handlers

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// httpStatus is the HTTP status that answers a refusal of kind k: the one
// place where the HTTP front end maps policy's kinds to its wire.
func httpStatus(k policy.Kind) int {
	switch k {
	case policy.KindBadRequest:
		return http.StatusBadRequest
	case policy.KindTooLarge:
		// Not 413: an oversized value has always been answered 400, and
		// clients may test for that.
		return http.StatusBadRequest
	case policy.KindForbidden, policy.KindOwned, policy.KindNoPermission:
		return http.StatusForbidden
	case policy.KindUnauthenticated:
		return http.StatusUnauthorized
	case policy.KindNotFound:
		return http.StatusNotFound
	case policy.KindConflict, policy.KindCheckFailed:
		return http.StatusConflict
	case policy.KindRateLimited, policy.KindTooManyWatches:
		return http.StatusTooManyRequests
	case policy.KindFull:
		return http.StatusInsufficientStorage
	case policy.KindPrecondition:
		return http.StatusPreconditionFailed
	case policy.KindNotModified:
		return http.StatusNotModified
	case policy.KindOverloaded:
		// Shed at once: Retry-After says a second is enough.
		return http.StatusServiceUnavailable
	}
	// KindUnavailable, KindShuttingDown, KindWatchDisabled, and any kind
	// this front end does not know: a retry may succeed, here or elsewhere.
	return http.StatusServiceUnavailable
}

// routeError is a refusal the HTTP front end makes on its own, before any
// policy applies: no route serves the path, or none the method.
type routeError struct {
	status int
	code   []string // the X-Error-Code value
	msg    string
}

func (e *routeError) Error() string { return e.msg }

var (
	errUnknownPath = &routeError{http.StatusNotFound, []string{"unknown_endpoint"}, "no such endpoint; see / for usage"}
	errMethod      = &routeError{http.StatusMethodNotAllowed, []string{"method_not_allowed"}, "method not allowed"}
)

// codeHeaders holds the X-Error-Code value of every kind, and internal for
// the ones without a code, so that an error answer does not allocate it.
var codeHeaders = func() (hs [256][]string) {
	for k := range hs {
		hs[k] = []string{policy.Kind(k).Code()}
	}
	return hs
}()

var (
	bearerChallenge       = []string{`Bearer realm="rendezvous"`}
	invalidTokenChallenge = []string{`Bearer realm="rendezvous", error="invalid_token"`}
	noSniff               = []string{"nosniff"}
	retrySoon             = []string{"1"}
	errInternal           = &routeError{http.StatusInternalServerError, codeHeaders[0], "internal error"}
)

// errorJSON is how a refusal looks to a client that asked for JSON.
type errorJSON struct {
	// OK and Failed answer a transaction whose checks failed, as
	// {"ok": false, "failed": [indexes]}; other refusals leave them out.
	OK     *bool `json:"ok,omitempty"`
	Failed []int `json:"failed,omitempty"`

	Error string `json:"error"`
	Code  string `json:"code"`
	// Current is the stored item that won a race (a conflict), so that
	// the caller need not read it again.
	Current *ItemJSON `json:"current,omitempty"`
}

// writeError answers err with the status and code it carries, and returns
// the status. The code is in X-Error-Code; the body is one plain-text
// line, or {"error", "code"} JSON for a client that asked for JSON. A
// conflict answers the current item instead: its raw value, or the JSON
// with the item added.
func (s *API) writeError(w http.ResponseWriter, r *http.Request, err error) int {
	h := w.Header()
	status, code, msg := errInternal.status, errInternal.code, errInternal.msg
	var current *kv.Item // the winner of a lost race
	var failed []int     // the checks of a transaction that failed
	var pe *policy.Error
	var re *routeError
	switch {
	case errors.As(err, &pe):
		status, code, msg = httpStatus(pe.Kind), codeHeaders[pe.Kind], pe.Message
		if pe.Limit != nil {
			secs := int((pe.Limit.RetryAfter + time.Second - 1) / time.Second)
			h.Set("Retry-After", strconv.Itoa(max(secs, 1)))
			h.Set("X-RateLimit-Limit", strconv.Itoa(pe.Limit.Limit))
			h.Set("X-RateLimit-Remaining", strconv.Itoa(pe.Limit.Remaining))
		}
		if pe.Kind == policy.KindOverloaded {
			h["Retry-After"] = retrySoon
		}
		current, failed = pe.Current, pe.Failed
		if pe.Kind == policy.KindUnauthenticated {
			// RFC 6750 §3: a 401 names the scheme that would do, and
			// says when the token sent was the trouble.
			h["Www-Authenticate"] = bearerChallenge
			if pe == auth.ErrInvalidToken || pe == auth.ErrTokenExpired {
				h["Www-Authenticate"] = invalidTokenChallenge
			} else if s.needCredential != "" {
				// policy asks for a token; this server also takes, or
				// only takes, a client certificate.
				msg = s.needCredential
			}
		}
	case errors.As(err, &re):
		status, code, msg = re.status, re.code, re.msg
	default:
		s.cfg.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	h["X-Error-Code"] = code
	if status == http.StatusNotModified {
		// A 304 has no body, in any format.
		w.WriteHeader(status)
		return status
	}
	// /txn speaks JSON: its failed checks are a result every client
	// reads, not only a message.
	json := wantsJSON(r) || failed != nil
	if current != nil && !json {
		// A lost race answers with the winner, so the caller need not
		// read it again.
		writeValue(w, status, *current)
		return status
	}
	h["X-Content-Type-Options"] = noSniff
	if json {
		body := errorJSON{Error: msg, Code: code[0]}
		if failed != nil {
			body.OK, body.Failed = new(bool), failed
		}
		if current != nil {
			itemHeaders(h, *current, false)
			it := NewItemJSON(*current, true)
			body.Current = &it
		}
		writeJSON(w, status, body)
		return status
	}
	h["Content-Type"] = textPlain
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
	return status
}
