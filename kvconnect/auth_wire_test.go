package kvconnect_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/server"
)

// openAs is the metadata exchange with access as the access token.
func openAs(t *testing.T, base, access string) (meta, *http.Response, string) {
	t.Helper()
	resp, body := post(t, base+"/kv", access, []byte(`{"supportedVersions":[1,2,3]}`), "Content-Type", "application/json")
	var m meta
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &m))
	}
	return m, resp, string(body)
}

// setTuple writes one bytes value under a tuple key through the data path
// and returns the answer's status and body.
func setTuple(t *testing.T, m meta, base string, k []byte) (int, string) {
	t.Helper()
	resp, body := post(t, base+"/kv/v3/atomic_write", m.Token, pb(2, pb(1, k, 2, pb(1, "v", 2, 3), 3, 1)),
		"X-Denokv-Version", "3", "X-Denokv-Database-Id", m.DatabaseID)
	return resp.StatusCode, string(body)
}

// A data-path token of a token-file identity keeps its identity and
// grants across a restart on the same data and token file: the team's
// keys are written, another is refused.
func TestIdentityTokenSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	data, tokens := filepath.Join(dir, "db"), filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("tok-team team rw:team/\n"), 0o600))
	edit := func(c *server.Config) { c.Data, c.AuthFile = data, tokens }
	ts := startServer(t, edit)
	m, resp, body := openAs(t, ts.base, "tok-team")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.NotContains(t, m.Token, "team", "the data-path token shows nothing of the identity")
	ts.stop(t)

	ts = startServer(t, edit)
	status, body := setTuple(t, m, ts.base, key("team", "x"))
	assert.Equal(t, http.StatusOK, status, body)
	status, body = setTuple(t, m, ts.base, key("other", "x"))
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Equal(t, "mutations[0]: no permission to write this key\n", body)

	// A reload that changes the line's grants changes what the token may
	// do at once.
	require.NoError(t, os.WriteFile(tokens, []byte("tok-team team rw:other/\n"), 0o600))
	require.NoError(t, ts.srv.Reload())
	status, body = setTuple(t, m, ts.base, key("other", "x"))
	assert.Equal(t, http.StatusOK, status, body)
	status, body = setTuple(t, m, ts.base, key("team", "y"))
	assert.Equal(t, http.StatusForbidden, status, body)

	// A token tampered with is no token.
	status, body = setTuple(t, meta{Token: m.Token[:len(m.Token)-2] + "AA", DatabaseID: m.DatabaseID}, ts.base, key("team", "y"))
	assert.Equal(t, http.StatusUnauthorized, status, body)
}

// A JWT's identity reaches the data path with its grants, across a
// restart, and the data-path token expires no later than the JWT.
func TestJWTIdentityOnTheDataPath(t *testing.T) {
	dir := t.TempDir()
	secret := []byte(strings.Repeat("s", 32))
	secretFile := filepath.Join(dir, "jwt")
	require.NoError(t, os.WriteFile(secretFile, secret, 0o600))
	edit := func(c *server.Config) { c.Data, c.JWTSecretFile = filepath.Join(dir, "db"), secretFile }
	ts := startServer(t, edit)
	exp := time.Now().Add(20 * time.Minute).Truncate(time.Second)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "jay", "grants": []string{"rw:team/"}, "exp": exp.Unix()}).SignedString(secret)
	require.NoError(t, err)
	m, resp, body := openAs(t, ts.base, tok)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	expires, err := time.Parse(time.RFC3339, m.ExpiresAt)
	require.NoError(t, err)
	assert.WithinDuration(t, exp, expires, time.Second, "expiresAt is the JWT's exp, not an hour ahead")
	ts.stop(t)

	ts = startServer(t, edit)
	status, body := setTuple(t, m, ts.base, key("team", "x"))
	assert.Equal(t, http.StatusOK, status, body)
	status, body = setTuple(t, m, ts.base, key("other"))
	assert.Equal(t, http.StatusForbidden, status, body)

	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "jay", "exp": time.Now().Add(-time.Hour).Unix()}).SignedString(secret)
	require.NoError(t, err)
	_, resp, body = openAs(t, ts.base, expired)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "token expired: the server refused the access token (DENO_KV_ACCESS_TOKEN, or openKv's accessToken)\n", body)
}

