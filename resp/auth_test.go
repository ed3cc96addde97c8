package resp_test

import (
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/resp"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// tokens is a verifier of a fixed set of tokens, as a token file gives
// them; a token missing from it is refused as the auth package refuses.
type tokens map[string]*policy.Identity

func (ts tokens) Verify(token string) (*policy.Identity, error) {
	if id, ok := ts[token]; ok {
		return id, nil
	}
	return nil, &policy.Error{Kind: policy.KindUnauthenticated, Message: "invalid token"}
}

// serveWithAuth runs a resp.Server that requires a token.
func serveWithAuth(t *testing.T) string {
	t.Helper()
	svc := policy.New(ttlstore.New(ttlstore.Options{MaxKeys: 100}), nil,
		policy.Config{MaxKeySize: 100, MaxValueSize: 1000, MaxTTL: time.Hour, CostRead: 1, CostWrite: 3}, nil)
	grants, err := auth.ParseGrants("rw:")
	require.NoError(t, err)
	srv := resp.New(resp.Config{Service: svc, Verifier: tokens{"tok-alice": {Name: "alice", Grants: grants}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestAuth: with a verifier, every command but AUTH, HELLO and QUIT is
// refused with NOAUTH until a token is proven; a wrong token is WRONGPASS;
// RESET forgets the identity.
func TestAuth(t *testing.T) {
	addr := serveWithAuth(t)
	r := &rig{addr: addr}
	c := r.raw(t)
	c.send("GET k\r\nHELLO 3\r\nAUTH nope\r\nAUTH bob tok-alice\r\nAUTH tok-alice\r\nGET k\r\nRESET\r\nGET k\r\nAUTH alice tok-alice\r\nPING\r\n")
	assert.Equal(t, "-NOAUTH Authentication required.", c.line())
	assert.Contains(t, c.line(), "-NOAUTH HELLO must be called with the client already authenticated")
	assert.Equal(t, "-WRONGPASS unauthenticated: invalid token", c.line())
	assert.Equal(t, "-WRONGPASS invalid username-token pair", c.line())
	assert.Equal(t, "+OK", c.line())
	assert.Equal(t, "$-1", c.line())
	assert.Equal(t, "+RESET", c.line())
	assert.Equal(t, "-NOAUTH Authentication required.", c.line())
	assert.Equal(t, "+OK", c.line())
	assert.Equal(t, "+PONG", c.line())

	// go-redis authenticates with HELLO 3 AUTH, and with a wrong token
	// every command fails.
	good := redis.NewClient(&redis.Options{Addr: addr, Protocol: 3, Password: "tok-alice", MaxRetries: -1})
	defer good.Close()
	require.NoError(t, good.Set(ctx, "k", "v", 0).Err())
	assert.Equal(t, "v", good.Get(ctx, "k").Val())
	bad := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, Password: "revoked", MaxRetries: -1})
	defer bad.Close()
	assert.ErrorContains(t, bad.Get(ctx, "k").Err(), "WRONGPASS")
}
