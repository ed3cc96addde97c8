package handlers_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzKeyPath sends arbitrary path bytes after /set/ and /get/. Whatever
// the input, the server must not panic, must answer with a known status,
// must accept exactly the keys the spec allows, and must give back under
// /get/ what /set/ accepted.
//
//	go test -fuzz=FuzzKeyPath ./handlers/
func FuzzKeyPath(f *testing.F) {
	for _, seed := range []string{
		"a", "a%2Fb", "a/b/c", "%FF", "%C3%28", "ключ/ü", "%F0%9F%8E%89", "ip/ssh", "ip%2Fssh", "ip/",
		"%00", "%7f", "%", "%zz", "", "?ttl=0", "x?ttl=90s", "a#b", "../..", strings.Repeat("k", 101),
	} {
		f.Add(seed)
	}
	e := newEnv(f)
	n := 0
	f.Fuzz(func(t *testing.T, path string) {
		setTarget := "/set/" + path
		u, ok := requestURI(setTarget)
		if !ok {
			t.Skip("not a request target")
		}
		n++
		value := "value-" + strconv.Itoa(n)
		setReq, ok := newRequest(http.MethodPost, setTarget, value)
		if !ok {
			t.Skip("httptest cannot build this request")
		}
		set := e.serve(setReq)
		checkResponse(t, "set", set.Code, set.Header(), set.Body.String())

		// The key the server should have seen, and whether it is valid.
		key := strings.TrimPrefix(u.Path, "/set/")
		stored, scoped := key, false
		if name, ok := strings.CutPrefix(key, "ip/"); ok {
			stored, scoped = "ip/"+peerIP+"/"+name, true
			if name == "" {
				stored = ""
			}
		}
		ttlOK := true
		if ttl, ok := u.Query()["ttl"]; ok {
			ttlOK = validTTL(ttl[0])
		}
		switch {
		case validKey(stored) && ttlOK:
			if set.Code != http.StatusOK {
				t.Fatalf("set %q (key %q): status %d %q, want 200", setTarget, key, set.Code, set.Body.String())
			}
		case set.Code != http.StatusBadRequest:
			t.Fatalf("set %q (key %q, ttl ok %v): status %d %q, want 400", setTarget, key, ttlOK, set.Code, set.Body.String())
		}

		// Reads are literal: the same path reads the same key, unless the
		// write was scoped into the caller's ip/ space.
		getTarget := "/get/" + path
		if scoped {
			getTarget = "/get/ip/" + peerIP + "/" + url.PathEscape(strings.TrimPrefix(key, "ip/"))
		}
		getReq, ok := newRequest(http.MethodGet, getTarget, "")
		if !ok {
			t.Fatalf("cannot build the read-back request %q", getTarget)
		}
		get := e.serve(getReq)
		checkResponse(t, "get", get.Code, get.Header(), get.Body.String())
		if set.Code == http.StatusOK {
			if get.Code != http.StatusOK || get.Body.String() != value {
				t.Fatalf("set %q accepted, get %q: status %d body %q, want 200 %q", setTarget, getTarget, get.Code, get.Body.String(), value)
			}
			if scoped && set.Body.String() != peerIP {
				t.Fatalf("scoped set answered %q, want the caller's IP", set.Body.String())
			}
			if !scoped && set.Body.String() != "OK" {
				t.Fatalf("set answered %q, want OK", set.Body.String())
			}
		}
		if !scoped && !validKey(key) && get.Code != http.StatusBadRequest {
			t.Fatalf("get of invalid key %q: status %d, want 400", key, get.Code)
		}
	})
}

// checkResponse asserts what holds for every response.
func checkResponse(t *testing.T, op string, status int, h http.Header, body string) {
	t.Helper()
	switch status {
	case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
	default:
		t.Fatalf("%s: unexpected status %d %q", op, status, body)
	}
	if got := h.Get("X-Client-Ip"); got != peerIP {
		t.Fatalf("%s: X-Client-Ip %q", op, got)
	}
	if status >= 400 && (!strings.HasSuffix(body, "\n") || strings.Count(body, "\n") != 1) {
		t.Fatalf("%s: error body %q is not one line", op, body)
	}
}

// requestURI parses target the way the server parses a request line.
func requestURI(target string) (*url.URL, bool) {
	if strings.ContainsAny(target, " \r\n") {
		return nil, false // would split the request line
	}
	u, err := url.ParseRequestURI(target)
	return u, err == nil
}

