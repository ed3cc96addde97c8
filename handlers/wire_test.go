package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wireServer runs e's handler on a real loopback listener. It counts the
// request body bytes the handler reads, to show that huge bodies are not
// read to the end.
type wireServer struct {
	*httptest.Server
	bodyRead atomic.Int64
}

func startWire(t *testing.T, e *env) *wireServer {
	t.Helper()
	ws := &wireServer{}
	ws.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &countingBody{ReadCloser: r.Body, n: &ws.bodyRead}
		e.srv.ServeHTTP(w, r)
	}))
	ws.Config.ReadHeaderTimeout = 5 * time.Second
	ws.Start()
	t.Cleanup(ws.Close)
	return ws
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// wireResult is one response as the client saw it.
type wireResult struct {
	status int
	header http.Header
	body   string
	reused bool // the request went over an already open connection
}

func send(t *testing.T, c *http.Client, method, url, body string, header ...string) wireResult {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	var reused bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	})
	r, err := http.NewRequestWithContext(ctx, method, url, rd)
	require.NoError(t, err)
	for k, v := range pairs(header) {
		r.Header.Set(k, v)
	}
	resp, err := c.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return wireResult{status: resp.StatusCode, header: resp.Header, body: string(b), reused: reused}
}

func TestWireKeepAliveSequence(t *testing.T) {
	e := newEnv(t)
	ws := startWire(t, e)
	c := ws.Client()
	u := ws.URL

	steps := []struct {
		method, path, body string
		header             []string
		status             int
		want               string // response body
	}{
		{method: "GET", path: "/get/room/1", status: 404, want: "key not found\n"},
		{method: "POST", path: "/set/room/1?ttl=10m", body: "alpha", status: 200, want: "OK"},
		{method: "GET", path: "/get/room/1", status: 200, want: "alpha"},
		{method: "HEAD", path: "/get/room/1", status: 200, want: ""},
		{method: "POST", path: "/los/room/1", body: "beta", status: 409, want: "alpha"},
		{method: "POST", path: "/los/room/2", body: "beta", status: 200, want: "OK"},
		{method: "POST", path: "/cas/room/1", body: "gamma", header: []string{"X-Expected-Value", "nope"}, status: 409, want: "alpha"},
		{method: "POST", path: "/cas/room/1", body: "gamma", header: []string{"X-Expected-Value", "alpha"}, status: 200, want: "OK"},
		{method: "POST", path: "/cas/room/1", body: "ignored"}, // missing header
		{method: "POST", path: "/cas/room/none", body: "x", header: []string{"X-Expected-Value", "a"}, status: 404, want: "key not found\n"},
		{method: "POST", path: "/casoc/room/3", body: "delta", header: []string{"X-Expected-Value", ""}, status: 200, want: "OK"},
		{method: "POST", path: "/casoc/room/3", body: "eps", header: []string{"X-Expected-Value", "delta"}, status: 200, want: "OK"},
		{method: "POST", path: "/casoc/room/3", body: "zeta", header: []string{"X-Expected-Value", "delta"}, status: 409, want: "eps"},
		{method: "PUT", path: "/set/room%2F4", body: "eta", header: []string{"X-Owner-Secret", "s"}, status: 200, want: "OK"},
		{method: "PUT", path: "/set/room/4", body: "theta", status: 403},
		{method: "POST", path: "/set/ip/ssh", body: "22", status: 200, want: "127.0.0.1"},
		{method: "GET", path: "/get/ip/127.0.0.1/ssh", status: 200, want: "22"},
		{method: "PATCH", path: "/get/room/1", status: 405, want: "method not allowed\n"},
		{method: "GET", path: "/get/room/1", status: 200, want: "gamma"},
		{method: "GET", path: "/get/room/4", status: 200, want: "eta"},
		{method: "GET", path: "/get/%FF", status: 400},
	}
	steps[8].status = 400
	for i, st := range steps {
		res := send(t, c, st.method, u+st.path, st.body, st.header...)
		assert.Equal(t, st.status, res.status, "step %d %s %s: %q", i, st.method, st.path, res.body)
		if st.want != "" || st.status == 200 && st.method == "HEAD" {
			assert.Equal(t, st.want, res.body, "step %d", i)
		}
		assert.Equal(t, "127.0.0.1", res.header.Get("X-Client-Ip"), "step %d", i)
		if i > 0 {
			assert.True(t, res.reused, "step %d: the connection is kept alive", i)
		}
		if res.status >= 400 && res.status != 409 {
			assert.True(t, strings.HasSuffix(res.body, "\n") && strings.Count(res.body, "\n") == 1, "step %d: one-line error %q", i, res.body)
		}
		switch {
		case st.method == "HEAD":
			assert.Equal(t, "5", res.header.Get("Content-Length"))
			assert.Equal(t, "application/octet-stream", res.header.Get("Content-Type"))
		case st.method == "PATCH":
			assert.Equal(t, "GET, HEAD, DELETE", res.header.Get("Allow"))
		case res.status == 200 || res.status == 409:
			assert.NotEmpty(t, res.header.Get("X-Expires-At"), "step %d", i)
		}
	}
}

