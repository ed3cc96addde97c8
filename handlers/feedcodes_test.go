package handlers

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/feed"
)

// The change feed's refusals carry their codes like every other.
func TestFeedErrorCodes(t *testing.T) {
	e := newWEnv(t, wOpts{feed: feed.Options{MaxPerClient: 1, MaxTotal: 10}})
	bounded := &http.Client{Transport: e.tr, Timeout: 5 * time.Second}
	assertCode := func(r wResp, status int, code, msg string) {
		t.Helper()
		assert.Equal(t, status, r.status, r.body)
		assert.Equal(t, code, r.header.Get("X-Error-Code"))
		assert.Equal(t, msg+"\n", r.body)
	}

	// A long-poll that sees no change is 304 with its code and no body.
	v := e.set("k", "v")
	tag := `"` + strconv.FormatUint(v, 10) + `"`
	r := e.do(bounded, http.MethodGet, "/get/k?wait=0", "", "If-None-Match", tag)
	assert.Equal(t, http.StatusNotModified, r.status)
	assert.Equal(t, "not_modified", r.header.Get("X-Error-Code"))
	assert.Equal(t, tag, r.header.Get("ETag"))
	assert.Empty(t, r.body)

	e.watch("/watch/")
	const tooMany = "too many open watches and long-polls from your address: at most 1 at once; close one first"
	for _, path := range []string{"/watch/", "/get/absent?wait=5s"} {
		r := e.do(bounded, http.MethodGet, path, "")
		assertCode(r, http.StatusTooManyRequests, "too_many_watches", tooMany)
		assert.Empty(t, r.header.Get("Retry-After"), "no token bucket decides it")
	}

	e.feed.Close()
	require.Eventually(t, func() bool { return e.feed.Active() == 0 }, 5*time.Second, time.Millisecond)
	const closing = "server is shutting down; retry shortly"
	assertCode(e.do(bounded, http.MethodGet, "/watch/", ""), http.StatusServiceUnavailable, "shutting_down", closing)
}
