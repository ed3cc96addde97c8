package handlers_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSetThenGet(t *testing.T) {
	e := newEnv(t)
	rec := e.post("/set/greeting", "hello")
	assertOK(t, rec, "OK")
	assert.Equal(t, e.expiresAt(maxTTL), rec.Header().Get("X-Expires-At"), "default TTL is MaxTTL")
	assert.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))

	rec = e.get("/get/greeting")
	assertValue(t, rec, http.StatusOK, "hello", e.expiresAt(maxTTL))
	assert.Equal(t, "5", rec.Header().Get("Content-Length"))
}

func TestPutIsSet(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.do(req{method: http.MethodPut, target: "/set/k", body: strings.NewReader("v1")}), "OK")
	assertOK(t, e.do(req{method: http.MethodPut, target: "/set/k?ttl=60", body: strings.NewReader("v2")}), "OK")
	assertValue(t, e.get("/get/k"), http.StatusOK, "v2", e.expiresAt(time.Minute))
}

func TestSetOverwrites(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/k", "one"), "OK")
	assertOK(t, e.post("/set/k", "two"), "OK")
	assertValue(t, e.get("/get/k"), http.StatusOK, "two", "")
}

func TestEmptyValue(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/empty", ""), "OK")
	rec := e.get("/get/empty")
	assertValue(t, rec, http.StatusOK, "", "")
	assert.Equal(t, "0", rec.Header().Get("Content-Length"))
}

func TestBinaryValueIsReturnedRaw(t *testing.T) {
	e := newEnv(t)
	value := string([]byte{0, 1, 2, 0xff, '\n', 0x7f})
	assertOK(t, e.post("/set/bin", value), "OK")
	assertValue(t, e.get("/get/bin"), http.StatusOK, value, "")
}

func TestHeadGet(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/k", "hello"), "OK")
	rec := e.do(req{method: http.MethodHead, target: "/get/k"})
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/octet-stream", rec.Header().Get("Content-Type"))
	assert.Equal(t, "5", rec.Header().Get("Content-Length"))
	assert.Equal(t, e.expiresAt(maxTTL), rec.Header().Get("X-Expires-At"))

	rec = e.do(req{method: http.MethodHead, target: "/get/missing"})
	assert.Equal(t, http.StatusNotFound, rec.Code)
}

func TestGetMissing(t *testing.T) {
	e := newEnv(t)
	rec := e.get("/get/nothing-here")
	assertError(t, rec, http.StatusNotFound, "key not found")
	assert.Equal(t, "key not found\n", rec.Body.String())
	assert.Empty(t, rec.Header().Get("X-Expires-At"))
}

func TestExpiry(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/k?ttl=90s", "v"), "OK")
	e.clock.Advance(89 * time.Second)
	assertValue(t, e.get("/get/k"), http.StatusOK, "v", itoa(t0.Add(90*time.Second).Unix()))
	e.clock.Advance(time.Second) // exactly at the expiry instant: gone
	assertError(t, e.get("/get/k"), http.StatusNotFound, "key not found")
	e.clock.Advance(time.Hour)
	assertError(t, e.get("/get/k"), http.StatusNotFound, "key not found")
}

func TestDefaultTTLExpiry(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/k", "v"), "OK")
	e.clock.Advance(maxTTL - time.Second)
	assert.Equal(t, http.StatusOK, e.get("/get/k").Code)
	e.clock.Advance(time.Second)
	assert.Equal(t, http.StatusNotFound, e.get("/get/k").Code)
}

func TestLoadOrStore(t *testing.T) {
	e := newEnv(t)
	rec := e.post("/los/leader?ttl=10m", "alice")
	assertOK(t, rec, "OK")
	first := e.expiresAt(10 * time.Minute)
	assert.Equal(t, first, rec.Header().Get("X-Expires-At"))

	e.clock.Advance(time.Minute)
	rec = e.post("/los/leader?ttl=1h", "bob")
	assertValue(t, rec, http.StatusConflict, "alice", first)

	// Nothing was written: neither the value nor the expiry changed.
	assertValue(t, e.get("/get/leader"), http.StatusOK, "alice", first)

	// Once the winner expires the key is free again.
	e.clock.Advance(10 * time.Minute)
	assertOK(t, e.post("/los/leader", "bob"), "OK")
	assertValue(t, e.get("/get/leader"), http.StatusOK, "bob", e.expiresAt(maxTTL))
}

