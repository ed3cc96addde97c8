package kvconnect_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/rendezvous-kv/rendezvous/server"
)

// meta is a metadata exchange's answer.
type meta struct {
	Version    int    `json:"version"`
	DatabaseID string `json:"databaseId"`
	Endpoints  []struct {
		URL         string `json:"url"`
		Consistency string `json:"consistency"`
	} `json:"endpoints"`
	Token     string `json:"token"`
	ExpiresAt string `json:"expiresAt"`
}

func openMeta(t *testing.T, base string) meta {
	t.Helper()
	resp, body := post(t, base+"/kv", "access", []byte(`{"supportedVersions":[1,2,3]}`), "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var m meta
	require.NoError(t, json.Unmarshal(body, &m))
	return m
}

// pb builds a protobuf message from fields: a number, then a []byte,
// string, bool or int (varint), or a nested message as [][]any.
func pb(fields ...any) []byte {
	var b []byte
	for i := 0; i+1 < len(fields); i += 2 {
		num := protowire.Number(fields[i].(int))
		switch v := fields[i+1].(type) {
		case []byte:
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendBytes(b, v)
		case string:
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendBytes(b, []byte(v))
		case int:
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(v)))
		case bool:
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, protowire.EncodeBool(v))
		}
	}
	return b
}

// key is the tuple encoding of string parts.
func key(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = append(append(append(b, 2), p...), 0)
	}
	return b
}

func TestMetadataExchange(t *testing.T) {
	ts := startServer(t, nil)
	m := openMeta(t, ts.base)
	assert.Equal(t, 3, m.Version)
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`, m.DatabaseID)
	require.Len(t, m.Endpoints, 1)
	assert.Equal(t, ts.base+"/kv/v3", m.Endpoints[0].URL, "absolute")
	assert.Equal(t, "strong", m.Endpoints[0].Consistency)
	assert.Regexp(t, regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$`), m.ExpiresAt)
	exp, err := time.Parse(time.RFC3339, m.ExpiresAt)
	require.NoError(t, err)
	assert.Greater(t, time.Until(exp), 10*time.Minute)

	resp, _ := post(t, ts.base+"/kv", "access", []byte(`{"supportedVersions":[1,2]}`))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "exactly, for @deno/kv")
	var m2 meta
	_, body := post(t, ts.base+"/kv", "access", []byte(`{"supportedVersions":[1,2]}`))
	require.NoError(t, json.Unmarshal(body, &m2))
	assert.Equal(t, 2, m2.Version, "the highest offered")
	assert.Equal(t, m.DatabaseID, m2.DatabaseID)

	for _, c := range []struct {
		token, body string
		status      int
		msg         string
	}{
		{"", `{"supportedVersions":[3]}`, 401, "missing access token"},
		{"t", `{"supportedVersions":[7]}`, 400, "no protocol version in common"},
		{"t", `not json`, 400, "not JSON"},
	} {
		resp, body := post(t, ts.base+"/kv", c.token, []byte(c.body))
		assert.Equal(t, c.status, resp.StatusCode, c)
		assert.Contains(t, string(body), c.msg)
	}

	// Behind a trusted proxy the endpoint follows the forwarded scheme
	// and host; from anyone else those headers are ignored.
	proxied := startServer(t, func(c *server.Config) { c.TrustedProxies = mustPrefixes("127.0.0.1/32") })
	_, body = post(t, proxied.base+"/kv", "t", nil, "X-Forwarded-Proto", "https", "X-Forwarded-Host", "kv.example")
	require.NoError(t, json.Unmarshal(body, &m2))
	assert.Equal(t, "https://kv.example/kv/v3", m2.Endpoints[0].URL)
	_, body = post(t, ts.base+"/kv", "t", nil, "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example")
	require.NoError(t, json.Unmarshal(body, &m2))
	assert.Equal(t, ts.base+"/kv/v3", m2.Endpoints[0].URL)
}