func TestWireLanding(t *testing.T) {
	ws := startWire(t, newEnv(t))
	res := send(t, ws.Client(), "GET", ws.URL+"/", "", "User-Agent", "curl/8.0")
	assert.Equal(t, 200, res.status)
	assert.Equal(t, "text/plain; charset=utf-8", res.header.Get("Content-Type"))
	assert.Contains(t, res.body, ws.URL+"/get/")
	res = send(t, ws.Client(), "GET", ws.URL+"/", "", "Accept", "text/html")
	assert.Equal(t, "text/html; charset=utf-8", res.header.Get("Content-Type"))

	// curl gets text unless it asks for HTML, which it then gets.
	res = send(t, ws.Client(), "GET", ws.URL+"/", "", "User-Agent", "curl/8.5.0", "Accept", "*/*")
	assert.Equal(t, "text/plain; charset=utf-8", res.header.Get("Content-Type"))
	assert.NotContains(t, res.body, "<html")
	res = send(t, ws.Client(), "GET", ws.URL+"/", "", "User-Agent", "curl/8.5.0", "Accept", "text/html")
	assert.Equal(t, "text/html; charset=utf-8", res.header.Get("Content-Type"))
	assert.Contains(t, res.body, "<html")
	assert.Equal(t, "Accept", res.header.Get("Vary"), "the answer depends on Accept alone")
}

// A 10 MB body is refused with 400 without the server reading it: with a
// declared Content-Length it reads nothing, without one it stops just past
// the limit. The client may see the 400 or, because the server closes the
// connection instead of draining the body, a write error.
func TestWireHugeBody(t *testing.T) {
	const tenMB = 10 << 20
	for _, declared := range []bool{true, false} {
		name := "content-length"
		if !declared {
			name = "chunked"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			ws := startWire(t, e)
			resp, b, err := postHuge(t, ws, "/set/big", bytes.Repeat([]byte{'x'}, tenMB), declared)
			if err != nil {
				assert.True(t, isConnClosed(err), "unexpected client error: %v", err)
			} else {
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
				assert.Equal(t, tooLarge+"\n", b)
				assert.Equal(t, "too_large", resp.Header.Get("X-Error-Code"))
				assert.Equal(t, "127.0.0.1", resp.Header.Get("X-Client-Ip"))
			}
			t.Logf("client error: %v; handler read %d bytes", err, ws.bodyRead.Load())
			assert.LessOrEqual(t, ws.bodyRead.Load(), int64(maxValue+4<<10), "handler read too much of the body")
			assert.Equal(t, 0, e.store.Len())

			// The server is fine afterwards.
			res := send(t, ws.Client(), "POST", ws.URL+"/set/small", "ok")
			assert.Equal(t, 200, res.status)
		})
	}
}

// postHuge posts payload to path, with its Content-Length declared or
// sent chunked, and returns the answer with its body read, or the error
// of a client whose write the server cut short.
func postHuge(t *testing.T, ws *wireServer, path string, payload []byte, declared bool) (*http.Response, string, error) {
	t.Helper()
	var body io.Reader = bytes.NewReader(payload)
	if !declared {
		body = struct{ io.Reader }{body}
	}
	r, err := http.NewRequest(http.MethodPost, ws.URL+path, body)
	require.NoError(t, err)
	if declared {
		require.EqualValues(t, len(payload), r.ContentLength)
	} else {
		r.ContentLength = -1 // sent chunked
	}
	resp, err := ws.Client().Do(r)
	if err != nil {
		return nil, "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), nil
}

func isConnClosed(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) ||
		strings.Contains(err.Error(), "connection") || strings.Contains(err.Error(), "broken pipe")
}

// Concurrent clients racing for one key over real connections: exactly one
// los wins, the others see the winner's value.
func TestWireConcurrentLoadOrStore(t *testing.T) {
	e := newEnv(t)
	ws := startWire(t, e)
	const n = 16
	var wg sync.WaitGroup
	results := make([]wireResult, n)
	for i := range n {
		wg.Go(func() {
			r, err := http.NewRequest("POST", ws.URL+"/los/leader", strings.NewReader(string(rune('a'+i))))
			if err != nil {
				return
			}
			resp, err := ws.Client().Do(r)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results[i] = wireResult{status: resp.StatusCode, body: string(b)}
		})
	}
	wg.Wait()
	winner := send(t, ws.Client(), "GET", ws.URL+"/get/leader", "").body
	wins := 0
	for i, r := range results {
		switch r.status {
		case 200:
			wins++
			assert.Equal(t, string(rune('a'+i)), winner)
		case 409:
			assert.Equal(t, winner, r.body)
		default:
			t.Errorf("client %d: status %d %q", i, r.status, r.body)
		}
	}
	assert.Equal(t, 1, wins)
}
