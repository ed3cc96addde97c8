// Package auth turns the credential a caller presents (a bearer token
// today; later the Redis AUTH password and the KV Connect access token)
// into a policy.Identity with its grants. Every front end asks the same
// Verifier, and policy enforces the grants, so no protocol decides who may
// do what on its own.
//
// Two verifiers exist: a token file (TokenFile), whose lines name each
// token's identity, grants and rate, and JWTs (JWT) signed with a shared
// secret, a public key or the keys of a JWKS URL. Beside them,
// CertIdentities gives the identity of a verified client certificate
// (mTLS) from a file in the token file's format.
package auth

import "github.com/rendezvous-kv/rendezvous/policy"

// Verifier checks a token and returns the identity it proves. Its
// refusals are *policy.Error of kind policy.KindUnauthenticated, worded
// only "invalid token" or "token expired", so that a caller learns
// nothing about which check failed.
type Verifier interface {
	Verify(token string) (*policy.Identity, error)
}

// The refusals of a token. They are all a caller is told: a token that is
// unknown, malformed or badly signed is simply invalid.
var (
	ErrInvalidToken = &policy.Error{Kind: policy.KindUnauthenticated, Message: "invalid token"}
	ErrTokenExpired = &policy.Error{Kind: policy.KindUnauthenticated, Message: "token expired"}
)
