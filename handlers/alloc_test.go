package handlers_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// The GET path allocates a small, fixed number of times whatever the value
// size: the value is written from the store's own bytes, never copied.
func TestGetHandlerAllocsIndependentOfValueSize(t *testing.T) {
	allocs := map[int]float64{}
	for _, size := range []int{1, 200, 1000} {
		e := newEnv(t)
		assertOK(t, e.post("/set/k", string(bytes.Repeat([]byte{'v'}, size))), "OK")
		req := httptestRequest(http.MethodGet, "/get/k", nil)
		w := newDiscardWriter()
		allocs[size] = testing.AllocsPerRun(200, func() {
			w.reset()
			e.srv.ServeHTTP(w, req)
		})
		require.Equal(t, http.StatusOK, w.status)
	}
	assert.Equal(t, allocs[1], allocs[200], "allocations by value size: %v", allocs)
	assert.Equal(t, allocs[1], allocs[1000], "allocations by value size: %v", allocs)
	assert.LessOrEqual(t, allocs[200], 6.0, "a GET allocates only for its response headers")
}

// When the journal refuses a write (disk full, I/O error), the write is
// answered 503 with one line, nothing changes, and reads keep working.
func TestStorageFailureAnswers503(t *testing.T) {
	var failing atomic.Bool
	e := newEnvWith(t, options{onChange: func(ttlstore.Change) error {
		if failing.Load() {
			return errors.New("journal write failed: no space left on device")
		}
		return nil
	}})
	assertOK(t, e.post("/set/a", "1"), "OK")
	failing.Store(true)
	rec := e.post("/set/a", "2")
	assertError(t, rec, http.StatusServiceUnavailable, "no space left")
	assert.Equal(t, 1, strings.Count(rec.Body.String(), "\n"))
	assertError(t, e.post("/set/b", "1"), http.StatusServiceUnavailable, "")
	assertError(t, e.post("/del/a", ""), http.StatusServiceUnavailable, "")
	assert.Equal(t, "1", e.get("/get/a").Body.String(), "the refused write changed nothing")
	assertError(t, e.get("/get/b"), http.StatusNotFound, "")
	failing.Store(false)
	assertOK(t, e.post("/set/a", "3"), "OK")
}
