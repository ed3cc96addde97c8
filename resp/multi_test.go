package resp_test

import (
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMultiExec: queued commands answer QUEUED and run together at EXEC,
// each with its own reply.
func TestMultiExec(t *testing.T) {
	r := start(t, testConfig())
	c := r.client(t, 3)
	require.NoError(t, c.Set(ctx, "word", "abc", 0).Err())
	var get *redis.StringCmd
	var bad *redis.IntCmd
	cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "n", "10", 0)
		p.Incr(ctx, "n")
		get = p.Get(ctx, "n")
		bad = p.Incr(ctx, "word")
		p.MSet(ctx, "m1", "a", "m2", "b")
		return nil
	})
	require.Error(t, err, "the INCR of a word fails, alone")
	require.Len(t, cmds, 5)
	assert.Equal(t, "11", get.Val(), "a command sees the ones queued before it")
	assert.EqualError(t, bad.Err(), "ERR value is not an integer or out of range")
	assert.Equal(t, []any{"a", "b"}, c.MGet(ctx, "m1", "m2").Val(), "the others committed")

	raw := r.raw(t)
	raw.send("MULTI\r\nSET a 1\r\nEXEC\r\n")
	for _, want := range []string{"+OK", "+QUEUED", "*1", "+OK"} {
		assert.Equal(t, want, raw.line())
	}
	raw.send("EXEC\r\nDISCARD\r\nMULTI\r\nMULTI\r\nWATCH a\r\nDISCARD\r\n")
	for _, want := range []string{"-ERR EXEC without MULTI", "-ERR DISCARD without MULTI", "+OK",
		"-ERR MULTI calls can not be nested", "-ERR WATCH inside MULTI is not allowed", "+OK"} {
		assert.Equal(t, want, raw.line())
	}
	// A command refused while queuing aborts the whole EXEC.
	raw.send("MULTI\r\nSET a 2\r\nFROB\r\nGET\r\nEXEC\r\nGET a\r\n")
	assert.Equal(t, "+OK", raw.line())
	assert.Equal(t, "+QUEUED", raw.line())
	assert.Contains(t, raw.line(), "-ERR unknown command 'FROB'")
	assert.Equal(t, "-ERR wrong number of arguments for 'get' command", raw.line())
	assert.Equal(t, "-EXECABORT Transaction discarded because of previous errors.", raw.line())
	assert.Equal(t, "$1", raw.line())
	assert.Equal(t, "1", raw.line(), "nothing of the aborted transaction was written")
	// A policy refusal at EXEC refuses all of it.
	require.NoError(t, c.Do(ctx, "SET", "owned", "v", "SECRET", "s").Err())
	raw.send("MULTI\r\nSET a 3\r\nSET owned x\r\nEXEC\r\nGET a\r\n")
	for _, want := range []string{"+OK", "+QUEUED", "+QUEUED", "-NOPERM owned: key is owned: wrong or missing owner secret", "$1", "1"} {
		assert.Equal(t, want, raw.line())
	}
}

