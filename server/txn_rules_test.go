package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/fakeclock"
)

// get returns key's value, or "" with ok false when it is absent.
func (r *running) get(t *testing.T, key string) (string, bool) {
	t.Helper()
	resp, body := do(t, "GET", r.base+"/get/"+key, "")
	if resp.StatusCode == http.StatusNotFound {
		return "", false
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	return body, true
}

// An owned key in a transaction needs its secret, from the op or from
// X-Owner-Secret; without it the whole transaction is refused, and none of
// its other writes happen.
func TestTxnOwnedKeys(t *testing.T) {
	s := start(t, testConfig())
	resp, _ := do(t, "POST", s.base+"/set/mine", "v1", "X-Owner-Secret", "s3cret")
	require.Equal(t, 200, resp.StatusCode)
	for _, c := range []struct {
		name string
		body string
		hdr  []string
	}{
		{"no secret", `{"ops": [{"op": "set", "key": "free", "value": "x"}, {"op": "set", "key": "mine", "value": "v2"}]}`, nil},
		{"wrong secret", `{"ops": [{"op": "set", "key": "free", "value": "x"}, {"op": "set", "key": "mine", "value": "v2", "secret": "guess"}]}`, nil},
		{"wrong header", `{"ops": [{"op": "set", "key": "free", "value": "x"}, {"op": "delete", "key": "mine"}]}`, []string{"X-Owner-Secret", "guess"}},
		{"op's secret wins over the header", `{"ops": [{"op": "set", "key": "free", "value": "x"}, {"op": "delete", "key": "mine", "secret": ""}]}`,
			[]string{"X-Owner-Secret", "s3cret"}},
	} {
		resp, body := s.txn(t, c.body, c.hdr...)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s: %s", c.name, body)
		assert.Equal(t, "owned", resp.Header.Get("X-Error-Code"), c.name)
		assert.Equal(t, "ops[1]: key is owned: wrong or missing owner secret\n", body, c.name)
		_, ok := s.get(t, "free")
		assert.False(t, ok, "%s: the other op did not happen", c.name)
		v, _ := s.get(t, "mine")
		assert.Equal(t, "v1", v, c.name)
	}

	// The secret in the header serves every op: both keys are then owned.
	status, a := s.txnJSON(t, `{"ops": [{"op": "set", "key": "mine", "value": "v2"}, {"op": "set", "key": "also", "value": "a"}]}`,
		"X-Owner-Secret", "s3cret")
	require.Equal(t, 200, status, "%+v", a)
	v, _ := s.get(t, "mine")
	assert.Equal(t, "v2", v)
	resp, _ = do(t, "POST", s.base+"/set/also", "taken")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "the transaction claimed the new key for the secret")

	// A secret of its own serves one op.
	status, a = s.txnJSON(t, `{"ops": [{"op": "delete", "key": "mine", "secret": "s3cret"}, {"op": "set", "key": "plain", "value": "p"}]}`)
	require.Equal(t, 200, status, "%+v", a)
	_, ok := s.get(t, "mine")
	assert.False(t, ok)
	resp, _ = do(t, "POST", s.base+"/set/plain", "anyone")
	assert.Equal(t, 200, resp.StatusCode, "an op without a secret claims nothing")
}