func TestCompareAndSwap(t *testing.T) {
	e := newEnv(t)
	expect := func(v string) []string { return []string{"X-Expected-Value", v} }

	// Missing key.
	assertError(t, e.post("/cas/k", "new", expect("old")...), http.StatusNotFound, "key not found")
	assert.Equal(t, http.StatusNotFound, e.get("/get/k").Code, "a failed cas creates nothing")

	assertOK(t, e.post("/set/k?ttl=1m", "old"), "OK")
	oldExp := e.expiresAt(time.Minute)

	// Different: 409 with the current value, nothing written.
	rec := e.post("/cas/k", "new", expect("other")...)
	assertValue(t, rec, http.StatusConflict, "old", oldExp)
	assertValue(t, e.get("/get/k"), http.StatusOK, "old", oldExp)

	// Equal: swapped.
	rec = e.post("/cas/k?ttl=30m", "new", expect("old")...)
	assertOK(t, rec, "OK")
	assert.Equal(t, e.expiresAt(30*time.Minute), rec.Header().Get("X-Expires-At"))
	assertValue(t, e.get("/get/k"), http.StatusOK, "new", e.expiresAt(30*time.Minute))

	// Missing header: 400, whether or not the key exists.
	assertError(t, e.post("/cas/k", "x"), http.StatusBadRequest, "X-Expected-Value")
	assertError(t, e.post("/cas/absent", "x"), http.StatusBadRequest, "X-Expected-Value")
	assertValue(t, e.get("/get/k"), http.StatusOK, "new", "")

	// An empty expected value is a value like any other.
	assertOK(t, e.post("/set/empty", ""), "OK")
	assertOK(t, e.post("/cas/empty", "filled", expect("")...), "OK")
	assertValue(t, e.get("/get/empty"), http.StatusOK, "filled", "")
}

func TestCompareAndSwapExpiredIsMissing(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/k?ttl=10s", "old"), "OK")
	e.clock.Advance(10 * time.Second)
	assertError(t, e.post("/cas/k", "new", "X-Expected-Value", "old"), http.StatusNotFound, "key not found")
}

func TestCompareAndSwapOrCreate(t *testing.T) {
	e := newEnv(t)
	expect := func(v string) []string { return []string{"X-Expected-Value", v} }

	// Absent: created, whatever the expected value.
	assertOK(t, e.post("/casoc/k?ttl=5m", "v1", expect("anything")...), "OK")
	assertValue(t, e.get("/get/k"), http.StatusOK, "v1", e.expiresAt(5*time.Minute))

	// Equal: swapped.
	assertOK(t, e.post("/casoc/k", "v2", expect("v1")...), "OK")
	assertValue(t, e.get("/get/k"), http.StatusOK, "v2", e.expiresAt(maxTTL))

	// Different: 409 with the current value.
	assertValue(t, e.post("/casoc/k", "v3", expect("v1")...), http.StatusConflict, "v2", e.expiresAt(maxTTL))
	assertValue(t, e.get("/get/k"), http.StatusOK, "v2", "")

	// Missing header: 400.
	assertError(t, e.post("/casoc/k", "v3"), http.StatusBadRequest, "X-Expected-Value")
	assertError(t, e.post("/casoc/new", "v3"), http.StatusBadRequest, "X-Expected-Value")
	assert.Equal(t, http.StatusNotFound, e.get("/get/new").Code)
}

func TestKeyEncoding(t *testing.T) {
	tests := []struct {
		name   string
		path   string // after /set/ and /get/
		key    string // as stored; empty means refused with 400
		reason string
	}{
		{name: "plain", path: "mesh42/node-a", key: "mesh42/node-a"},
		{name: "escaped slash", path: "a%2Fb", key: "a/b"},
		{name: "escaped slash equals slash", path: "x%2Fy%2Fz", key: "x/y/z"},
		{name: "space", path: "hello%20world", key: "hello world"},
		{name: "plus is literal", path: "a+b", key: "a+b"},
		{name: "escaped percent", path: "100%25", key: "100%"},
		{name: "escaped question mark", path: "what%3F", key: "what?"},
		{name: "escaped hash", path: "a%23b", key: "a#b"},
		{name: "utf-8 escaped", path: "%D0%BA%D0%BB%D1%8E%D1%87/%C3%BC", key: "ключ/ü"},
		{name: "utf-8 raw", path: "ключ/ü", key: "ключ/ü"},
		{name: "emoji escaped", path: "%F0%9F%8E%89party", key: "🎉party"},
		{name: "emoji raw", path: "🦀", key: "🦀"},
		{name: "lowercase escapes", path: "a%2fb", key: "a/b"},
		{name: "trailing slash", path: "dir/", key: "dir/"},
		{name: "dot segments kept", path: "a/../b", key: "a/../b"},
		{name: "tab escaped", path: "a%09b", reason: "control character"},
		{name: "NUL", path: "a%00b", reason: "control character"},
		{name: "0x1f", path: "%1F", reason: "control character"},
		{name: "DEL", path: "x%7F", reason: "control character"},
		{name: "newline", path: "line%0Abreak", reason: "control character"},
		{name: "carriage return", path: "%0D", reason: "control character"},
		{name: "invalid utf-8 FF", path: "%FF", reason: "UTF-8"},
		{name: "invalid utf-8 truncated", path: "ab%C3", reason: "UTF-8"},
		{name: "invalid utf-8 bad continuation", path: "%C3%28", reason: "UTF-8"},
		{name: "overlong slash", path: "%C0%AF", reason: "UTF-8"},
		{name: "surrogate", path: "%ED%A0%80", reason: "UTF-8"},
		{name: "empty", path: "", reason: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			set := e.post("/set/"+tc.path, "value")
			get := e.get("/get/" + tc.path)
			if tc.key == "" {
				assertError(t, set, http.StatusBadRequest, tc.reason)
				assertError(t, get, http.StatusBadRequest, tc.reason)
				assert.Equal(t, 0, e.store.Len(), "nothing stored")
				return
			}
			assertOK(t, set, "OK")
			assertValue(t, get, http.StatusOK, "value", "")
			it, ok := e.store.Get(tc.key)
			require.True(t, ok, "stored under %q", tc.key)
			assert.Equal(t, "value", string(it.Value))
		})
	}
}

