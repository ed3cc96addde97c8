package resp_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConnectionCommands covers the connection and server commands a
// client library or redis-cli sends.
func TestConnectionCommands(t *testing.T) {
	r := start(t, testConfig())
	c := r.client(t, 2)
	assert.Equal(t, "PONG", c.Ping(ctx).Val())
	assert.Equal(t, "hi", c.Do(ctx, "PING", "hi").Val())
	assert.Equal(t, "hello", c.Echo(ctx, "hello").Val())
	assert.Equal(t, "OK", c.Do(ctx, "SELECT", "0").Val())
	assert.ErrorContains(t, c.Do(ctx, "SELECT", "1").Err(), "DB index is out of range")
	require.NoError(t, c.Do(ctx, "CLIENT", "SETNAME", "tester").Err())
	assert.Equal(t, "tester", c.Do(ctx, "CLIENT", "GETNAME").Val())
	id, err := c.ClientID(ctx).Result()
	require.NoError(t, err)
	assert.Positive(t, id)
	assert.Contains(t, c.ClientInfo(ctx).Val().Name, "tester")
	assert.Equal(t, "OK", c.Do(ctx, "CLIENT", "SETINFO", "LIB-NAME", "x").Val())
	assert.ErrorContains(t, c.Do(ctx, "CLIENT", "KILL", "x").Err(), "unknown subcommand")

	n, err := c.Do(ctx, "COMMAND", "COUNT").Int()
	require.NoError(t, err)
	assert.Greater(t, n, 40)
	info, err := c.Command(ctx).Result()
	require.NoError(t, err)
	assert.Equal(t, int8(2), info["get"].Arity)
	assert.Equal(t, int8(2), info["mset"].StepCount)
	assert.True(t, info["get"].ReadOnly)
	assert.ErrorContains(t, c.Do(ctx, "COMMAND", "FROB").Err(), "unknown subcommand")
	keys, err := c.CommandGetKeys(ctx, "MSET", "a", "1", "b", "2").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, keys)

	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	assert.Equal(t, int64(1), c.DBSize(ctx).Val())
	text := c.Info(ctx).Val()
	for _, s := range []string{"# Server", "redis_version:", "# Clients", "connected_clients:", "# Memory", "used_memory:", "# Keyspace", "db0:keys=1"} {
		assert.Contains(t, text, s)
	}
	mem := c.Info(ctx, "memory").Val()
	assert.Contains(t, mem, "used_memory:")
	assert.NotContains(t, mem, "# Server")
	tm, err := c.Time(ctx).Result()
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), tm, 5*time.Second)
	cfg, err := c.ConfigGet(ctx, "save").Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"save": ""}, cfg)
	cfg, err = c.ConfigGet(ctx, "append*").Result()
	require.NoError(t, err)
	assert.Equal(t, "no", cfg["appendonly"], "in memory: no journal")
	assert.ErrorContains(t, c.ConfigSet(ctx, "save", "1 1").Err(), "not supported")

	assert.EqualError(t, c.Do(ctx, "FROB", "a", "b").Err(), "ERR unknown command 'FROB', with args beginning with: 'a' 'b' ")
	assert.EqualError(t, c.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command")
	assert.EqualError(t, c.Do(ctx, "AUTH", "pw").Err(),
		"ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
}

// TestHelloAndReset: HELLO switches protocol versions (and answers its
// map), RESET returns to RESP2, QUIT closes.
func TestHelloAndReset(t *testing.T) {
	r := start(t, testConfig())
	c := r.raw(t)
	c.send("HELLO 3 AUTH default pw SETNAME me\r\n")
	assert.Equal(t, "%7", c.line())
	assert.Equal(t, "$6", c.line())
	assert.Equal(t, "server", c.line())
	for range 23 { // the rest of the map, ending in modules' empty array
		c.line()
	}
	c.send("GET nope\r\n")
	assert.Equal(t, "_", c.line(), "RESP3 null")
	c.send("CLIENT GETNAME\r\n")
	assert.Equal(t, "$2", c.line())
	assert.Equal(t, "me", c.line())
	c.send("RESET\r\nGET nope\r\n")
	assert.Equal(t, "+RESET", c.line())
	assert.Equal(t, "$-1", c.line(), "RESP2 null after RESET")
	c.send("HELLO 4\r\n")
	assert.Equal(t, "-NOPROTO unsupported protocol version", c.line())
	c.send("QUIT\r\n")
	assert.Equal(t, "+OK", c.line())
	c.closed()
}

// TestPipelining: a batch of commands in one write is answered in order,
// by go-redis's pipeline and by a raw write of inline commands.
func TestPipelining(t *testing.T) {
	r := start(t, testConfig())
	c := r.client(t, 3)
	pipe := c.Pipeline()
	for i := range 500 {
		pipe.Set(ctx, "pipe/"+strconv.Itoa(i), i, 0)
		pipe.Incr(ctx, "pipe/n")
	}
	cmds, err := pipe.Exec(ctx)
	require.NoError(t, err)
	require.Len(t, cmds, 1000)
	assert.Equal(t, int64(500), cmds[999].(*redis.IntCmd).Val())
	assert.Equal(t, "499", c.Get(ctx, "pipe/499").Val())

	raw := r.raw(t)
	raw.send(strings.Repeat("PING\r\n", 300) + "ECHO done\r\n")
	for range 300 {
		require.Equal(t, "+PONG", raw.line())
	}
	assert.Equal(t, "$4", raw.line())
	assert.Equal(t, "done", raw.line())
}

// TestInline: commands typed by hand, with quoting.
func TestInline(t *testing.T) {
	r := start(t, testConfig())
	c := r.raw(t)
	c.send("SET greeting \"hello world\\n\"\r\n\r\nGET greeting\nSET q 'it''s'\r\n")
	assert.Equal(t, "+OK", c.line())
	assert.Equal(t, "$12", c.line())
	assert.Equal(t, "hello world\n", c.line(), "with the value's own newline")
	assert.Equal(t, "", c.line())
	assert.Equal(t, "-ERR Protocol error: unbalanced quotes in request", c.line())
	c.closed()
}

// TestMalformedAndBigFrames: frames beyond the limits are refused before
// their payload is read, malformed ones get Redis's protocol error, and
// both close the connection.
func TestMalformedAndBigFrames(t *testing.T) {
	r := start(t, testConfig())
	for _, tc := range []struct{ frame, reply string }{
		{"*100000000\r\n", "-ERR Protocol error: invalid multibulk length: at most 208 arguments"},
		{"*2\r\n$3\r\nSET\r\n$2000000000\r\n", "-ERR Protocol error: invalid bulk length: at most 1000 bytes"},
		{"*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'"},
		{"*x\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*1\r\n$4\r\nPINGxx", "-ERR Protocol error: bulk string not terminated by CRLF"},
		{strings.Repeat("A", 20000), "-ERR Protocol error: too big inline request"},
	} {
		c := r.raw(t)
		c.send(tc.frame)
		assert.Equal(t, tc.reply, c.line(), "%.40q", tc.frame)
		c.closed()
	}
	// A whole command beyond the request cap, of bulks each within it.
	c := r.raw(t)
	var b strings.Builder
	b.WriteString("*201\r\n$4\r\nMSET\r\n")
	for i := range 200 {
		v := strings.Repeat("v", 1000)
		if i%2 == 0 {
			v = strings.Repeat("k", 1000)
		}
		b.WriteString("$1000\r\n" + v + "\r\n")
	}
	c.send(b.String())
	assert.Contains(t, c.line(), "-ERR Protocol error: request too large")
	c.closed()
}

// TestOneWritePerBatch: the replies to a batch of pipelined commands go
// out in one write, so they arrive together.
func TestOneWritePerBatch(t *testing.T) {
	r := start(t, testConfig())
	c := r.raw(t)
	c.send(strings.Repeat("*1\r\n$4\r\nPING\r\n", 100))
	buf := make([]byte, 4096)
	n, err := c.nc.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat("+PONG\r\n", 100), string(buf[:n]), "one read gets every reply")
}

// TestCommandDocs: COMMAND DOCS describes the arguments, as redis-cli
// reads them for its hints.
func TestCommandDocs(t *testing.T) {
	r := start(t, testConfig())
	c := r.client(t, 3)
	res, err := c.Do(ctx, "COMMAND", "DOCS", "incr", "mset", "nope").Result()
	require.NoError(t, err)
	docs := res.(map[any]any)
	require.Len(t, docs, 2, "unknown names are left out")
	incr := docs["incr"].(map[any]any)
	assert.Equal(t, "string", incr["group"])
	assert.Equal(t, []any{map[any]any{"name": "key", "type": "key"}}, incr["arguments"])
	mset := docs["mset"].(map[any]any)["arguments"].([]any)[0].(map[any]any)
	assert.Equal(t, "block", mset["type"])
	assert.Equal(t, []any{"multiple"}, mset["flags"])
	all, err := c.Do(ctx, "COMMAND", "DOCS").Result()
	require.NoError(t, err)
	n, err := c.Do(ctx, "COMMAND", "COUNT").Int()
	require.NoError(t, err)
	assert.Len(t, all.(map[any]any), n, "every command documented")
}
