package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every malformed or refused transaction is answered 400 with a one-line
// reason naming the check or op at fault, and writes nothing.
func TestTxnBadRequests(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBatchOps = 3
	s := start(t, cfg)
	const set = `{"op": "set", "key": "k", "value": "v"}`
	cases := []struct {
		body, code, want string
	}{
		{``, "bad_request", "transaction body is empty"},
		{`{"ops": [` + set, "bad_request", "malformed JSON: the body ends in the middle"},
		{`{"ops": [` + set + `,]}`, "bad_request", "malformed JSON at byte"},
		{`[]`, "bad_request", "must be a JSON object"},
		{`{"ops": [` + set + `]} {}`, "bad_request", "more data after the JSON object"},
		{`{"ops": [` + set + `], "chekcs": []}`, "bad_request", `unknown field "chekcs"`},
		{`{"ops": [{"op": "set", "key": "k", "value": "v", "tll": "1s"}]}`, "bad_request", `unknown field "tll"`},
		{`{}`, "bad_request", "a transaction needs at least one op"},
		{`{"checks": [{"key": "k", "absent": true}], "ops": []}`, "bad_request", "a transaction needs at least one op"},
		{`{"ops": [` + set + `,` + set + `,` + set + `,` + set + `]}`, "bad_request", "too many ops: at most 3 per transaction"},
		{`{"checks": [{"key": "a", "absent": true}, {"key": "b", "absent": true}, {"key": "c", "absent": true}, {"key": "d", "absent": true}],
		   "ops": [` + set + `]}`, "bad_request", "too many checks: at most 3 per transaction"},
		{`{"ops": [` + set + `, {"op": "put", "key": "k", "value": "v"}]}`, "bad_request", `ops[1]: unknown op "put": want "set" or "delete"`},
		{`{"ops": [{"key": "k", "value": "v"}]}`, "bad_request", `ops[0]: "op" is missing`},
		{`{"ops": [{"op": "set", "key": "k"}]}`, "bad_request", `ops[0]: set needs a "value"`},
		{`{"ops": [{"op": "delete", "key": "k", "value": "v"}]}`, "bad_request", `ops[0]: delete takes no "value", "ttl" or "encoding"`},
		{`{"ops": [{"op": "set", "key": "k", "value": "v", "ttl": "0"}]}`, "bad_request", "ops[0]: ttl must be positive"},
		{`{"ops": [{"op": "set", "key": "k", "value": "v", "ttl": "soon"}]}`, "bad_request", `ops[0]: ttl "soon" is not a duration`},
		{`{"ops": [{"op": "set", "key": "k", "value": "v", "ttl": 30}]}`, "bad_request", "ops.ttl cannot be a JSON number"},
		{`{"ops": [{"op": "set", "key": "k", "value": "!!", "encoding": "base64"}]}`, "bad_request", `ops[0]: "value" is not valid base64`},
		{`{"ops": [{"op": "set", "key": "k", "value": "v", "encoding": "hex"}]}`, "bad_request", `ops[0]: unknown encoding "hex"`},
		{`{"ops": [` + set + `, {"op": "set", "key": "", "value": "v"}]}`, "bad_request", "ops[1]: key is empty"},
		{`{"ops": [{"op": "set", "key": "` + strings.Repeat("k", 101) + `", "value": "v"}]}`, "bad_request", "ops[0]: key too long: at most 100 bytes"},
		{`{"ops": [{"op": "set", "key": "a\u0001b", "value": "v"}]}`, "bad_request", "ops[0]: key contains a control character"},
		{`{"ops": [{"op": "delete", "key": "ip/"}]}`, "bad_request", "ops[0]: ip/ key needs a name after ip/"},
		{`{"ops": [{"op": "set", "key": "ip/` + strings.Repeat("n", 90) + `", "value": "v"}]}`, "bad_request", "ops[0]: key too long"},
		{`{"ops": [` + set + `, {"op": "set", "key": "big", "value": "` + strings.Repeat("v", 1001) + `"}]}`,
			"too_large", "ops[1]: value too large: value plus owner secret may be at most 1000 bytes"},
		{`{"ops": [{"op": "set", "key": "big", "value": "` + strings.Repeat("v", 990) + `", "secret": "` + strings.Repeat("s", 11) + `"}]}`,
			"too_large", "ops[0]: value too large"},
		{`{"checks": [{"key": "k"}], "ops": [` + set + `]}`, "bad_request", `checks[0]: needs exactly one of "version", "absent" or "value"`},
		{`{"checks": [{"key": "k", "version": 1, "absent": true}], "ops": [` + set + `]}`, "bad_request", "checks[0]: needs exactly one of"},
		{`{"checks": [{"key": "k", "absent": false}], "ops": [` + set + `]}`, "bad_request", `checks[0]: "absent" can only be true`},
		{`{"checks": [{"key": "k", "absent": true}, {"key": "k", "version": 0}], "ops": [` + set + `]}`, "bad_request", "checks[1]: version must be a version as an ETag gives it, never 0"},
		{`{"checks": [{"key": "k", "version": -1}], "ops": [` + set + `]}`, "bad_request", "checks.version cannot be a JSON number"},
		{`{"checks": [{"key": "k", "version": "41"}], "ops": [` + set + `]}`, "bad_request", "checks.version cannot be a JSON string"},
		{`{"checks": [{"key": "k", "encoding": "base64", "absent": true}], "ops": [` + set + `]}`, "bad_request", `checks[0]: "encoding" applies to a "value"`},
		{`{"checks": [{"key": "k", "value": "%", "encoding": "base64"}], "ops": [` + set + `]}`, "bad_request", `checks[0]: "value" is not valid base64`},
		{`{"checks": [{"key": "", "absent": true}], "ops": [` + set + `]}`, "bad_request", "checks[0]: key is empty"},
	}
	for _, c := range cases {
		resp, body := s.txn(t, c.body)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s\n%s", c.body, body)
		assert.Equal(t, c.code, resp.Header.Get("X-Error-Code"), c.body)
		assert.Contains(t, body, c.want, c.body)
		assert.Equal(t, 1, strings.Count(body, "\n"), "one line: %q", body)
		assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain", "a plain client gets text")

		// A JSON client gets the same refusal as JSON.
		resp, body = s.txn(t, c.body, "Accept", "application/json")
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		var e struct{ Error, Code string }
		require.NoError(t, json.Unmarshal([]byte(body), &e), body)
		assert.Contains(t, e.Error, c.want)
		assert.Equal(t, c.code, e.Code)
	}
	_, body := do(t, "GET", s.base+"/list/", "")
	assert.Empty(t, body, "no refused transaction wrote anything")

	// The limits are what they say: exactly MaxBatchOps ops and checks
	// commit.
	status, a := s.txnJSON(t, `{"checks": [{"key": "a", "absent": true}, {"key": "b", "absent": true}, {"key": "c", "absent": true}],
		"ops": [{"op": "set", "key": "a", "value": "1"}, {"op": "set", "key": "b", "value": "2"}, {"op": "delete", "key": "c"}]}`)
	assert.Equal(t, 200, status, "%+v", a)
}

// Only POST serves /txn; a browser's preflight for it is approved, as for
// the other writes.
func TestTxnMethodAndPreflight(t *testing.T) {
	s := start(t, testConfig())
	resp, _ := do(t, "GET", s.base+"/txn", "")
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "POST", resp.Header.Get("Allow"))

	resp, _ = do(t, "OPTIONS", s.base+"/txn", "", "Origin", "https://other.example",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type, x-owner-secret")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type")
}