// ip/ keys of a transaction are scoped to the caller, checks included, and
// refused whole to another site's page.
func TestTxnIPKeys(t *testing.T) {
	s := start(t, testConfig())
	status, a := s.txnJSON(t, `{"checks": [{"key": "ip/ssh", "absent": true}],
		"ops": [{"op": "set", "key": "ip/ssh", "value": "22"}, {"op": "set", "key": "plain", "value": "p"}]}`)
	require.Equal(t, 200, status, "%+v", a)
	v, ok := s.get(t, "ip/127.0.0.1/ssh")
	assert.True(t, ok)
	assert.Equal(t, "22", v)
	_, ok = s.get(t, "ip/ssh")
	assert.False(t, ok, "not stored under the literal key")

	// The check names the same stored key as the write: now it is there.
	resp, body := s.txn(t, `{"checks": [{"key": "ip/ssh", "absent": true}], "ops": [{"op": "set", "key": "ip/ssh", "value": "2222"}]}`)
	assert.Equal(t, http.StatusConflict, resp.StatusCode, body)
	assert.Contains(t, body, `"failed":[0]`)
	status, a = s.txnJSON(t, `{"checks": [{"key": "ip/ssh", "value": "22"}], "ops": [{"op": "set", "key": "ip/ssh", "value": "2222"}]}`)
	require.Equal(t, 200, status, "%+v", a)
	v, _ = s.get(t, "ip/127.0.0.1/ssh")
	assert.Equal(t, "2222", v)

	// A page of another site acts from its visitor's address: refused,
	// whole, even with the ip/ key only in a check.
	for _, body := range []string{
		`{"ops": [{"op": "set", "key": "plain", "value": "x"}, {"op": "delete", "key": "ip/ssh"}]}`,
		`{"checks": [{"key": "ip/ssh", "value": "2222"}], "ops": [{"op": "set", "key": "plain", "value": "x"}]}`,
	} {
		resp, text := s.txn(t, body, "Origin", "https://evil.example")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, text)
		assert.Equal(t, "forbidden", resp.Header.Get("X-Error-Code"))
		assert.Contains(t, text, "ip/ keys cannot be written or deleted by a page of another web site")
	}
	v, _ = s.get(t, "plain")
	assert.Equal(t, "p", v, "nothing of the refused transactions was written")
	v, _ = s.get(t, "ip/127.0.0.1/ssh")
	assert.Equal(t, "2222", v)

	// The server's own pages may.
	status, a = s.txnJSON(t, `{"ops": [{"op": "delete", "key": "ip/ssh"}]}`, "Origin", s.base)
	require.Equal(t, 200, status, "%+v", a)
	_, ok = s.get(t, "ip/127.0.0.1/ssh")
	assert.False(t, ok)
}

// A transaction whose new keys do not fit under --max-keys is refused
// whole with 507; one that frees as many as it creates fits.
func TestTxnOverCapacity(t *testing.T) {
	cfg := testConfig()
	cfg.MaxKeys = 3
	s := start(t, cfg)
	for _, k := range []string{"a", "b"} {
		resp, _ := do(t, "POST", s.base+"/set/"+k, k)
		require.Equal(t, 200, resp.StatusCode)
	}
	resp, body := s.txn(t, `{"ops": [{"op": "set", "key": "a", "value": "A"}, {"op": "set", "key": "c", "value": "c"}, {"op": "set", "key": "d", "value": "d"}]}`)
	assert.Equal(t, http.StatusInsufficientStorage, resp.StatusCode, body)
	assert.Equal(t, "store_full", resp.Header.Get("X-Error-Code"))
	assert.Equal(t, "store is full\n", body)
	v, _ := s.get(t, "a")
	assert.Equal(t, "a", v, "nothing written")
	for _, k := range []string{"c", "d"} {
		_, ok := s.get(t, k)
		assert.False(t, ok, k)
	}

	status, a := s.txnJSON(t, `{"ops": [{"op": "delete", "key": "a"}, {"op": "set", "key": "c", "value": "c"}, {"op": "set", "key": "d", "value": "d"}]}`)
	require.Equal(t, 200, status, "%+v", a)
	_, body = do(t, "GET", s.base+"/list/", "")
	assert.Equal(t, "b\nc\nd\n", body)
}

// Version, absence and value checks, the value as text or base64, each
// holding or not.
func TestTxnChecks(t *testing.T) {
	s := start(t, testConfig())
	bin := []byte{0xff, 0x00, 0xfe}
	resp, _ := do(t, "POST", s.base+"/set/bin", string(bin))
	require.Equal(t, 200, resp.StatusCode)
	resp, _ = do(t, "POST", s.base+"/set/text", "hello")
	require.Equal(t, 200, resp.StatusCode)
	vb, vt := s.etagOf(t, "bin"), s.etagOf(t, "text")
	b64 := base64.StdEncoding.EncodeToString(bin)
	n := strconv.FormatUint

	cases := []struct {
		check  string
		passes bool
	}{
		{`{"key": "bin", "version": ` + n(vb, 10) + `}`, true},
		{`{"key": "bin", "version": ` + n(vt, 10) + `}`, false},
		{`{"key": "gone", "version": ` + n(vb, 10) + `}`, false},
		{`{"key": "gone", "absent": true}`, true},
		{`{"key": "text", "absent": true}`, false},
		{`{"key": "text", "value": "hello"}`, true},
		{`{"key": "text", "value": "hell"}`, false},
		{`{"key": "gone", "value": ""}`, false},
		{`{"key": "bin", "value": "` + b64 + `", "encoding": "base64"}`, true},
		{`{"key": "bin", "value": "` + base64.StdEncoding.EncodeToString([]byte{0xff, 0x00}) + `", "encoding": "base64"}`, false},
		{`{"key": "text", "value": "aGVsbG8=", "encoding": "base64"}`, true},
	}
	for _, c := range cases {
		// The check comes second, so its index in "failed" is 1.
		body := `{"checks": [{"key": "text", "version": ` + n(s.etagOf(t, "text"), 10) + `}, ` + c.check + `],
			"ops": [{"op": "set", "key": "text", "value": "hello"}]}`
		before := s.etagOf(t, "text")
		status, a := s.txnJSON(t, body)
		if c.passes {
			assert.Equal(t, 200, status, "%s: %+v", c.check, a)
			assert.Equal(t, a.Version, s.etagOf(t, "text"), c.check)
			continue
		}
		assert.Equal(t, http.StatusConflict, status, c.check)
		assert.False(t, a.OK)
		assert.Equal(t, []int{1}, a.Failed, c.check)
		assert.Equal(t, before, s.etagOf(t, "text"), "%s: nothing written", c.check)
	}

	// A check is evaluated before the transaction's own writes.
	status, a := s.txnJSON(t, `{"checks": [{"key": "new", "absent": true}], "ops": [{"op": "set", "key": "new", "value": "1"}, {"op": "set", "key": "new", "value": "2"}]}`)
	require.Equal(t, 200, status, "%+v", a)
	v, _ := s.get(t, "new")
	assert.Equal(t, "2", v, "ops apply in order")
}

