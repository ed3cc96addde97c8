package handlers_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/listener"
)

// startListener serves e over the listener main.go uses, with its
// ConnContext, on loopback.
func startListener(t *testing.T, e *env) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts := httptest.NewUnstartedServer(e.srv)
	ts.Listener.Close()
	ts.Listener = listener.New(ln)
	ts.Config.ConnContext = listener.ConnContext
	ts.Config.ReadHeaderTimeout = 5 * time.Second
	ts.Start()
	t.Cleanup(ts.Close)
	return ln.Addr().String()
}

// rawConn is a client connection that writes bytes as given.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// exchange writes raw and reads one response.
func (rc *rawConn) exchange(raw string) (*http.Response, string) {
	rc.t.Helper()
	_, err := io.WriteString(rc.c, raw)
	require.NoError(rc.t, err)
	resp, err := http.ReadResponse(rc.br, nil)
	require.NoError(rc.t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(rc.t, err)
	return resp, string(b)
}

// assertClosed checks that the server closed the connection without
// sending anything more.
func (rc *rawConn) assertClosed() {
	rc.t.Helper()
	b, err := rc.br.ReadByte()
	if err == nil {
		rest, _ := rc.br.Peek(rc.br.Buffered())
		rc.t.Fatalf("the connection is still open and answered %q", append([]byte{b}, rest...))
	}
	assert.True(rc.t, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), "want the connection closed, got %v", err)
}

// smuggle is a request that a proxy going by Content-Length forwards as
// one, while net/http goes by the chunked coding and finds a second request
// in its body.
func smuggle(front, hidden string) string {
	inner := "0\r\n\r\n" + hidden
	return "POST " + front + " HTTP/1.1\r\nHost: h\r\nContent-Length: " + strconv.Itoa(len(inner)) +
		"\r\nTransfer-Encoding: chunked\r\n\r\n" + inner
}

const hiddenSet = "POST /set/smuggled HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"

// A request with both Transfer-Encoding and Content-Length is answered
// 400 and its connection closed, so the request hidden after its chunked
// body never runs; on a kept-alive connection too.
func TestContentLengthWithTransferEncoding(t *testing.T) {
	for _, before := range []string{"", "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"} {
		t.Run(map[bool]string{true: "new connection", false: "after a request"}[before == ""], func(t *testing.T) {
			e := newEnv(t)
			rc := dialRaw(t, startListener(t, e))
			if before != "" {
				resp, _ := rc.exchange(before)
				require.Equal(t, http.StatusOK, resp.StatusCode)
			}
			resp, body := rc.exchange(smuggle("/set/front", hiddenSet))
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
			assert.Equal(t, "request has both Transfer-Encoding and Content-Length; the connection is closed\n", body)
			assert.True(t, resp.Close, "Connection: close")
			rc.assertClosed()
			assert.Equal(t, 0, e.store.Len(), "neither request was stored")
		})
	}
}

// Chunked requests without a Content-Length, and requests with only a
// Content-Length, are served as before, on one connection.
func TestChunkedRequestsStillServed(t *testing.T) {
	e := newEnv(t)
	rc := dialRaw(t, startListener(t, e))
	resp, body := rc.exchange("POST /set/a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, body = rc.exchange("POST /set/b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nho")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, body = rc.exchange("PUT /set/c HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.False(t, resp.Close)
	assertValue(t, e.get("/get/a"), http.StatusOK, "hi", "")
	assertValue(t, e.get("/get/b"), http.StatusOK, "ho", "")
	assertValue(t, e.get("/get/c"), http.StatusOK, "x", "")
}
