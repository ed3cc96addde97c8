package resp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIPKeys: a write of ip/name lands in the caller's address space, for
// every writing command, and reads are literal.
func TestIPKeys(t *testing.T) {
	r := start(t, testConfig())
	c := r.client(t, 3)
	require.Equal(t, "OK", c.Set(ctx, "ip/ssh", "addr", 0).Val())
	assert.Equal(t, "addr", c.Get(ctx, "ip/127.0.0.1/ssh").Val())
	status, body := r.httpGet(t, "ip/127.0.0.1/ssh")
	assert.Equal(t, 200, status)
	assert.Equal(t, "addr", body)
	assert.Equal(t, int64(1), c.Incr(ctx, "ip/n").Val())
	assert.Equal(t, "1", c.Get(ctx, "ip/127.0.0.1/n").Val())
	require.NoError(t, c.MSet(ctx, "ip/a", "1", "ip/b", "2").Err())
	assert.Equal(t, []any{"1", "2"}, c.MGet(ctx, "ip/127.0.0.1/a", "ip/127.0.0.1/b").Val())
	assert.Equal(t, int64(1), c.Del(ctx, "ip/a").Val())
	assert.Equal(t, int64(0), c.Exists(ctx, "ip/127.0.0.1/a").Val())
	// Writing someone else's address space means writing one's own.
	require.NoError(t, c.Set(ctx, "ip/10.1.2.3/x", "v", 0).Err())
	assert.Equal(t, int64(0), c.Exists(ctx, "ip/10.1.2.3/x").Val())
	assert.Equal(t, int64(1), c.Exists(ctx, "ip/127.0.0.1/10.1.2.3/x").Val())
	assert.ErrorContains(t, c.Set(ctx, "ip/", "v", 0).Err(), "ERR bad_request: ip/ key needs a name")
}

// TestOwnerSecrets: a key set with a secret (the SET option, or the
// connection's SECRET) can be changed by no command without it.
func TestOwnerSecrets(t *testing.T) {
	r := start(t, testConfig())
	owner, other := r.client(t, 3), r.client(t, 2)
	require.NoError(t, owner.Do(ctx, "SET", "mine", "5", "SECRET", "s3cret").Err())
	require.NoError(t, owner.Do(ctx, "SET", "mine2", "v", "SECRET", "s3cret").Err())
	assert.Equal(t, "5", other.Get(ctx, "mine").Val(), "anyone reads an owned key")

	const refused = "NOPERM owned: key is owned: wrong or missing owner secret"
	for _, args := range [][]any{
		{"SET", "mine", "x"}, {"SET", "mine", "x", "SECRET", "wrong"}, {"SET", "mine", "x", "XX", "GET"},
		{"SETEX", "mine", "10", "x"}, {"PSETEX", "mine", "10000", "x"}, {"GETSET", "mine", "x"}, {"GETDEL", "mine"},
		{"GETEX", "mine", "EX", "10"}, {"MSET", "free", "1", "mine", "x"}, {"DEL", "mine"}, {"UNLINK", "mine", "mine2"},
		{"EXPIRE", "mine", "10"}, {"PEXPIRE", "mine", "10000"}, {"EXPIREAT", "mine", "1"}, {"PEXPIREAT", "mine", "1"},
		{"APPEND", "mine", "x"}, {"INCR", "mine"}, {"INCRBY", "mine", "2"}, {"DECR", "mine"}, {"DECRBY", "mine", "2"},
	} {
		assert.EqualError(t, other.Do(ctx, args...).Err(), refused, "%v", args)
	}
	assert.False(t, other.SetNX(ctx, "mine", "x", 0).Val())
	assert.Equal(t, int64(0), other.Exists(ctx, "free").Val(), "the refused MSET wrote nothing")
	assert.Equal(t, "5", other.Get(ctx, "mine").Val())
	assert.Equal(t, "v", other.Get(ctx, "mine2").Val())

	// The owner, by the connection's secret.
	c := r.client(t, 2)
	require.NoError(t, c.Do(ctx, "SECRET", "s3cret").Err())
	assert.Equal(t, int64(6), c.Incr(ctx, "mine").Val())
	assert.True(t, c.Expire(ctx, "mine", time.Minute).Val())
	assert.Equal(t, int64(1), c.Del(ctx, "mine").Val())
	require.NoError(t, c.Do(ctx, "SECRET").Err())
	assert.EqualError(t, c.Del(ctx, "mine2").Err(), refused, "the secret was cleared")
	// Over HTTP too.
	assert.Equal(t, 403, r.httpSet(t, "mine2", "x"))
	assert.Equal(t, 200, r.httpSet(t, "mine2", "x", "X-Owner-Secret", "s3cret"))
}

