package server_test

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/server"
)

// routeLog is an Observer that keeps the route names it is told of.
type routeLog struct {
	mu     sync.Mutex
	routes []string
}

func (l *routeLog) Observe(route string, _ int, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.routes = append(l.routes, route)
}

func (l *routeLog) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.routes...)
}

// An embedder's hooks: OnChange sees every change, a transaction's each,
// and refusing one refuses the whole write, which then changes nothing;
// Ready takes the server out of rotation; Observer sees every request as
// the metrics do.
func TestEmbedderHooks(t *testing.T) {
	var (
		mu      sync.Mutex
		changes []string
		refuse  atomic.Bool
		notOK   atomic.Bool
		obs     = &routeLog{}
	)
	cfg := testConfig()
	cfg.OnChange = func(c kv.Change) error {
		if refuse.Load() {
			return errors.New("mirror unreachable")
		}
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, c.Op.String()+" "+c.Item.Key)
		return nil
	}
	cfg.Ready = func() error {
		if notOK.Load() {
			return errors.New("warming up")
		}
		return nil
	}
	cfg.Observer = obs
	s := start(t, cfg)

	res, _ := do(t, "POST", s.base+"/set/a", "1")
	require.Equal(t, http.StatusOK, res.StatusCode)
	res, body := do(t, "POST", s.base+"/txn", `{"ops": [{"op": "set", "key": "b", "value": "2"}, {"op": "delete", "key": "a"}]}`)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	mu.Lock()
	assert.Equal(t, []string{"set a", "set b", "delete a"}, changes)
	mu.Unlock()

	refuse.Store(true)
	res, body = do(t, "POST", s.base+"/txn", `{"ops": [{"op": "set", "key": "c", "value": "3"}, {"op": "delete", "key": "b"}]}`)
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Equal(t, "storage_unavailable", res.Header.Get("X-Error-Code"))
	assert.Contains(t, body, "mirror unreachable")
	res, _ = do(t, "POST", s.base+"/set/b", "changed")
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	refuse.Store(false)
	_, body = do(t, "GET", s.base+"/get/b", "")
	assert.Equal(t, "2", body, "the refused writes changed nothing")
	res, _ = do(t, "GET", s.base+"/get/c", "")
	assert.Equal(t, http.StatusNotFound, res.StatusCode)

	notOK.Store(true)
	res, body = do(t, "GET", s.base+"/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Contains(t, body, "warming up")
	res, _ = do(t, "GET", s.base+"/healthz", "")
	assert.Equal(t, http.StatusOK, res.StatusCode, "the process is still up")

	assert.Equal(t, []string{"set", "txn", "txn", "set", "get", "get", "health", "health"}, obs.seen())
}

// WatchOff refuses streams and long-polls with their own code; reads
// without a wait still work.
func TestWatchOff(t *testing.T) {
	cfg := testConfig()
	cfg.WatchOff = true
	s := start(t, cfg)
	for _, path := range []string{"/watch/", "/get/k?wait=5s"} {
		res, body := do(t, "GET", s.base+path, "")
		assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode, path)
		assert.Equal(t, "watch_disabled", res.Header.Get("X-Error-Code"), path)
		assert.Equal(t, "watching and waiting are not enabled on this server\n", body, path)
	}
	res, _ := do(t, "GET", s.base+"/get/k?wait=0", "")
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
}

func TestWatchHistoryValidated(t *testing.T) {
	cfg := testConfig()
	cfg.WatchHistory = -1
	var ce *server.ConfigError
	require.ErrorAs(t, cfg.Validate(), &ce)
	assert.Equal(t, "WatchHistory", ce.Field)
}
