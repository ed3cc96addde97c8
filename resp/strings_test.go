package resp_test

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStringCommands drives every string and key command through go-redis
// in both protocol versions.
func TestStringCommands(t *testing.T) {
	r := start(t, testConfig())
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			c := r.client(t, proto)
			p := fmt.Sprintf("p%d/", proto)
			k := func(s string) string { return p + s }

			require.Equal(t, "OK", c.Set(ctx, k("a"), "1", 0).Val())
			assert.Equal(t, "1", c.Get(ctx, k("a")).Val())
			_, err := c.Get(ctx, k("missing")).Result()
			assert.ErrorIs(t, err, redis.Nil)

			// Binary-safe values.
			bin := string([]byte{0, 1, 2, '\r', '\n', 0xff})
			require.NoError(t, c.Set(ctx, k("bin"), bin, 0).Err())
			assert.Equal(t, bin, c.Get(ctx, k("bin")).Val())

			// Expiry options.
			require.NoError(t, c.Set(ctx, k("ex"), "v", 100*time.Second).Err())
			assert.InDelta(t, 100, c.TTL(ctx, k("ex")).Val().Seconds(), 1)
			require.NoError(t, c.Set(ctx, k("px"), "v", 1500*time.Millisecond).Err())
			assert.InDelta(t, 1500, float64(c.PTTL(ctx, k("px")).Val().Milliseconds()), 100)
			require.NoError(t, c.SetArgs(ctx, k("exat"), "v", redis.SetArgs{ExpireAt: time.Now().Add(50 * time.Second)}).Err())
			assert.InDelta(t, 50, c.TTL(ctx, k("exat")).Val().Seconds(), 2)
			require.NoError(t, c.SetArgs(ctx, k("ex"), "w", redis.SetArgs{KeepTTL: true}).Err())
			assert.InDelta(t, 100, c.TTL(ctx, k("ex")).Val().Seconds(), 2, "KEEPTTL kept the expiry")
			assert.Equal(t, "w", c.Get(ctx, k("ex")).Val())
			assert.Equal(t, time.Duration(-2), c.TTL(ctx, k("missing")).Val())

			// NX, XX, GET.
			assert.False(t, c.SetNX(ctx, k("a"), "2", 0).Val())
			assert.True(t, c.SetNX(ctx, k("nx"), "1", 0).Val())
			assert.False(t, c.SetXX(ctx, k("xx"), "1", 0).Val())
			assert.True(t, c.SetXX(ctx, k("nx"), "2", 0).Val())
			old, err := c.SetArgs(ctx, k("nx"), "3", redis.SetArgs{Get: true}).Result()
			require.NoError(t, err)
			assert.Equal(t, "2", old)
			_, err = c.SetArgs(ctx, k("new"), "3", redis.SetArgs{Get: true}).Result()
			assert.ErrorIs(t, err, redis.Nil)
			assert.Equal(t, "3", c.Get(ctx, k("new")).Val())
			assert.ErrorContains(t, c.Do(ctx, "SET", k("a"), "v", "NX", "XX").Err(), "syntax error")
			assert.ErrorContains(t, c.Do(ctx, "SET", k("a"), "v", "EX", "0").Err(), "invalid expire time in 'set' command")
			assert.ErrorContains(t, c.Do(ctx, "SET", k("a"), "v", "EX", "x").Err(), "not an integer")

			// SETNX, SETEX, PSETEX, GETSET, GETDEL, GETEX.
			assert.Equal(t, int64(0), c.Do(ctx, "SETNX", k("a"), "x").Val())
			require.NoError(t, c.SetEx(ctx, k("setex"), "v", 30*time.Second).Err())
			assert.InDelta(t, 30, c.TTL(ctx, k("setex")).Val().Seconds(), 1)
			require.NoError(t, c.Do(ctx, "PSETEX", k("psetex"), "3000", "v").Err())
			assert.InDelta(t, 3000, float64(c.PTTL(ctx, k("psetex")).Val().Milliseconds()), 100)
			assert.Equal(t, "1", c.GetSet(ctx, k("a"), "9").Val())
			assert.Equal(t, "9", c.GetDel(ctx, k("a")).Val())
			assert.ErrorIs(t, c.Get(ctx, k("a")).Err(), redis.Nil)
			assert.ErrorIs(t, c.GetDel(ctx, k("a")).Err(), redis.Nil)
			assert.Equal(t, "w", c.GetEx(ctx, k("ex"), 20*time.Second).Val())
			assert.InDelta(t, 20, c.TTL(ctx, k("ex")).Val().Seconds(), 1)
			assert.Equal(t, "w", c.Do(ctx, "GETEX", k("ex")).Val(), "GETEX without options only reads")

			// MGET, DEL, UNLINK, EXISTS, TYPE, STRLEN, APPEND.
			assert.Equal(t, []any{"3", nil, "v"}, c.MGet(ctx, k("nx"), k("missing"), k("setex")).Val())
			assert.Equal(t, int64(2), c.Exists(ctx, k("nx"), k("setex"), k("missing")).Val())
			assert.Equal(t, "string", c.Type(ctx, k("nx")).Val())
			assert.Equal(t, "none", c.Type(ctx, k("missing")).Val())
			assert.Equal(t, int64(2), c.Del(ctx, k("nx"), k("setex"), k("missing")).Val())
			assert.Equal(t, int64(1), c.Unlink(ctx, k("psetex")).Val())
			assert.Equal(t, int64(0), c.Exists(ctx, k("nx")).Val())
			assert.Equal(t, int64(5), c.Append(ctx, k("app"), "hello").Val())
			assert.Equal(t, int64(11), c.Append(ctx, k("app"), " world").Val())
			assert.Equal(t, "hello world", c.Get(ctx, k("app")).Val())
			assert.Equal(t, int64(11), c.StrLen(ctx, k("app")).Val())
			assert.Equal(t, int64(0), c.StrLen(ctx, k("missing")).Val())

			// Counters.
			assert.Equal(t, int64(1), c.Incr(ctx, k("n")).Val())
			assert.Equal(t, int64(11), c.IncrBy(ctx, k("n"), 10).Val())
			assert.Equal(t, int64(10), c.Decr(ctx, k("n")).Val())
			assert.Equal(t, int64(-5), c.DecrBy(ctx, k("n"), 15).Val())
			assert.Equal(t, "-5", c.Get(ctx, k("n")).Val())
			assert.EqualError(t, c.Incr(ctx, k("app")).Err(), "ERR value is not an integer or out of range")
			require.NoError(t, c.Set(ctx, k("big"), strconv.FormatInt(math.MaxInt64, 10), 0).Err())
			assert.EqualError(t, c.Incr(ctx, k("big")).Err(), "ERR increment or decrement would overflow")
			assert.EqualError(t, c.Do(ctx, "INCRBY", k("n"), "1.5").Err(), "ERR value is not an integer or out of range")
			require.NoError(t, c.Set(ctx, k("sp"), " 1", 0).Err())
			assert.Error(t, c.Incr(ctx, k("sp")).Err(), "only canonical decimals are integers")

			// EXPIRE and friends.
			require.NoError(t, c.Set(ctx, k("e"), "v", 0).Err())
			assert.True(t, c.Expire(ctx, k("e"), 60*time.Second).Val())
			assert.InDelta(t, 60, c.TTL(ctx, k("e")).Val().Seconds(), 1)
			assert.True(t, c.PExpire(ctx, k("e"), 5000*time.Millisecond).Val())
			assert.InDelta(t, 5000, float64(c.PTTL(ctx, k("e")).Val().Milliseconds()), 100)
			assert.True(t, c.ExpireAt(ctx, k("e"), time.Now().Add(40*time.Second)).Val())
			assert.InDelta(t, 40, c.TTL(ctx, k("e")).Val().Seconds(), 2)
			assert.True(t, c.PExpireAt(ctx, k("e"), time.Now().Add(30*time.Second)).Val())
			assert.InDelta(t, 30, c.TTL(ctx, k("e")).Val().Seconds(), 2)
			assert.False(t, c.ExpireGT(ctx, k("e"), 10*time.Second).Val())
			assert.True(t, c.ExpireLT(ctx, k("e"), 10*time.Second).Val())
			assert.False(t, c.ExpireNX(ctx, k("e"), 10*time.Second).Val())
			assert.False(t, c.Expire(ctx, k("missing"), 10*time.Second).Val())
			assert.True(t, c.Expire(ctx, k("e"), -1).Val())
			assert.Equal(t, int64(0), c.Exists(ctx, k("e")).Val(), "a past expiry deletes")
		})
	}
}