// TestKeyAndValueRules: the key rules and the value limit of every front
// end, as Redis errors with the policy's code.
func TestKeyAndValueRules(t *testing.T) {
	r := start(t, testConfig())
	c := r.client(t, 3)
	assert.EqualError(t, c.Set(ctx, "a\x01b", "v", 0).Err(), "ERR bad_request: key contains a control character")
	assert.EqualError(t, c.Get(ctx, "\xff\xfe").Err(), "ERR bad_request: key is not valid UTF-8")
	assert.EqualError(t, c.Set(ctx, strings.Repeat("k", 101), "v", 0).Err(),
		"ERR bad_request: key too long: at most 100 bytes (ip/ keys count with the address)")
	assert.EqualError(t, c.Incr(ctx, "").Err(), "ERR bad_request: key is empty")
	assert.NoError(t, c.Set(ctx, "big", strings.Repeat("v", 1000), 0).Err())
	assert.EqualError(t, c.Append(ctx, "big", "v").Err(),
		"ERR too_large: value too large: value plus owner secret may be at most 1000 bytes")
	assert.EqualError(t, c.Do(ctx, "SET", "s", strings.Repeat("v", 995), "SECRET", "123456").Err(),
		"ERR too_large: value too large: value plus owner secret may be at most 1000 bytes")
}

// TestFull: a new key beyond --max-keys is Redis's OOM, with the code.
func TestFull(t *testing.T) {
	cfg := testConfig()
	cfg.MaxKeys = 2
	r := start(t, cfg)
	c := r.client(t, 2)
	require.NoError(t, c.MSet(ctx, "a", "1", "b", "2").Err())
	assert.EqualError(t, c.Set(ctx, "c", "3", 0).Err(), "OOM store_full: store is full")
	assert.EqualError(t, c.Incr(ctx, "c").Err(), "OOM store_full: store is full")
	assert.NoError(t, c.Set(ctx, "a", "3", 0).Err(), "overwriting needs no room")
}

// TestRateLimit: a command costs a read or a write per key touched, from
// the same bucket as HTTP requests.
func TestRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.RateOff = false
	cfg.RateTokens, cfg.RateWindow = 10, time.Hour
	r := start(t, cfg)
	c := r.client(t, 3)
	require.NoError(t, c.Set(ctx, "a", "1", 0).Err()) // 3
	require.NoError(t, c.Get(ctx, "a").Err())         // 4
	require.NoError(t, c.Incr(ctx, "a").Err())        // 7
	err := c.MSet(ctx, "b", "1", "c", "2").Err()      // 13: refused
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "ERR rate_limited: "), err.Error())
	require.NoError(t, c.Exists(ctx, "a", "b", "c").Err()) // 10
	assert.ErrorContains(t, c.Get(ctx, "a").Err(), "rate_limited")
	resp, _ := r.httpGet(t, "a")
	assert.Equal(t, 429, resp, "one bucket for both protocols")
	assert.Equal(t, "PONG", c.Ping(ctx).Val(), "connection commands are free")
}
