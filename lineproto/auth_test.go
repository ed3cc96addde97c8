package lineproto_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/lineproto"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

type tokens map[string]*policy.Identity

func (ts tokens) Verify(token string) (*policy.Identity, error) {
	if id, ok := ts[token]; ok {
		return id, nil
	}
	return nil, &policy.Error{Kind: policy.KindUnauthenticated, Message: "invalid token"}
}

func mustGrants(t *testing.T, s string) policy.Grants {
	g, err := auth.ParseGrants(s)
	require.NoError(t, err)
	return g
}

// TestAuth: with a verifier the server greets with ?Needs Auth; a good
// ~password authorizes, anything else is refused with a disconnect.
func TestAuth(t *testing.T) {
	svc := policy.New(ttlstore.New(ttlstore.Options{MaxKeys: 100}), nil,
		policy.Config{MaxKeySize: 100, MaxValueSize: 1000, MaxTTL: time.Hour, CostRead: 1, CostWrite: 3}, nil)
	srv := lineproto.New(lineproto.Config{Service: svc, Verifier: tokens{"tok": {Name: "alice", Grants: mustGrants(t, "rw:")}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-done
	}()
	session := func(lines string) string {
		nc, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			io.WriteString(nc, lines)
			nc.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(bufio.NewReader(nc))
		if err != nil {
			require.ErrorContains(t, err, "reset")
		}
		return string(out)
	}
	assert.Equal(t, "?Needs Auth\n?Authorized\n=v\n=v\n", session("~password=tok\nk=v\nk\n"))
	assert.Equal(t, "?Needs Auth\n!Not Authorized\n", session("k\nk=v\n"), "a command first: refused, disconnected")
	assert.Equal(t, "?Needs Auth\n!Not Authorized\n", session("~password=revoked\nk\n"))
	assert.True(t, strings.HasPrefix(session(""), "?Needs Auth\n"))
}
