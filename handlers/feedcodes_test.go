package handlers_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/feed"
)

// The change feed's refusals carry their codes like every other, as text
// by default and as JSON when asked for.
func TestFeedErrorCodes(t *testing.T) {
	e := newWEnv(t, wOpts{feed: feed.Options{MaxPerClient: 1, MaxTotal: 10}})
	bounded := &http.Client{Transport: e.tr, Timeout: 5 * time.Second}
	asJSON := []string{"Accept", "application/json"}
	assertCode := func(r wResp, status int, code, msg string, json bool) {
		t.Helper()
		assert.Equal(t, status, r.status, r.body)
		assert.Equal(t, code, r.header.Get("X-Error-Code"))
		if json {
			assert.JSONEq(t, `{"error": `+strconv.Quote(msg)+`, "code": "`+code+`"}`, r.body)
		} else {
			assert.Equal(t, msg+"\n", r.body)
		}
	}

	// A long-poll that sees no change is 304 with its code and no body.
	v := e.set("k", "v")
	tag := `"` + strconv.FormatUint(v, 10) + `"`
	for _, h := range [][]string{nil, asJSON} {
		r := e.do(bounded, http.MethodGet, "/get/k?wait=0", "", append([]string{"If-None-Match", tag}, h...)...)
		assert.Equal(t, http.StatusNotModified, r.status)
		assert.Equal(t, "not_modified", r.header.Get("X-Error-Code"))
		assert.Equal(t, tag, r.header.Get("ETag"))
		assert.Empty(t, r.body)
	}

	e.watch("/watch/")
	const tooMany = "too many open watches and long-polls from your address: at most 1 at once; close one first"
	for _, path := range []string{"/watch/", "/get/absent?wait=5s"} {
		r := e.do(bounded, http.MethodGet, path, "")
		assertCode(r, http.StatusTooManyRequests, "too_many_watches", tooMany, false)
		assert.Empty(t, r.header.Get("Retry-After"), "no token bucket decides it")
		assertCode(e.do(bounded, http.MethodGet, path, "", asJSON...), http.StatusTooManyRequests, "too_many_watches", tooMany, true)
	}

	e.feed.Close()
	require.Eventually(t, func() bool { return e.feed.Active() == 0 }, 5*time.Second, time.Millisecond)
	const closing = "server is shutting down; retry shortly"
	assertCode(e.do(bounded, http.MethodGet, "/watch/", ""), http.StatusServiceUnavailable, "shutting_down", closing, false)
	assertCode(e.do(bounded, http.MethodGet, "/watch/", "", asJSON...), http.StatusServiceUnavailable, "shutting_down", closing, true)
}