// newRequest is httptest.NewRequest that reports a target it cannot parse
// instead of panicking.
func newRequest(method, target, body string) (r *http.Request, ok bool) {
	defer func() {
		if recover() != nil {
			r, ok = nil, false
		}
	}()
	r = httptestRequest(method, target, strings.NewReader(body))
	return r, true
}

// validKey is the spec's key rule, written independently of the policy.
func validKey(key string) bool {
	if key == "" || len(key) > maxKey || !utf8.ValidString(key) {
		return false
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// validTTL is the spec's TTL rule: a positive Go duration or a positive
// number of seconds.
func validTTL(s string) bool {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return n > 0
	} else if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return true
	}
	d, err := time.ParseDuration(s)
	return err == nil && d > 0
}

// FuzzTxn sends arbitrary bodies to /txn. Whatever the input, the server
// must not panic, must answer with a status a transaction can get, in one
// line, and a commit must be readable: every key its last op set holds
// what it set.
//
//	go test -fuzz=FuzzTxn ./handlers/
func FuzzTxn(f *testing.F) {
	for _, seed := range []string{
		`{"checks": [{"key": "mesh42/leader", "version": 41}, {"key": "mesh42/lock", "absent": true}, {"key": "cfg", "value": "v1"}],
		  "ops": [{"op": "set", "key": "mesh42/leader", "value": "node-b", "ttl": "30s"}, {"op": "set", "key": "blob", "value": "AAEC", "encoding": "base64"},
		          {"op": "delete", "key": "mesh42/old"}]}`,
		`{"ops": [{"op": "set", "key": "a", "value": "1", "secret": "s"}, {"op": "set", "key": "a", "value": "2"}]}`,
		`{"checks": [{"key": "ip/x", "absent": true}], "ops": [{"op": "set", "key": "ip/x", "value": "v"}]}`,
		`{"ops": [{"op": "set", "key": "k", "value": "\u0000\ud800", "ttl": "99999999999999999999h"}]}`,
		`{"ops": [{"op": "delete", "key": "k", "secret": ""}], "checks": []}`,
		`{"ops": null}`, `{"ops": [{}]}`, `{"ops": [null]}`, `{"checks": [{"key": "k", "value": "=", "encoding": "base64"}], "ops": []}`,
		`{`, `[]`, `null`, `""`, `{"ops": [{"op": "set", "key": "k", "value": "v"}]} x`, "",
	} {
		f.Add(seed)
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body string) {
		rec := e.serve(httptestRequest(http.MethodPost, "/txn", strings.NewReader(body)))
		checkTxnResponse(t, rec.Code, rec.Header(), rec.Body.String())
		if rec.Code != http.StatusOK {
			return
		}
		var in struct {
			Ops []struct {
				Op, Key, Value string
				Encoding       *string
			}
		}
		if err := json.Unmarshal([]byte(body), &in); err != nil {
			t.Fatalf("committed a body that does not decode: %v", err)
		}
		last := map[string]int{}
		for i, op := range in.Ops {
			last[op.Key] = i
		}
		for key, i := range last {
			op := in.Ops[i]
			if op.Op != "set" || strings.HasPrefix(key, "ip/") {
				continue
			}
			want := op.Value
			if op.Encoding != nil {
				b, err := base64.StdEncoding.DecodeString(op.Value)
				if err != nil {
					t.Fatalf("committed a bad base64 value %q", op.Value)
				}
				want = string(b)
			}
			it, ok := e.store.Get(key)
			if !ok || string(it.Value) != want {
				t.Fatalf("committed %q = %q, store has %q (present %v)", key, want, it.Value, ok)
			}
		}
	})
}

// checkTxnResponse asserts what holds for every answer of /txn.
func checkTxnResponse(t *testing.T, status int, h http.Header, body string) {
	t.Helper()
	switch status {
	case http.StatusOK, http.StatusConflict:
		if h.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d answered as %q", status, h.Get("Content-Type"))
		}
	case http.StatusBadRequest, http.StatusForbidden:
	default:
		t.Fatalf("unexpected status %d %q", status, body)
	}
	if !strings.HasSuffix(body, "\n") || strings.Count(body, "\n") != 1 {
		t.Fatalf("body %q is not one line", body)
	}
}