// A key written with %2F is the same key as one written with a slash.
func TestEscapedSlashIsSlash(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/a%2Fb", "v"), "OK")
	assertValue(t, e.get("/get/a/b"), http.StatusOK, "v", "")
	assertOK(t, e.post("/set/c/d", "w"), "OK")
	assertValue(t, e.get("/get/c%2Fd"), http.StatusOK, "w", "")
}

func TestKeyControlCharactersOnEveryOperation(t *testing.T) {
	e := newEnv(t)
	for _, op := range []string{"set", "los", "cas", "casoc"} {
		rec := e.post("/"+op+"/bad%01key", "v", "X-Expected-Value", "v")
		assertError(t, rec, http.StatusBadRequest, "control character")
	}
	rec := e.do(req{method: http.MethodHead, target: "/get/bad%01key"})
	assert.Equal(t, http.StatusBadRequest, rec.Code)
}

func TestKeySizeBoundaries(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		write  string // key in the write path
		stored string // key as stored
		ok     bool
	}{
		{name: "plain max", write: strings.Repeat("k", maxKey), stored: strings.Repeat("k", maxKey), ok: true},
		{name: "plain max+1", write: strings.Repeat("k", maxKey+1), stored: strings.Repeat("k", maxKey+1)},
		{name: "multibyte max", write: strings.Repeat("ü", maxKey/2), stored: strings.Repeat("ü", maxKey/2), ok: true},
		{name: "multibyte max+1", write: strings.Repeat("ü", maxKey/2) + "k", stored: strings.Repeat("ü", maxKey/2) + "k"},
		{name: "escaped max", write: strings.Repeat("%2F", maxKey), stored: strings.Repeat("/", maxKey), ok: true},
		{
			// "ip/198.51.100.7/" is 16 bytes.
			name: "ipv4 scoped max", remote: peer,
			write: "ip/" + strings.Repeat("n", maxKey-16), stored: "ip/" + peerIP + "/" + strings.Repeat("n", maxKey-16), ok: true,
		},
		{
			name: "ipv4 scoped max+1", remote: peer,
			write: "ip/" + strings.Repeat("n", maxKey-15), stored: "ip/" + peerIP + "/" + strings.Repeat("n", maxKey-15),
		},
		{
			// "ip/2001:db8::1/" is 15 bytes.
			name: "ipv6 scoped max", remote: "[2001:db8::1]:1234",
			write: "ip/" + strings.Repeat("n", maxKey-15), stored: "ip/2001:db8::1/" + strings.Repeat("n", maxKey-15), ok: true,
		},
		{
			name: "ipv6 scoped max+1", remote: "[2001:db8::1]:1234",
			write: "ip/" + strings.Repeat("n", maxKey-14), stored: "ip/2001:db8::1/" + strings.Repeat("n", maxKey-14),
		},
		{
			// The written path is short; only the stored key is too long.
			name: "ipv6 long address", remote: "[2001:db8:1234:5678:9abc:def0:1234:5678]:1",
			write: "ip/" + strings.Repeat("n", 60), stored: "ip/2001:db8:1234:5678:9abc:def0:1234:5678/" + strings.Repeat("n", 60),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.ok, len(tc.stored) <= maxKey, "test case is consistent")
			e := newEnv(t)
			rec := e.do(req{method: http.MethodPost, target: "/set/" + tc.write, body: strings.NewReader("v"), remote: tc.remote})
			if !tc.ok {
				assertError(t, rec, http.StatusBadRequest, "key too long")
				assert.Equal(t, 0, e.store.Len())
			} else {
				assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				_, ok := e.store.Get(tc.stored)
				assert.True(t, ok, "stored under %q", tc.stored)
			}

			// Reads apply the same limit to the literal key.
			rec = e.get("/get/" + escapePath(tc.stored))
			if tc.ok {
				assertValue(t, rec, http.StatusOK, "v", "")
			} else {
				assertError(t, rec, http.StatusBadRequest, "key too long")
			}
		})
	}
}

// escapePath percent-encodes what a URL path cannot carry raw.
func escapePath(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == '/' || c == ':' || c == '.' || c == '-' || (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z') {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)>>4, 16)+strconv.FormatUint(uint64(c)&15, 16)))
	}
	return b.String()
}

// A read of a too-long key is refused before it reaches the store, even
// when the store is empty.
func TestGetKeyTooLongIs400NotNotFound(t *testing.T) {
	e := newEnv(t)
	assertError(t, e.get("/get/"+strings.Repeat("x", maxKey+1)), http.StatusBadRequest, "key too long")
	assertError(t, e.get("/get/"+strings.Repeat("x", maxKey)), http.StatusNotFound, "key not found")
}

