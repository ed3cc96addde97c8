package resp

import (
	"errors"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// errorPrefix is the Redis error type that answers a refusal of kind k:
// the one place where the Redis front end maps policy's kinds to its wire.
// Clients branch on the first word, as they do on Redis's own errors.
func errorPrefix(k policy.Kind) string {
	switch k {
	case policy.KindOwned, policy.KindForbidden, policy.KindNoPermission:
		return "NOPERM"
	case policy.KindUnauthenticated:
		return "NOAUTH"
	case policy.KindFull:
		return "OOM"
	}
	// The rest (bad input, limits, rate, storage, shutdown) are ERR, as
	// Redis words most refusals.
	return "ERR"
}

// errorLine is the reply to err, without the leading '-': for a policy
// refusal "<PREFIX> <code>: <message>", so a client can tell every refusal
// by the same stable code as over HTTP.
func errorLine(err error) string {
	var pe *policy.Error
	if errors.As(err, &pe) {
		return errorPrefix(pe.Kind) + " " + pe.Code() + ": " + pe.Message
	}
	return "ERR " + policy.CodeInternal + ": " + err.Error()
}

// Redis's own wording of the errors a command's syntax gets.
const (
	errSyntax     = "ERR syntax error"
	errNotInt     = "ERR value is not an integer or out of range"
	errOverflow   = "ERR increment or decrement would overflow"
	errExpireTime = "ERR invalid expire time in '%s' command"
)