// A TTL is capped to --max-ttl as on /set, and the default is --max-ttl.
func TestTxnTTL(t *testing.T) {
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	cfg := testConfig()
	cfg.Now = clk.Now
	s := start(t, cfg)
	status, a := s.txnJSON(t, `{"ops": [{"op": "set", "key": "short", "value": "s", "ttl": "10s"},
		{"op": "set", "key": "long", "value": "l", "ttl": "1000h"}, {"op": "set", "key": "default", "value": "d"},
		{"op": "set", "key": "secs", "value": "n", "ttl": "600"}]}`)
	require.Equal(t, 200, status, "%+v", a)
	expires := func(key string) string {
		resp, _ := do(t, "GET", s.base+"/get/"+key, "")
		return resp.Header.Get("X-Expires-At")
	}
	assert.Equal(t, "1700000010", expires("short"))
	assert.Equal(t, "1700007200", expires("long"), "capped to --max-ttl (2h)")
	assert.Equal(t, "1700007200", expires("default"))
	assert.Equal(t, "1700000600", expires("secs"), "plain seconds, as ?ttl= takes them")
	clk.Advance(10 * time.Second)
	_, ok := s.get(t, "short")
	assert.False(t, ok, "expired on the injected clock")
}

// A transaction costs --cost-write per op, and one that costs more than a
// bucket holds says it can never pass.
func TestTxnRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.RateOff, cfg.RateTokens, cfg.RateWindow = false, 17, time.Hour
	s := start(t, cfg)
	resp, body := s.txn(t, `{"checks": [{"key": "a", "absent": true}, {"key": "b", "absent": true}],
		"ops": [{"op": "set", "key": "a", "value": "1"}, {"op": "set", "key": "b", "value": "2"}, {"op": "delete", "key": "c"}]}`)
	require.Equal(t, 200, resp.StatusCode, body)

	resp, body = s.txn(t, `{"ops": [{"op": "set", "key": "a", "value": "1"}, {"op": "set", "key": "b", "value": "2"}, {"op": "set", "key": "c", "value": "3"}]}`)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, body)
	assert.Contains(t, body, "rate limit exceeded, retry after")
	assert.Equal(t, "8", resp.Header.Get("X-RateLimit-Remaining"), "17 - 3 ops x 3: the checks were free")
	_, ok := s.get(t, "c")
	assert.False(t, ok, "a refused transaction writes nothing")

	six := `{"ops": [` + strings.Repeat(`{"op": "delete", "key": "x"}, `, 5) + `{"op": "delete", "key": "x"}]}`
	resp, body = s.txn(t, six, "Accept", "application/json")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, body)
	var e struct{ Error, Code string }
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	assert.Equal(t, "rate_limited", e.Code)
	assert.Equal(t, "this request costs 18 tokens, more than a client's bucket holds (17): send fewer ops at once", e.Error)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))

	resp, body = s.txn(t, `{"ops": [{"op": "set", "key": "a", "value": "1"}, {"op": "set", "key": "c", "value": "3"}]}`)
	assert.Equal(t, 200, resp.StatusCode, "two ops cost 6 of the 8 left: %s", body)
}
