package handlers_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A transaction body far over the limit is refused with 400 without the
// server reading it: with a declared Content-Length it reads nothing,
// without one it stops just past the limit.
func TestWireHugeTxn(t *testing.T) {
	const limit = 2*100*(6*(maxKey+maxValue)+256) + 256 // see txnBodyLimit
	huge := append([]byte(`{"ops": [{"op": "set", "key": "k", "value": "`), bytes.Repeat([]byte{'x'}, 8*limit)...)
	huge = append(huge, `"}]}`...)
	for _, declared := range []bool{true, false} {
		name := "content-length"
		if !declared {
			name = "chunked"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			ws := startWire(t, e)
			resp, b, err := postHuge(t, ws, "/txn", huge, declared)
			if err != nil {
				assert.True(t, isConnClosed(err), "unexpected client error: %v", err)
			} else {
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
				assert.Equal(t, "too_large", resp.Header.Get("X-Error-Code"))
				assert.Equal(t, "transaction too large: the body may be at most "+itoa(limit)+" bytes\n", b)
			}
			assert.LessOrEqual(t, ws.bodyRead.Load(), int64(limit+64<<10), "handler read too much of the body")
			assert.Equal(t, 0, e.store.Len())
		})
	}
}

// The largest transaction there may be, as a Go client encodes it (which
// escapes < as six bytes), fits under the body limit.
func TestLargestTxnFits(t *testing.T) {
	e := newEnv(t)
	type entry struct {
		Op    string `json:"op,omitempty"`
		Key   string `json:"key"`
		Value string `json:"value"`
		TTL   string `json:"ttl,omitempty"`
	}
	var body struct {
		Checks []entry `json:"checks"`
		Ops    []entry `json:"ops"`
	}
	value := strings.Repeat("<", maxValue)
	for i := range 100 {
		key := strings.Repeat("<", maxKey-3) + itoa(int64(100+i))
		body.Checks = append(body.Checks, entry{Key: key, Value: value})
		body.Ops = append(body.Ops, entry{Op: "set", Key: key, Value: value, TTL: "1h30m"})
	}
	raw, err := json.MarshalIndent(body, "", "    ")
	require.NoError(t, err)
	t.Logf("body of %d bytes", len(raw))
	rec := e.post("/txn", string(raw))
	require.Equal(t, http.StatusConflict, rec.Code, "read whole: every check fails on an empty store: %.200s", rec.Body.String())
	var a struct {
		OK     bool  `json:"ok"`
		Failed []int `json:"failed"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
	assert.Len(t, a.Failed, 100)

	body.Checks = nil
	raw, err = json.Marshal(body)
	require.NoError(t, err)
	rec = e.post("/txn", string(raw))
	require.Equal(t, http.StatusOK, rec.Code, "%.200s", rec.Body.String())
	assert.Equal(t, 100, e.store.Len())
}