func TestValueSizeBoundaries(t *testing.T) {
	tests := []struct {
		name   string
		value  int
		secret int
		ok     bool
	}{
		{name: "value max", value: maxValue, ok: true},
		{name: "value max+1", value: maxValue + 1},
		{name: "value far beyond", value: 50 * maxValue},
		{name: "value plus secret max", value: maxValue - 10, secret: 10, ok: true},
		{name: "value plus secret max+1", value: maxValue - 9, secret: 10},
		{name: "secret alone max", value: 0, secret: maxValue, ok: true},
		{name: "secret alone max+1", value: 0, secret: maxValue + 1},
		{name: "value max with secret", value: maxValue, secret: 1},
	}
	for _, tc := range tests {
		for _, sized := range []bool{true, false} {
			name := tc.name + "/content-length"
			if !sized {
				name = tc.name + "/chunked"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t)
				value := bytes.Repeat([]byte{'v'}, tc.value)
				var body io.Reader = bytes.NewReader(value)
				if !sized {
					body = struct{ io.Reader }{body} // hides the length
				}
				r := req{method: http.MethodPost, target: "/set/k", body: body}
				if tc.secret > 0 {
					r.header = map[string]string{"X-Owner-Secret": strings.Repeat("s", tc.secret)}
				}
				rec := e.do(r)
				if !tc.ok {
					// One rule, one answer, whether the body read or the
					// policy's check of value plus secret refuses it.
					assertError(t, rec, http.StatusBadRequest, tooLarge+"\n")
					assert.Equal(t, "too_large", rec.Header().Get("X-Error-Code"))
					assert.Equal(t, http.StatusNotFound, e.get("/get/k").Code)
					return
				}
				assertOK(t, rec, "OK")
				assertValue(t, e.get("/get/k"), http.StatusOK, string(value), "")
			})
		}
	}
}

func TestValueTooLargeOnEveryWrite(t *testing.T) {
	e := newEnv(t)
	big := strings.Repeat("x", maxValue+1)
	for _, op := range []string{"set", "los", "cas", "casoc"} {
		assertError(t, e.post("/"+op+"/k", big, "X-Expected-Value", ""), http.StatusBadRequest, tooLarge)
	}
	assert.Equal(t, 0, e.store.Len())
}

// countingReader is a request body that counts how much the server read.
type countingReader struct {
	remaining int
	read      int
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.remaining == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.remaining)
	for i := range p[:n] {
		p[i] = 'x'
	}
	c.remaining -= n
	c.read += n
	return n, nil
}

func TestHugeBodyIsNotReadToTheEnd(t *testing.T) {
	const tenMB = 10 << 20
	const slack = 4 << 10
	for _, op := range []string{"set", "los", "cas", "casoc"} {
		t.Run(op+"/unknown length", func(t *testing.T) {
			e := newEnv(t)
			body := &countingReader{remaining: tenMB}
			rec := e.do(req{method: http.MethodPost, target: "/" + op + "/k", body: body,
				header: map[string]string{"X-Expected-Value": ""}})
			assertError(t, rec, http.StatusBadRequest, "too large")
			assert.LessOrEqual(t, body.read, maxValue+slack, "server read %d of %d bytes", body.read, tenMB)
			assert.Equal(t, 0, e.store.Len())
		})
		t.Run(op+"/declared length", func(t *testing.T) {
			e := newEnv(t)
			body := &countingReader{remaining: tenMB}
			hr := httptestRequest(http.MethodPost, "/"+op+"/k", body)
			hr.ContentLength = tenMB
			hr.Header.Set("X-Expected-Value", "")
			rec := e.serve(hr)
			assertError(t, rec, http.StatusBadRequest, "too large")
			assert.LessOrEqual(t, body.read, maxValue+slack, "server read %d of %d bytes", body.read, tenMB)
		})
	}
}