// Every invalid data-path request is a 4xx with a plain-text reason,
// never a 5xx (which Deno retries forever), and writes nothing.
func TestDataPathRefusals(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.MaxKeys = 5 })
	m := openMeta(t, ts.base)
	ep := m.Endpoints[0].URL
	hdr := []string{"X-Denokv-Version", "3", "X-Denokv-Database-Id", m.DatabaseID}
	rng := func(start, end []byte, limit int) []byte { return pb(1, start, 2, end, 3, limit) }
	set := func(k []byte, v string, enc int) []byte {
		return pb(1, k, 2, pb(1, v, 2, enc), 3, 1)
	}
	big := strings.Repeat("x", 65537)
	for _, c := range []struct {
		name, op string
		body     []byte
		status   int
		msg      string
	}{
		{"garbage", "snapshot_read", []byte{0xff, 0xff, 0xff}, 400, "invalid"},
		{"limit 0", "snapshot_read", pb(1, rng(key("a"), key("b"), 0)), 400, "limit"},
		{"11 ranges", "snapshot_read", pb(1, rng(key("a"), key("b"), 1), 1, rng(key("a"), key("b"), 1), 1, rng(key("a"), key("b"), 1),
			1, rng(key("a"), key("b"), 1), 1, rng(key("a"), key("b"), 1), 1, rng(key("a"), key("b"), 1), 1, rng(key("a"), key("b"), 1),
			1, rng(key("a"), key("b"), 1), 1, rng(key("a"), key("b"), 1), 1, rng(key("a"), key("b"), 1), 1, rng(key("a"), key("b"), 1)), 400, "too many ranges"},
		{"1001 entries", "snapshot_read", pb(1, rng(key("a"), key("b"), 1001)), 400, "too many entries"},
		{"long bound", "snapshot_read", pb(1, rng([]byte(strings.Repeat("a", 2050)), key("b"), 1)), 400, "2049"},
		{"bad mutation kind", "atomic_write", pb(2, pb(1, key("t", "a"), 2, pb(1, "v", 2, 1), 3, 42)), 400, "invalid mutation kind"},
		{"empty key", "atomic_write", pb(2, set(nil, "v", 3)), 400, "key is empty"},
		{"long key", "atomic_write", pb(2, set([]byte(strings.Repeat("k", 2049)), "v", 3)), 400, "key too long"},
		{"big value", "atomic_write", pb(2, pb(1, key("t", "first"), 2, pb(1, "v", 2, 3), 3, 1), 2, set(key("t", "b"), big, 3)), 400, "value too large"},
		{"bad encoding", "atomic_write", pb(2, set(key("t", "b"), "v", 9)), 400, "encoding"},
		{"short u64", "atomic_write", pb(2, set(key("t", "b"), "1234", 2)), 400, "8 bytes"},
		{"bad versionstamp", "atomic_write", pb(1, pb(1, key("t", "a"), 2, "123"), 2, set(key("t", "b"), "v", 3)), 400, "versionstamp"},
		{"enqueue", "atomic_write", pb(3, pb(1, "payload", 2, 0)), 400, "enqueue is not supported"},
		{"sum bounds", "atomic_write", pb(2, pb(1, key("t", "a"), 2, pb(1, "12345678", 2, 2), 3, 3, 7, true)), 400, "not supported"},
		{"store full", "atomic_write", pb(2, set(key("f", "1"), "v", 3), 2, set(key("f", "2"), "v", 3), 2, set(key("f", "3"), "v", 3),
			2, set(key("f", "4"), "v", 3), 2, set(key("f", "5"), "v", 3), 2, set(key("f", "6"), "v", 3)), 400, "full"},
		{"11 watch keys", "watch", pb(1, pb(1, key("a")), 1, pb(1, key("a")), 1, pb(1, key("a")), 1, pb(1, key("a")), 1, pb(1, key("a")),
			1, pb(1, key("a")), 1, pb(1, key("a")), 1, pb(1, key("a")), 1, pb(1, key("a")), 1, pb(1, key("a")), 1, pb(1, key("a"))), 400, "too many keys"},
		{"no watch keys", "watch", nil, 400, "at least one key"},
	} {
		resp, body := post(t, ep+"/"+c.op, m.Token, c.body, hdr...)
		assert.Equal(t, c.status, resp.StatusCode, "%s: %s", c.name, body)
		assert.Contains(t, string(body), c.msg, c.name)
		assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain", c.name)
	}
	// Nothing of the refused writes is there.
	resp, body := post(t, ep+"/snapshot_read", m.Token, pb(1, rng([]byte{0}, []byte{0xff}, 100)), hdr...)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, pb(1, []byte{}, 4, 1, 8, 1), body, "one empty range, strong, SR_SUCCESS")

	// Tokens and headers.
	for _, c := range []struct {
		name, token string
		hdr         []string
		status      int
	}{
		{"forged token", m.Token + "x", hdr, 401},
		{"access token", "access", hdr, 401},
		{"no token", "", hdr, 401},
		{"wrong database", m.Token, []string{"X-Denokv-Version", "3", "X-Denokv-Database-Id", "00000000-0000-0000-0000-000000000000"}, 400},
		{"wrong version", m.Token, []string{"X-Denokv-Version", "9"}, 400},
	} {
		resp, _ := post(t, ep+"/snapshot_read", c.token, pb(1, rng(key("a"), key("b"), 1)), c.hdr...)
		assert.Equal(t, c.status, resp.StatusCode, c.name)
	}
	resp, _ = post(t, ts.base+"/kv/v3/nothing", m.Token, nil, hdr...)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	req, _ := http.NewRequest(http.MethodGet, ts.base+"/kv", nil)
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
}

// --public-url sets the endpoints' base, and KV Connect requests are
// counted in the metrics under their own route names.
func TestPublicURLAndMetrics(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.PublicURL = "https://kv.example/rdv" })
	m := openMeta(t, ts.base)
	assert.Equal(t, "https://kv.example/rdv/kv/v3", m.Endpoints[0].URL)
	resp, _ := post(t, ts.base+"/kv/v3/snapshot_read", m.Token, pb(1, pb(1, key("a"), 2, key("b"), 3, 1)))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// A request is counted just after its answer is written, so poll.
	metrics := ""
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
		r, err := http.Get(ts.base + "/metrics")
		require.NoError(t, err)
		var b strings.Builder
		_, err = io.Copy(&b, r.Body)
		r.Body.Close()
		require.NoError(t, err)
		if metrics = b.String(); strings.Contains(metrics, `{code="200",route="kv_snapshot_read"}`) {
			break
		}
	}
	assert.True(t, strings.Contains(metrics, `{code="200",route="kv_metadata"}`), "kv_metadata counted")
	assert.True(t, strings.Contains(metrics, `{code="200",route="kv_snapshot_read"}`), "kv_snapshot_read counted")

	for _, bad := range []string{"ftp://x", "https://kv.example/", "https://kv.example?a=1", "kv.example"} {
		cfg := server.DefaultConfig()
		cfg.PublicURL = bad
		assert.Error(t, cfg.Validate(), bad)
	}
}