// TestWatch: EXEC answers a null array when a watched key was written by
// another connection, or over HTTP, since WATCH.
func TestWatch(t *testing.T) {
	r := start(t, testConfig())
	c, other := r.client(t, 3), r.client(t, 2)
	require.NoError(t, c.Set(ctx, "w", "0", 0).Err())

	for name, write := range map[string]func(){
		"redis": func() { require.NoError(t, other.Set(ctx, "w", "other", 0).Err()) },
		"http":  func() { require.Equal(t, 200, r.httpSet(t, "w", "curl")) },
	} {
		t.Run(name, func(t *testing.T) {
			err := c.Watch(ctx, func(tx *redis.Tx) error {
				write()
				_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, "w", "mine", 0)
					return nil
				})
				return err
			}, "w")
			assert.ErrorIs(t, err, redis.TxFailedErr)
			assert.NotEqual(t, "mine", c.Get(ctx, "w").Val())
		})
	}
	// Unchanged: it commits. UNWATCH forgets.
	err := c.Watch(ctx, func(tx *redis.Tx) error {
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "w", "mine", 0)
			return nil
		})
		return err
	}, "w")
	require.NoError(t, err)
	assert.Equal(t, "mine", c.Get(ctx, "w").Val())

	for proto, null := range map[int]string{2: "*-1", 3: "_"} {
		raw := r.raw(t)
		raw.send("HELLO " + strconv.Itoa(proto) + "\r\n")
		raw.send("PING\r\n")
		for raw.line() != "+PONG" {
		}
		raw.send("WATCH w missing\r\n")
		assert.Equal(t, "+OK", raw.line())
		require.NoError(t, other.Set(ctx, "missing", "now", 0).Err())
		raw.send("MULTI\r\nGET w\r\nEXEC\r\n")
		assert.Equal(t, "+OK", raw.line())
		assert.Equal(t, "+QUEUED", raw.line())
		assert.Equal(t, null, raw.line(), "RESP%d", proto)
		raw.send("WATCH w\r\nUNWATCH\r\n")
		assert.Equal(t, "+OK", raw.line())
		assert.Equal(t, "+OK", raw.line())
		require.NoError(t, other.Set(ctx, "w", "again", 0).Err())
		raw.send("MULTI\r\nGET w\r\nEXEC\r\n")
		for _, want := range []string{"+OK", "+QUEUED", "*1", "$5", "again"} {
			assert.Equal(t, want, raw.line())
		}
		require.NoError(t, other.Del(ctx, "missing").Err())
	}
}

// TestTransactionsAreAtomic: concurrent read-modify-write transactions
// lose no update, and no reader sees half of one.
func TestTransactionsAreAtomic(t *testing.T) {
	r := start(t, testConfig())
	const writers, rounds = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		c := r.client(t, 2)
		wg.Go(func() {
			for i := range rounds {
				_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Incr(ctx, "count")
					v := strconv.Itoa(w*rounds + i)
					p.Set(ctx, "pair/a", v, 0)
					p.Set(ctx, "pair/b", v, 0)
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	reader := r.client(t, 3)
	stop := make(chan struct{})
	var rg sync.WaitGroup
	rg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			var a, b *redis.StringCmd
			_, err := reader.TxPipelined(ctx, func(p redis.Pipeliner) error {
				a, b = p.Get(ctx, "pair/a"), p.Get(ctx, "pair/b")
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				errs <- err
				return
			}
			if a.Val() != b.Val() {
				errs <- errors.New("saw half a transaction: " + a.Val() + " and " + b.Val())
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Equal(t, strconv.Itoa(writers*rounds), reader.Get(ctx, "count").Val())
}

// TestMSetNX is all or nothing.
func TestMSetNX(t *testing.T) {
	r := start(t, testConfig())
	c := r.client(t, 3)
	assert.True(t, c.MSetNX(ctx, "x1", "a", "x2", "b").Val())
	assert.False(t, c.MSetNX(ctx, "x3", "c", "x2", "d").Val())
	assert.Equal(t, int64(0), c.Exists(ctx, "x3").Val())
	assert.Equal(t, "b", c.Get(ctx, "x2").Val())
	assert.ErrorContains(t, c.Do(ctx, "MSET", "a", "1", "b").Err(), "wrong number of arguments for 'mset'")
}

// TestSelectInMulti: SELECT is queued inside MULTI as in Redis, and
// answers at EXEC: OK for database 0, an error in the EXEC reply (not an
// EXECABORT) for another; the other commands still commit.
func TestSelectInMulti(t *testing.T) {
	r := start(t, testConfig())
	raw := r.raw(t)
	raw.send("MULTI\r\nSELECT 0\r\nSET sel 1\r\nSELECT 1\r\nEXEC\r\n")
	for _, want := range []string{"+OK", "+QUEUED", "+QUEUED", "+QUEUED", "*3", "+OK", "+OK",
		"-ERR DB index is out of range: rendezvous has one database, 0"} {
		assert.Equal(t, want, raw.line())
	}
	c := r.client(t, 2)
	assert.Equal(t, "1", c.Get(ctx, "sel").Val())
	var sel *redis.StatusCmd
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		sel = p.Select(ctx, 0)
		p.Incr(ctx, "sel")
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, "OK", sel.Val())
	assert.Equal(t, "2", c.Get(ctx, "sel").Val())
}