// A body that fails mid-read is a client problem, answered with one line.
func TestBodyReadError(t *testing.T) {
	e := newEnv(t)
	body := io.MultiReader(strings.NewReader("abc"), errReader{})
	rec := e.do(req{method: http.MethodPost, target: "/set/k", body: body})
	assertError(t, rec, http.StatusBadRequest, "reading request body")
	assert.Equal(t, http.StatusNotFound, e.get("/get/k").Code)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestTTL(t *testing.T) {
	tests := []struct {
		ttl  string // the raw query value; "-" means no ttl parameter
		want time.Duration
	}{
		{ttl: "-", want: maxTTL},
		{ttl: "90s", want: 90 * time.Second},
		{ttl: "600", want: 600 * time.Second},
		{ttl: "1", want: time.Second},
		{ttl: "30m", want: 30 * time.Minute},
		{ttl: "1h30m", want: 90 * time.Minute},
		{ttl: "1.5h", want: 90 * time.Minute},
		{ttl: "2h", want: maxTTL},
		{ttl: "7200", want: maxTTL},
		{ttl: "3h", want: maxTTL},
		{ttl: "7201", want: maxTTL},
		{ttl: "99999999999999999999999", want: maxTTL},
		{ttl: "2562047h", want: maxTTL},
		{ttl: "9999999999999", want: maxTTL},
		{ttl: "2562048h", want: maxTTL}, // beyond time.Duration: capped like the seconds above
		{ttl: "99999999999999999999m", want: maxTTL},
		{ttl: "2562048hours"},
		{ttl: "99999999999999999999999x"},
		{ttl: "0"},
		{ttl: "0s"},
		{ttl: "-5s"},
		{ttl: "-5"},
		{ttl: "abc"},
		{ttl: "10x"},
		{ttl: "1h%0A"}, // a newline in the echoed value must not break the one-line error
		{ttl: ""},
	}
	for _, tc := range tests {
		t.Run("ttl="+tc.ttl, func(t *testing.T) {
			e := newEnv(t)
			target := "/set/k"
			if tc.ttl != "-" {
				target += "?ttl=" + tc.ttl
			}
			rec := e.post(target, "v")
			if tc.want == 0 {
				assertError(t, rec, http.StatusBadRequest, "ttl")
				assert.Equal(t, http.StatusNotFound, e.get("/get/k").Code, "nothing written")
				return
			}
			assertOK(t, rec, "OK")
			assert.Equal(t, e.expiresAt(tc.want), rec.Header().Get("X-Expires-At"))
			assertValue(t, e.get("/get/k"), http.StatusOK, "v", e.expiresAt(tc.want))
		})
	}
}

func TestTTLOnEveryWrite(t *testing.T) {
	e := newEnv(t)
	expect := []string{"X-Expected-Value", "a"}
	for _, op := range []string{"set", "los", "casoc"} {
		rec := e.post("/"+op+"/"+op+"?ttl=45s", "a", expect...)
		assertOK(t, rec, "OK")
		assert.Equal(t, e.expiresAt(45*time.Second), rec.Header().Get("X-Expires-At"), op)
	}
	rec := e.post("/cas/set?ttl=3h", "b", expect...)
	assertOK(t, rec, "OK")
	assert.Equal(t, e.expiresAt(maxTTL), rec.Header().Get("X-Expires-At"), "cas caps the ttl")
	for _, op := range []string{"set", "los", "cas", "casoc"} {
		assertError(t, e.post("/"+op+"/x?ttl=0", "a", expect...), http.StatusBadRequest, "ttl")
		assertError(t, e.post("/"+op+"/x?ttl=nope", "a", expect...), http.StatusBadRequest, "ttl")
	}
}

func TestOtherQueryParametersAreIgnored(t *testing.T) {
	e := newEnv(t)
	rec := e.post("/set/k?foo=bar&ttl=60&x", "v")
	assertOK(t, rec, "OK")
	assert.Equal(t, e.expiresAt(time.Minute), rec.Header().Get("X-Expires-At"))
}

func TestOwnerSecret(t *testing.T) {
	e := newEnv(t)
	secret := func(s string) []string { return []string{"X-Owner-Secret", s} }
	withSecret := func(s, expected string) []string {
		return []string{"X-Owner-Secret", s, "X-Expected-Value", expected}
	}

	// Creating with a secret makes the key owned.
	assertOK(t, e.post("/set/owned", "v1", secret("s3cret")...), "OK")

	// Reads are public.
	assertValue(t, e.get("/get/owned"), http.StatusOK, "v1", "")

	// Writes without or with a wrong secret are refused and change nothing.
	for _, op := range []string{"set", "cas", "casoc"} {
		assertError(t, e.post("/"+op+"/owned", "evil", "X-Expected-Value", "v1"), http.StatusForbidden, "owner secret")
		assertError(t, e.post("/"+op+"/owned", "evil", withSecret("wrong", "v1")...), http.StatusForbidden, "owner secret")
		assertError(t, e.post("/"+op+"/owned", "evil", withSecret("S3CRET", "v1")...), http.StatusForbidden, "owner secret")
	}
	assertValue(t, e.get("/get/owned"), http.StatusOK, "v1", "")

	// The right secret works for every write.
	assertOK(t, e.post("/set/owned", "v2", secret("s3cret")...), "OK")
	assertOK(t, e.post("/cas/owned", "v3", withSecret("s3cret", "v2")...), "OK")
	assertOK(t, e.post("/casoc/owned", "v4", withSecret("s3cret", "v3")...), "OK")
	assertValue(t, e.get("/get/owned"), http.StatusOK, "v4", "")

	// The owner keeps the key after a write without changing the secret:
	// a later write without it is still refused.
	assertError(t, e.post("/set/owned", "evil"), http.StatusForbidden, "")

	// los on an owned, live key is a conflict showing the value.
	assertValue(t, e.post("/los/owned", "evil"), http.StatusConflict, "v4", "")
}

func TestOwnerClaimsUnownedKey(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/k", "free"), "OK")
	assertOK(t, e.post("/set/k", "anyone"), "OK") // unowned: anyone may write

	assertOK(t, e.post("/set/k", "mine", "X-Owner-Secret", "claim"), "OK")
	assertError(t, e.post("/set/k", "anyone"), http.StatusForbidden, "owner secret")
	assertError(t, e.post("/set/k", "other", "X-Owner-Secret", "other"), http.StatusForbidden, "owner secret")
	assertOK(t, e.post("/set/k", "still mine", "X-Owner-Secret", "claim"), "OK")
	assertValue(t, e.get("/get/k"), http.StatusOK, "still mine", "")
}

func TestOwnerClaimsViaCAS(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/k", "a"), "OK")
	assertOK(t, e.post("/cas/k", "b", "X-Expected-Value", "a", "X-Owner-Secret", "x"), "OK")
	assertError(t, e.post("/cas/k", "c", "X-Expected-Value", "b"), http.StatusForbidden, "")
	assertOK(t, e.post("/casoc/new", "a", "X-Expected-Value", "", "X-Owner-Secret", "y"), "OK")
	assertError(t, e.post("/set/new", "c"), http.StatusForbidden, "")
	assertOK(t, e.post("/los/fresh", "a", "X-Owner-Secret", "z"), "OK")
	assertError(t, e.post("/set/fresh", "c"), http.StatusForbidden, "")
}

// A wrong secret loses to the owner even when the compare would fail: the
// caller learns nothing about the value it may not write.
func TestOwnedCASWrongSecretIs403(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/k", "a", "X-Owner-Secret", "s"), "OK")
	assertError(t, e.post("/cas/k", "b", "X-Expected-Value", "zzz"), http.StatusForbidden, "")
	assertError(t, e.post("/casoc/k", "b", "X-Expected-Value", "zzz"), http.StatusForbidden, "")
}

func TestOwnershipEndsWithExpiry(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/k?ttl=1m", "a", "X-Owner-Secret", "s"), "OK")
	e.clock.Advance(time.Minute)
	assertOK(t, e.post("/set/k", "b"), "OK")
	assertOK(t, e.post("/set/k", "c"), "OK")
}

func TestIPKeys(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		ip     string
	}{
		{name: "ipv4", remote: peer, ip: peerIP},
		{name: "ipv6", remote: "[2001:db8::1]:1234", ip: "2001:db8::1"},
		{name: "ipv6 non-canonical", remote: "[2001:0DB8:0000:0000:0000:0000:0000:0001]:80", ip: "2001:db8::1"},
		{name: "ipv4-mapped", remote: "[::ffff:203.0.113.9]:5555", ip: "203.0.113.9"},
		{name: "ipv6 with zone", remote: "[fe80::1%eth0]:5555", ip: "fe80::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(req{method: http.MethodPost, target: "/set/ip/ssh?ttl=1m", body: strings.NewReader("22"), remote: tc.remote})
			assertOK(t, rec, tc.ip)
			assert.Equal(t, tc.ip, rec.Header().Get("X-Client-Ip"))
			assert.Equal(t, e.expiresAt(time.Minute), rec.Header().Get("X-Expires-At"))

			it, ok := e.store.Get("ip/" + tc.ip + "/ssh")
			require.True(t, ok)
			assert.Equal(t, "22", string(it.Value))
			assert.Equal(t, 1, e.store.Len())

			// Reads are literal, and anyone can make them.
			assertValue(t, e.get("/get/ip/"+tc.ip+"/ssh"), http.StatusOK, "22", "")
			assertError(t, e.do(req{target: "/get/ip/ssh", remote: tc.remote}), http.StatusNotFound, "key not found")
		})
	}
}