// The data path spends the identity's own rate bucket, not its
// address's: one identity running out leaves another on the same address
// its budget.
func TestDataPathUsesTheIdentitysBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(path, []byte("tok-slow slow rw: rate=3/1h\ntok-other other rw:\n"), 0o600))
	ts := startServer(t, func(c *server.Config) {
		c.AuthFile, c.RateOff, c.RateTokens, c.RateWindow, c.CostRead, c.CostWrite = path, false, 1000, time.Hour, 1, 1
	})
	slow, resp, body := openAs(t, ts.base, "tok-slow")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	other, resp, body := openAs(t, ts.base, "tok-other")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	limited := false
	for range 10 {
		status, _ := setTuple(t, slow, ts.base, key("k"))
		if status == http.StatusTooManyRequests {
			limited = true
			break
		}
		require.Equal(t, http.StatusOK, status)
	}
	require.True(t, limited, "a bucket of 3 tokens an hour ran out")
	status, body := setTuple(t, other, ts.base, key("k"))
	assert.Equal(t, http.StatusOK, status, body)
}

// Refused access tokens are throttled as on HTTP: past the address's
// budget for refusals the exchange is 429 with Retry-After, a right token
// too, without being checked.
func TestRefusedAccessTokensAreThrottled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(path, []byte("tok-team team rw:team/\n"), 0o600))
	ts := startServer(t, func(c *server.Config) {
		c.AuthFile, c.RateOff, c.RateTokens, c.RateWindow, c.CostRead, c.CostWrite = path, false, 6, time.Hour, 1, 3
	})
	throttled := false
	for range 10 {
		_, resp, body := openAs(t, ts.base, "tok-guess")
		if resp.StatusCode == http.StatusTooManyRequests {
			throttled = true
			assert.NotEmpty(t, resp.Header.Get("Retry-After"))
			assert.Contains(t, body, "too many refused tokens")
			break
		}
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, body)
	}
	require.True(t, throttled, "guessing is throttled")
	_, resp, _ := openAs(t, ts.base, "tok-team")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "a right token is not checked either")
}

// A watch stream ends once its access token is revoked: the next change
// sends no frame, the stream closes, and the reconnect is refused.
func TestWatchEndsWhenTheTokenIsRevoked(t *testing.T) {
	ts, path := withTokenFile(t, "tok-w watcher rw:", "tok-admin admin rw:")
	m, resp, body := openAs(t, ts.base, "tok-w")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	watchBody := pb(1, pb(1, key("w/leader")))
	req, err := http.NewRequest(http.MethodPost, m.Endpoints[0].URL+"/watch", bytes.NewReader(watchBody))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+m.Token)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err = http.DefaultClient.Do(req.WithContext(ctx))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var n [4]byte
	_, err = io.ReadFull(resp.Body, n[:])
	require.NoError(t, err)
	_, err = io.ReadFull(resp.Body, make([]byte, binary.LittleEndian.Uint32(n[:])))
	require.NoError(t, err, "the first frame")

	require.NoError(t, os.WriteFile(path, []byte("tok-admin admin rw:\n"), 0o600))
	require.NoError(t, ts.srv.Reload())
	w, err := http.NewRequest(http.MethodPost, ts.base+"/set/w/leader", strings.NewReader("node-a"))
	require.NoError(t, err)
	w.Header.Set("Authorization", "Bearer tok-admin")
	wr, err := http.DefaultClient.Do(w)
	require.NoError(t, err)
	wr.Body.Close()
	require.Equal(t, http.StatusOK, wr.StatusCode)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the stream ends rather than sending the change")
	assert.NotContains(t, string(rest), "node-a")

	again, refusal := post(t, m.Endpoints[0].URL+"/watch", m.Token, watchBody)
	assert.Equal(t, http.StatusUnauthorized, again.StatusCode, string(refusal))
}

// A token-file identity with many grants gets a short data-path token
// (the file's line is looked up, not carried), which works.
func TestManyGrantsShortToken(t *testing.T) {
	grants := []string{"rw:team/"}
	for i := range 3000 {
		grants = append(grants, "r:g"+strconv.Itoa(i)+"/")
	}
	ts, _ := withTokenFile(t, "tok-many many "+strings.Join(grants, " "))
	m, resp, body := openAs(t, ts.base, "tok-many")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Less(t, len(m.Token), 200)
	status, body := setTuple(t, m, ts.base, key("team", "x"))
	assert.Equal(t, http.StatusOK, status, body)
	status, body = setTuple(t, m, ts.base, key("g1", "x"))
	assert.Equal(t, http.StatusForbidden, status, body)
}
