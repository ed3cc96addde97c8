package kvconnect_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/denoclient"
	"github.com/rendezvous-kv/rendezvous/server"
)

// testServer is a server on 127.0.0.1:0 for the clients to use.
type testServer struct {
	srv  *server.Server
	base string
	done chan error
}

// startServer starts a server with rate limiting off and Deno's value
// size, changed by edit.
func startServer(t *testing.T, edit func(*server.Config)) *testServer {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = ""
	cfg.RateOff = true
	cfg.MaxValueSize = 65536
	cfg.MaxKeys = 100000
	if edit != nil {
		edit(&cfg)
	}
	srv, err := server.New(cfg)
	require.NoError(t, err)
	ts := &testServer{srv: srv, base: "http://" + srv.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(context.Background()) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func (ts *testServer) stop(t *testing.T) {
	if ts.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ts.srv.Shutdown(ctx))
	<-ts.done
	ts.srv = nil
}

// clients returns the installed real clients.
func clients(t *testing.T) denoclient.Clients {
	t.Helper()
	c, err := denoclient.Install()
	require.NoError(t, err, "installing the Deno KV clients")
	return c
}

// runClient runs testdata/<script> with the client it is for ("deno.ts"
// with Deno, ".mjs" with Node), with env added, and returns its output.
// It fails the test when the script fails.
func runClient(t *testing.T, script string, env ...string) string {
	t.Helper()
	out, err := tryClient(t, script, env...)
	require.NoError(t, err, "%s failed:\n%s", script, out)
	return out
}

// tryClient is runClient that returns the script's failure instead.
func tryClient(t *testing.T, script string, env ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := clientCommand(t, ctx, script, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// The whole suite through both real clients, each against its own server.
func TestSuiteBothClients(t *testing.T) {
	for _, script := range []string{"deno.ts", "node.mjs"} {
		t.Run(script, func(t *testing.T) {
			ts := startServer(t, nil)
			out := runClient(t, script, "CASES=suite.mjs", "BASE="+ts.base, "P=suite", "DENO_KV_ACCESS_TOKEN=anything")
			require.Contains(t, out, "done", out)
			t.Log(out)
		})
	}
}

// Keys shared with curl in both directions, through both clients.
func TestCurlInterop(t *testing.T) {
	for _, script := range []string{"deno.ts", "node.mjs"} {
		t.Run(script, func(t *testing.T) {
			ts := startServer(t, nil)
			out := runClient(t, script, "CASES=interop.mjs", "BASE="+ts.base, "P=mesh42", "DENO_KV_ACCESS_TOKEN=anything")
			require.Contains(t, out, "done", out)
		})
	}
}

// post sends a KV Connect request.
func post(t *testing.T, url, token string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	return resp, b.Bytes()
}

var _ = fmt.Sprint

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// A token the server refuses (here none) makes openKv itself fail, in
// both clients, with the server's message.
func TestRefusedTokenFailsOpen(t *testing.T) {
	ts := startServer(t, nil)
	for _, script := range []string{"deno.ts", "node.mjs"} {
		t.Run(script, func(t *testing.T) {
			out, err := tryClient(t, script, "CASES=badtoken.mjs", "BASE="+ts.base, "DENO_KV_ACCESS_TOKEN=")
			require.Error(t, err, out)
			require.Contains(t, out, "401")
			require.Contains(t, out, "missing access token")
			require.NotContains(t, out, "opened with a refused token")
		})
	}
}