func TestIPKeysOnEveryWrite(t *testing.T) {
	e := newEnv(t)
	expect := func(v string) []string { return []string{"X-Expected-Value", v} }
	assertOK(t, e.post("/los/ip/a", "1"), peerIP)
	assertValue(t, e.post("/los/ip/a", "2"), http.StatusConflict, "1", "")
	assertOK(t, e.post("/cas/ip/a", "2", expect("1")...), peerIP)
	assertValue(t, e.post("/cas/ip/a", "3", expect("1")...), http.StatusConflict, "2", "")
	assertError(t, e.post("/cas/ip/missing", "3", expect("1")...), http.StatusNotFound, "")
	assertOK(t, e.post("/casoc/ip/b", "1", expect("")...), peerIP)
	assertOK(t, e.post("/casoc/ip/b", "2", expect("1")...), peerIP)
	assertValue(t, e.get("/get/ip/"+peerIP+"/a"), http.StatusOK, "2", "")
	assertValue(t, e.get("/get/ip/"+peerIP+"/b"), http.StatusOK, "2", "")
}

func TestIPKeysAreScopedPerCaller(t *testing.T) {
	e := newEnv(t)
	other := "203.0.113.50:999"
	assertOK(t, e.post("/set/ip/ssh", "mine"), peerIP)
	assertOK(t, e.do(req{method: http.MethodPost, target: "/set/ip/ssh", body: strings.NewReader("theirs"), remote: other}), "203.0.113.50")
	assertValue(t, e.get("/get/ip/"+peerIP+"/ssh"), http.StatusOK, "mine", "")
	assertValue(t, e.get("/get/ip/203.0.113.50/ssh"), http.StatusOK, "theirs", "")

	// Writing someone else's full ip/ key only nests it in one's own space.
	assertOK(t, e.do(req{method: http.MethodPost, target: "/set/ip/" + peerIP + "/ssh", body: strings.NewReader("hijack"), remote: other}), "203.0.113.50")
	assertValue(t, e.get("/get/ip/"+peerIP+"/ssh"), http.StatusOK, "mine", "")
	assertValue(t, e.get("/get/ip/203.0.113.50/"+peerIP+"/ssh"), http.StatusOK, "hijack", "")

	// An escaped slash is a slash: ip%2Fssh is an ip/ key too.
	assertOK(t, e.do(req{method: http.MethodPost, target: "/set/ip%2Fssh", body: strings.NewReader("escaped"), remote: other}), "203.0.113.50")
	assertValue(t, e.get("/get/ip/203.0.113.50/ssh"), http.StatusOK, "escaped", "")
}

