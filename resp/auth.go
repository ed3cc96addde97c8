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
	// Through Service.Authenticate, so refused tokens are charged to the
	// address as on HTTP and guessing tokens over AUTH is throttled too.
	caller, err := c.s.svc.Authenticate(c.s.svc.Caller(peerIP(c.nc), false), c.s.cfg.Verifier, token)
	if err != nil {
		var pe *policy.Error
		if errors.As(err, &pe) {
			if pe.Kind == policy.KindRateLimited {
				return errorLine(err)
			}
			return "WRONGPASS " + pe.Code() + ": " + pe.Message
		}
		return "WRONGPASS invalid token"
	}
	id := caller.Identity
	if id == nil || (user != "" && user != "default" && user != id.Name) {
		return "WRONGPASS invalid username-token pair"
	}
	c.authed, c.byToken, c.caller = true, true, caller
	return ""
}

// deauthenticate returns the connection to its state on connect: the
// identity its client certificate names, else anonymous.
func (c *conn) deauthenticate() {
	c.byToken, c.certID = false, nil
	c.anonymous()
	c.certify()
}

func (c *conn) anonymous() {
	c.authed = c.s.cfg.Verifier == nil
	c.caller = c.s.svc.Caller(peerIP(c.nc), false)
}

// certify makes the caller of a connection that proved no token the
// identity its client certificate names now. It runs before each batch
// of commands, not once per connection, so that a name removed from the
// identity file (and the file re-read) stops working on connections
// already open, as it does over HTTP.
func (c *conn) certify() {
	if c.cert == nil || c.byToken {
		return
	}
	id := c.s.cfg.CertIdentity(c.cert)
	if id == c.certID {
		return
	}
	c.certID = id
	if id == nil || c.s.cfg.Authenticate == nil {
		c.anonymous()
		return
	}
	c.authed, c.caller = true, c.s.cfg.Authenticate(peerIP(c.nc), id)
}
