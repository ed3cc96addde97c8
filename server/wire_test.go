package server_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProtocols(t *testing.T) {
	s := start(t, testConfig())
	resp, body := do(t, "GET", s.base+"/", "", "User-Agent", "curl/8.5.0", "Accept", "*/*")
	require.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	assert.Contains(t, body, s.base+"/set/", "usage shows this server's address")

	resp, body = do(t, "GET", s.base+"/", "", "Accept", "text/html,application/xhtml+xml")
	require.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	assert.Contains(t, body, "<html")

	// HTTP/2 with prior knowledge on the same port.
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	defer tr.CloseIdleConnections()
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	req, _ := http.NewRequest("POST", s.base+"/set/h2", strings.NewReader("over h2c"))
	resp, err := h2.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, 2, resp.ProtoMajor)
	resp, body = do(t, "GET", s.base+"/get/h2", "")
	assert.Equal(t, "over h2c", body)
	assert.Equal(t, 1, resp.ProtoMajor)
}

func TestMetricsAndHealth(t *testing.T) {
	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	cfg.RateOff, cfg.RateTokens, cfg.RateWindow, cfg.RateBurst = false, 1, time.Hour, 4
	s := start(t, cfg)
	resp, _ := do(t, "POST", s.base+"/set/m", "v")
	require.Equal(t, 200, resp.StatusCode)
	resp, _ = do(t, "GET", s.base+"/get/m", "")
	require.Equal(t, 200, resp.StatusCode)
	resp, _ = do(t, "GET", s.base+"/get/m", "")
	require.Equal(t, 429, resp.StatusCode)

	resp, body := do(t, "GET", s.base+"/metrics", "")
	require.Equal(t, 200, resp.StatusCode)
	for _, want := range []string{
		`rendezvous_http_requests_total{code="200",route="set"} 1`,
		`rendezvous_http_requests_total{code="429",route="get"} 1`,
		`rendezvous_rate_limited_total{route="get"} 1`,
		"rendezvous_keys 1",
		"rendezvous_stored_bytes 2",
		"rendezvous_journal_bytes ",
		`rendezvous_http_request_duration_seconds_count{route="set"} 1`,
	} {
		assert.Contains(t, body, want)
	}
	resp, _ = do(t, "GET", s.base+"/healthz", "")
	assert.Equal(t, 200, resp.StatusCode)
	resp, _ = do(t, "GET", s.base+"/readyz", "")
	assert.Equal(t, 200, resp.StatusCode)
}

func TestMetricsOnSeparateAddress(t *testing.T) {
	cfg := testConfig()
	cfg.MetricsAddr = "127.0.0.1:0"
	s := start(t, cfg)
	resp, _ := do(t, "GET", s.base+"/metrics", "")
	assert.Equal(t, 404, resp.StatusCode, "not on the public listener")
	require.NotNil(t, s.MetricsAddr())
	resp, body := do(t, "GET", "http://"+s.MetricsAddr().String()+"/metrics", "")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, body, "go_goroutines")
	assert.Contains(t, s.log.String(), `msg="metrics listening" addr=`+s.MetricsAddr().String())
	assert.Nil(t, s.PprofAddr(), "no profiling unless asked for")
}

// ETags come from versions, which continue above every version seen, so a
// client's ETag stays valid across a restart and never matches a later
// write.
func TestETagSurvivesRestart(t *testing.T) {
	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	s := start(t, cfg)
	resp, _ := do(t, "POST", s.base+"/set/cfg", "v1")
	tag := resp.Header.Get("ETag")
	require.NotEmpty(t, tag)
	resp, _ = do(t, "POST", s.base+"/set/other", "x")
	require.Equal(t, 200, resp.StatusCode)
	resp, _ = do(t, "POST", s.base+"/del/other", "")
	require.Equal(t, 200, resp.StatusCode)
	require.NoError(t, s.stop(t))

	s2 := start(t, cfg)
	resp, _ = do(t, "GET", s2.base+"/get/cfg", "")
	assert.Equal(t, tag, resp.Header.Get("ETag"), "the ETag survives the restart")
	resp, body := do(t, "POST", s2.base+"/set/cfg", "v2", "If-Match", tag)
	require.Equal(t, 200, resp.StatusCode, body)
	next := resp.Header.Get("ETag")
	old, _ := strconv.Atoi(strings.Trim(tag, `"`))
	cur, _ := strconv.Atoi(strings.Trim(next, `"`))
	assert.Greater(t, cur, old+2, "versions continue above the deleted key's, never repeating")
	resp, _ = do(t, "POST", s2.base+"/set/cfg", "v3", "If-Match", tag)
	assert.Equal(t, 412, resp.StatusCode)
}

func TestWatchersPerNetwork(t *testing.T) {
	cfg := testConfig()
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.MaxWatchersPerIP, cfg.MaxWatchersPerNet, cfg.NetworkGrouping.V6 = 1, 2, 56
	s := start(t, cfg)
	open := func(ip string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", s.base+"/watch/", nil)
		require.NoError(t, err)
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := client.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	assert.Equal(t, 200, open("2001:db8:0:100::1").StatusCode)
	assert.Equal(t, 200, open("2001:db8:0:1ff::1").StatusCode, "another /64 of the same /56")
	refused := open("2001:db8:0:180::1")
	assert.Equal(t, 429, refused.StatusCode, "a third /64 of that /56")
	body, _ := io.ReadAll(refused.Body)
	assert.Contains(t, string(body), "from your network")
	assert.Equal(t, 200, open("2001:db8:0:200::1").StatusCode, "the next /56 is a network of its own")
}

// A request with both Content-Length and Transfer-Encoding is refused and
// its connection closed, so the request a proxy going by Content-Length
// would not see, hidden in the chunked body, never runs.
func TestRequestSmuggling(t *testing.T) {
	s := start(t, testConfig())
	c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))

	hidden := "POST /set/smuggled HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
	inner := "0\r\n\r\n" + hidden
	_, err = io.WriteString(c, "POST /set/front HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: "+
		strconv.Itoa(len(inner))+"\r\n\r\n"+inner)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, 400, resp.StatusCode, string(body))
	assert.Contains(t, string(body), "Transfer-Encoding and Content-Length")
	assert.True(t, resp.Close, "Connection: close")
	_, err = br.ReadByte()
	assert.True(t, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), "want the connection closed, got %v", err)

	for _, key := range []string{"smuggled", "front"} {
		resp, _ := do(t, "GET", s.base+"/get/"+key, "")
		assert.Equal(t, 404, resp.StatusCode, key)
	}
	resp, _ = do(t, "POST", s.base+"/set/plain", "v")
	assert.Equal(t, 200, resp.StatusCode, "other requests are served")
}