func TestIPKeyNeedsName(t *testing.T) {
	e := newEnv(t)
	for _, op := range []string{"set", "los", "cas", "casoc"} {
		assertError(t, e.post("/"+op+"/ip/", "v", "X-Expected-Value", "v"), http.StatusBadRequest, "ip/")
	}
	assert.Equal(t, 0, e.store.Len())
	// Keys merely starting with "ip" are not scoped.
	assertOK(t, e.post("/set/ip", "v"), "OK")
	assertOK(t, e.post("/set/ipx/y", "v"), "OK")
	assertOK(t, e.post("/set/IP/y", "v"), "OK")
	// Reading "ip/" literally is an ordinary (missing) key.
	assertError(t, e.get("/get/ip/"), http.StatusNotFound, "key not found")
}

func TestIPKeyNameIsChecked(t *testing.T) {
	e := newEnv(t)
	assertError(t, e.post("/set/ip/a%00b", "v"), http.StatusBadRequest, "control character")
	assertError(t, e.post("/set/ip/%FF", "v"), http.StatusBadRequest, "UTF-8")
}

func TestIPKeyOwner(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/ip/svc", "a", "X-Owner-Secret", "s"), peerIP)
	assertError(t, e.post("/set/ip/svc", "b"), http.StatusForbidden, "")
	assertOK(t, e.post("/set/ip/svc", "c", "X-Owner-Secret", "s"), peerIP)
}

func TestClientIPHeaderOnEveryResponse(t *testing.T) {
	e := newEnvWith(t, options{maxKeys: 1})
	assertOK(t, e.post("/set/exists", "v"), "OK")
	tests := []struct {
		name   string
		r      req
		status int
	}{
		{name: "get 200", r: req{target: "/get/exists"}, status: 200},
		{name: "head 200", r: req{method: "HEAD", target: "/get/exists"}, status: 200},
		{name: "get 404", r: req{target: "/get/missing"}, status: 404},
		{name: "get 400", r: req{target: "/get/"}, status: 400},
		{name: "set 200", r: req{method: "POST", target: "/set/exists", body: strings.NewReader("x")}, status: 200},
		{name: "set 507", r: req{method: "POST", target: "/set/new", body: strings.NewReader("x")}, status: 507},
		{name: "los 409", r: req{method: "POST", target: "/los/exists", body: strings.NewReader("x")}, status: 409},
		{name: "cas 400", r: req{method: "POST", target: "/cas/exists"}, status: 400},
		{name: "405", r: req{method: "PATCH", target: "/get/exists"}, status: 405},
		{name: "unknown path", r: req{target: "/nope"}, status: 404},
		{name: "landing", r: req{target: "/"}, status: 200},
	}
	remotes := map[string]string{
		peer:                        peerIP,
		"[2001:db8::7]:443":         "2001:db8::7",
		"[::ffff:203.0.113.9]:5555": "203.0.113.9",
	}
	for _, tc := range tests {
		for remote, ip := range remotes {
			t.Run(tc.name+"/"+ip, func(t *testing.T) {
				r := tc.r
				r.remote = remote
				rec := e.do(r)
				assert.Equal(t, tc.status, rec.Code, rec.Body.String())
				assert.Equal(t, []string{ip}, rec.Header().Values("X-Client-Ip"))
			})
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	tests := []struct {
		method, path string
		allow        []string
	}{
		{method: "PATCH", path: "/get/k", allow: []string{"GET", "HEAD", "DELETE"}},
		{method: "POST", path: "/get/k", allow: []string{"GET", "HEAD", "DELETE"}},
		{method: "PUT", path: "/get/k", allow: []string{"GET", "HEAD", "DELETE"}},
		{method: "GET", path: "/del/k", allow: []string{"POST"}},
		{method: "GET", path: "/set/k", allow: []string{"POST", "PUT"}},
		{method: "DELETE", path: "/set/k", allow: []string{"POST", "PUT"}},
		{method: "GET", path: "/los/k", allow: []string{"POST"}},
		{method: "PUT", path: "/los/k", allow: []string{"POST"}},
		{method: "GET", path: "/cas/k", allow: []string{"POST"}},
		{method: "GET", path: "/casoc/k", allow: []string{"POST"}},
		{method: "POST", path: "/", allow: []string{"GET", "HEAD"}},
		{method: "PATCH", path: "/set/a%2Fb", allow: []string{"POST", "PUT"}},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(req{method: tc.method, target: tc.path})
			assertError(t, rec, http.StatusMethodNotAllowed, "method not allowed")
			var got []string
			for _, v := range rec.Header().Values("Allow") {
				for m := range strings.SplitSeq(v, ",") {
					got = append(got, strings.TrimSpace(m))
				}
			}
			assert.ElementsMatch(t, tc.allow, got, "Allow header")
			assert.Equal(t, peerIP, rec.Header().Get("X-Client-Ip"))
			assert.Equal(t, 0, e.store.Len())
		})
	}
}

