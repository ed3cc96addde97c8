package resp

import (
	"errors"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// Verifier checks a token and returns who holds it. It has the method
// set of auth.Verifier, so the server hands its verifier over as it is.
type Verifier interface {
	Verify(token string) (*policy.Identity, error)
}

// errNoAuth is Redis's refusal of a command before authentication.
const errNoAuth = "NOAUTH Authentication required."

// authenticate verifies token (and, when user is a name other than
// Redis's "default", that the token is that identity's) and makes the
// connection's caller the identity; otherwise it returns the refusal.
func (c *conn) authenticate(user, token string) string {
	id, err := c.s.cfg.Verifier.Verify(token)
	if err != nil {
		var pe *policy.Error
		if errors.As(err, &pe) {
			return "WRONGPASS " + pe.Code() + ": " + pe.Message
		}
		return "WRONGPASS invalid token"
	}
	if id == nil || (user != "" && user != "default" && user != id.Name) {
		return "WRONGPASS invalid username-token pair"
	}
	c.authed = true
	if c.s.cfg.Authenticate != nil {
		c.caller = c.s.cfg.Authenticate(peerIP(c.nc), id)
	}
	return ""
}

// deauthenticate returns the connection to its state on connect.
func (c *conn) deauthenticate() {
	c.authed = c.s.cfg.Verifier == nil
	c.caller = c.s.svc.Caller(peerIP(c.nc), false)
}