// TestTTLCap: every key expires within --max-ttl, which is also the
// default, and PERSIST is refused while there is one.
func TestTTLCap(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTTL = time.Hour
	r := start(t, cfg)
	c := r.client(t, 3)
	require.NoError(t, c.Set(ctx, "d", "v", 0).Err())
	assert.InDelta(t, 3600, c.TTL(ctx, "d").Val().Seconds(), 1, "no EX: the default TTL")
	require.NoError(t, c.Set(ctx, "long", "v", 100*time.Hour).Err())
	assert.InDelta(t, 3600, c.TTL(ctx, "long").Val().Seconds(), 1, "EX beyond the cap is capped")
	assert.True(t, c.Expire(ctx, "d", 50*time.Hour).Val())
	assert.InDelta(t, 3600, c.TTL(ctx, "d").Val().Seconds(), 1)
	assert.Equal(t, int64(1), c.Incr(ctx, "n").Val())
	assert.InDelta(t, 3600, c.TTL(ctx, "n").Val().Seconds(), 1)
	err := c.Persist(ctx, "d").Err()
	assert.ErrorContains(t, err, "ERR bad_request: every key expires on this server")
	assert.ErrorContains(t, c.Do(ctx, "GETEX", "d", "PERSIST").Err(), "PERSIST needs --max-ttl 0")
}

// TestHTTPInterop: the Redis protocol and the HTTP API see one store.
func TestHTTPInterop(t *testing.T) {
	r := start(t, testConfig())
	c := r.client(t, 2)
	require.NoError(t, c.Set(ctx, "mesh42/node-a", "10.0.0.7:9000", 0).Err())
	status, body := r.httpGet(t, "mesh42/node-a")
	assert.Equal(t, 200, status)
	assert.Equal(t, "10.0.0.7:9000", body)
	require.Equal(t, 200, r.httpSet(t, "mesh42/node-b", "from curl"))
	assert.Equal(t, "from curl", c.Get(ctx, "mesh42/node-b").Val())
	assert.Equal(t, int64(2), c.DBSize(ctx).Val())
}