func TestUnknownPaths(t *testing.T) {
	e := newEnv(t)
	for _, r := range []req{
		{target: "/nope"},
		{target: "/get"},
		{target: "/set"},
		{method: "POST", target: "/set"},
		{target: "/GET/k"},
		{method: "POST", target: "/delete/k"},
		{target: "/favicon.ico"},
		{target: "//get/k"},
	} {
		t.Run(r.method+" "+r.target, func(t *testing.T) {
			rec := e.do(r)
			assertError(t, rec, http.StatusNotFound, "no such endpoint")
			assert.Equal(t, peerIP, rec.Header().Get("X-Client-Ip"))
		})
	}
}

func TestLanding(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name     string
		method   string
		header   map[string]string
		wantHTML bool
	}{
		{name: "browser", header: map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "User-Agent": "Mozilla/5.0"}, wantHTML: true},
		{name: "curl", header: map[string]string{"Accept": "*/*", "User-Agent": "curl/8.5.0"}},
		{name: "curl asking for html", header: map[string]string{"Accept": "text/html", "User-Agent": "curl/8.5.0"}, wantHTML: true},
		{name: "no headers"},
		{name: "head browser", method: http.MethodHead, header: map[string]string{"Accept": "text/html"}, wantHTML: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(req{method: tc.method, target: "/", header: tc.header})
			require.Equal(t, http.StatusOK, rec.Code)
			ct := rec.Header().Get("Content-Type")
			body := rec.Body.String()
			if tc.wantHTML {
				assert.Equal(t, "text/html; charset=utf-8", ct)
				assert.Contains(t, strings.ToLower(body), "<html")
			} else {
				assert.Equal(t, "text/plain; charset=utf-8", ct)
				assert.NotContains(t, strings.ToLower(body), "<html")
				assert.Contains(t, body, "curl")
			}
			assert.Contains(t, body, "http://example.com/get/", "examples use the request's host")
			assert.NotContains(t, body, "{{")
		})
	}
}

func TestStoreFull(t *testing.T) {
	e := newEnvWith(t, options{maxKeys: 2})
	assertOK(t, e.post("/set/a?ttl=1m", "1"), "OK")
	assertOK(t, e.post("/set/b", "2"), "OK")

	for _, op := range []string{"set", "los", "casoc"} {
		assertError(t, e.post("/"+op+"/c", "3", "X-Expected-Value", "x"), http.StatusInsufficientStorage, "store is full")
	}
	assertError(t, e.post("/set/ip/c", "3"), http.StatusInsufficientStorage, "store is full")
	assert.Equal(t, http.StatusNotFound, e.get("/get/c").Code)

	// Existing keys can still be written.
	assertOK(t, e.post("/set/a?ttl=1m", "1b"), "OK")
	assertOK(t, e.post("/cas/b", "2b", "X-Expected-Value", "2"), "OK")

	// An expired key frees its slot.
	e.clock.Advance(time.Minute)
	assertOK(t, e.post("/set/c", "3"), "OK")
}

// chi sends requests with a method it does not know (PROPFIND, FOO) to the
// 405 handler whatever the path; an unknown path must still be a 404, and
// a known one a 405 with its real Allow list.
func TestUnknownMethod(t *testing.T) {
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{method: "PROPFIND", path: "/nope", status: 404},
		{method: "FOO", path: "/get", status: 404},
		{method: "PROPFIND", path: "/set%2Fk", status: 404},
		{method: "PROPFIND", path: "/favicon.ico", status: 404},
		{method: "PROPFIND", path: "/get/k", status: 405, allow: "GET, HEAD, DELETE"},
		{method: "FOO", path: "/set/k", status: 405, allow: "POST, PUT"},
		{method: "FOO", path: "/los/k", status: 405, allow: "POST"},
		{method: "FOO", path: "/cas/k", status: 405, allow: "POST"},
		{method: "FOO", path: "/casoc/k", status: 405, allow: "POST"},
		{method: "FOO", path: "/", status: 405, allow: "GET, HEAD"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(req{method: tc.method, target: tc.path})
			assertError(t, rec, tc.status, "")
			assert.Equal(t, tc.allow, rec.Header().Get("Allow"))
			assert.Equal(t, peerIP, rec.Header().Get("X-Client-Ip"))
		})
	}
}
