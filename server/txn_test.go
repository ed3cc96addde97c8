package server_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// txnAnswer is what POST /txn answers, committed or not.
type txnAnswer struct {
	OK      bool   `json:"ok"`
	Version uint64 `json:"version"`
	Failed  []int  `json:"failed"`
	Error   string `json:"error"`
	Code    string `json:"code"`
}

// txn posts body to /txn and returns the response and its raw body.
func (r *running) txn(t *testing.T, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return do(t, "POST", r.base+"/txn", body, hdr...)
}

// txnJSON posts body to /txn and decodes the JSON answer.
func (r *running) txnJSON(t *testing.T, body string, hdr ...string) (int, txnAnswer) {
	t.Helper()
	resp, raw := r.txn(t, body, hdr...)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%d %s", resp.StatusCode, raw)
	var a txnAnswer
	require.NoError(t, json.Unmarshal([]byte(raw), &a), raw)
	return resp.StatusCode, a
}

// etagOf returns the version GET answers for key, or 0 when it is absent.
func (r *running) etagOf(t *testing.T, key string) uint64 {
	t.Helper()
	resp, _ := do(t, "GET", r.base+"/get/"+key, "")
	if resp.StatusCode == http.StatusNotFound {
		return 0
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	v, err := strconv.ParseUint(strings.Trim(resp.Header.Get("ETag"), `"`), 10, 64)
	require.NoError(t, err)
	return v
}

func TestTxnCommitsEveryOpUnderOneVersion(t *testing.T) {
	s := start(t, testConfig())
	resp, _ := do(t, "POST", s.base+"/set/mesh42/old", "gone soon")
	require.Equal(t, 200, resp.StatusCode)

	// A plain curl client, no Accept header: the answer is JSON anyway.
	status, a := s.txnJSON(t, `{"checks": [{"key": "mesh42/lock", "absent": true}],
		"ops": [{"op": "set", "key": "mesh42/leader", "value": "node-b", "ttl": "30s"},
		        {"op": "set", "key": "blob", "value": "AAEC", "encoding": "base64"},
		        {"op": "delete", "key": "mesh42/old"}]}`)
	require.Equal(t, 200, status, "%+v", a)
	assert.True(t, a.OK)
	require.NotZero(t, a.Version)

	_, body := do(t, "GET", s.base+"/get/mesh42/leader", "")
	assert.Equal(t, "node-b", body)
	_, body = do(t, "GET", s.base+"/get/blob", "")
	assert.Equal(t, "\x00\x01\x02", body, "base64 is decoded")
	assert.Equal(t, a.Version, s.etagOf(t, "mesh42/leader"), "every write carries the commit's version")
	assert.Equal(t, a.Version, s.etagOf(t, "blob"))
	assert.Zero(t, s.etagOf(t, "mesh42/old"), "deleted")
}

func TestTxnFailedCheckWritesNothing(t *testing.T) {
	s := start(t, testConfig())
	resp, _ := do(t, "POST", s.base+"/set/cfg", "v1")
	require.Equal(t, 200, resp.StatusCode)
	v := s.etagOf(t, "cfg")

	body := `{"checks": [{"key": "cfg", "version": ` + strconv.FormatUint(v, 10) + `},
	                     {"key": "cfg", "version": ` + strconv.FormatUint(v+1, 10) + `},
	                     {"key": "cfg", "absent": true},
	                     {"key": "cfg", "value": "v1"},
	                     {"key": "cfg", "value": "v2"}],
	          "ops": [{"op": "set", "key": "cfg", "value": "v2"}, {"op": "set", "key": "other", "value": "x"}]}`
	resp, raw := s.txn(t, body)
	require.Equal(t, http.StatusConflict, resp.StatusCode, raw)
	assert.Equal(t, "check_failed", resp.Header.Get("X-Error-Code"))
	var a txnAnswer
	require.NoError(t, json.Unmarshal([]byte(raw), &a), raw)
	assert.False(t, a.OK)
	assert.Equal(t, []int{1, 2, 4}, a.Failed, "every failed check, by index")
	assert.Equal(t, "check_failed", a.Code)
	assert.Contains(t, raw, `"ok":false`)

	_, got := do(t, "GET", s.base+"/get/cfg", "")
	assert.Equal(t, "v1", got, "nothing written")
	assert.Equal(t, v, s.etagOf(t, "cfg"))
	assert.Zero(t, s.etagOf(t, "other"))
}
