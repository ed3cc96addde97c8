package handlers_test

// These tests run over real connections (httptest listens on 127.0.0.1,
// with the timeouts and socket buffers a test needs) to the API of a
// server started through server.New, with a small server-sent-events
// client written here.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/handlers"
	"github.com/rendezvous-kv/rendezvous/internal/fakeclock"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/server"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

var wT0 = time.Unix(1_700_000_000, 0)

// wEnv is a server, started through server.New, behind a real listener
// that trusts the loopback peer's X-Forwarded-For.
type wEnv struct {
	t      *testing.T
	svc    *policy.Service
	store  *ttlstore.Store
	feed   *feed.Feed
	clock  *fakeclock.Clock
	ts     *httptest.Server
	tr     *http.Transport
	client *http.Client
}

type wOpts struct {
	// feed sets the watcher caps (MaxWatchers, MaxWatchersPerIP,
	// MaxWatchersPerNet) and WatchHistory; zero fields keep the
	// defaults.
	feed feed.Options
	// serverTimeout is the http.Server's ReadTimeout and WriteTimeout:
	// streams and long-polls must outlive it.
	serverTimeout time.Duration
	// smallBuffers shrinks the socket buffers on both sides, so that a
	// client that does not read blocks the server quickly.
	smallBuffers bool
	// keepAlive and writeTimeout are Config.WatchKeepAlive and
	// Config.StreamWriteTimeout (0: the defaults).
	keepAlive, writeTimeout time.Duration
}

func newWEnv(t *testing.T, o wOpts) *wEnv {
	t.Helper()
	clk := fakeclock.New(wT0)
	cfg := server.DefaultConfig()
	cfg.Addr, cfg.Data, cfg.RateOff, cfg.Now = "127.0.0.1:0", "", true, clk.Now
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	cfg.WatchKeepAlive, cfg.StreamWriteTimeout = o.keepAlive, o.writeTimeout
	cfg.WatchHistory = o.feed.History
	for _, c := range []struct {
		dst *int
		v   int
	}{{&cfg.MaxWatchersPerIP, o.feed.MaxPerClient}, {&cfg.MaxWatchersPerNet, o.feed.MaxPerNetwork}, {&cfg.MaxWatchers, o.feed.MaxTotal}} {
		if c.v > 0 {
			*c.dst = c.v
		}
	}
	srv, err := server.New(cfg)
	require.NoError(t, err)
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config.ReadTimeout, ts.Config.WriteTimeout = o.serverTimeout, o.serverTimeout
	dialer := &net.Dialer{}
	tr := &http.Transport{DialContext: dialer.DialContext}
	if o.smallBuffers {
		ts.Listener = smallBufListener{ts.Listener}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				c.(*net.TCPConn).SetReadBuffer(4096)
			}
			return c, err
		}
	}
	ts.Start()
	in := srv.Internals()
	e := &wEnv{t: t, svc: srv.Service(), store: in.Store, feed: in.Feed, clock: clk, ts: ts, tr: tr, client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		srv.Close() // ends the streams, so ts.Close need not wait for them
		tr.CloseIdleConnections()
		ts.Close()
	})
	return e
}

type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		c.(*net.TCPConn).SetWriteBuffer(4096)
	}
	return c, err
}

type wResp struct {
	status int
	header http.Header
	body   string
}

// do sends a request and reads the whole answer. header is name, value
// pairs.
func (e *wEnv) do(client *http.Client, method, path, body string, header ...string) wResp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	require.NoError(e.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return wResp{resp.StatusCode, resp.Header, string(b)}
}

func (e *wEnv) get(path string, header ...string) wResp {
	e.t.Helper()
	return e.do(e.client, http.MethodGet, path, "", header...)
}

// set writes key over HTTP and returns the version it got.
func (e *wEnv) set(key, value string) uint64 {
	e.t.Helper()
	r := e.do(e.client, http.MethodPost, "/set/"+key, value)
	require.Equal(e.t, http.StatusOK, r.status, r.body)
	v, err := strconv.ParseUint(strings.Trim(r.header.Get("ETag"), `"`), 10, 64)
	require.NoError(e.t, err)
	return v
}

// sseEvent is one server-sent event, or a comment line (keep-alive).
type sseEvent struct {
	Name, ID, Data string
	Comment        bool
}

// sseStream reads a text/event-stream response.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent // closed at the end of the stream
	err    error         // why it ended; set before events is closed
}

// watch opens a stream and starts reading it.
func (e *wEnv) watch(path string, header ...string) *sseStream {
	e.t.Helper()
	st := e.watchPaused(path, header...)
	st.start()
	return st
}

// watchPaused opens a stream without reading it.
func (e *wEnv) watchPaused(path string, header ...string) *sseStream {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	require.NoError(e.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e.t.Fatalf("watch %s: %d %s", path, resp.StatusCode, b)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return &sseStream{t: e.t, resp: resp, events: make(chan sseEvent, 100000)}
}

func (st *sseStream) start() { go st.read() }

func (st *sseStream) read() {
	br := bufio.NewReader(st.resp.Body)
	var ev sseEvent
	has := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			st.err = err
			close(st.events)
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if has {
				st.events <- ev
			}
			ev, has = sseEvent{}, false
		case strings.HasPrefix(line, ":"):
			ev.Comment, has = true, true
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				ev.Name = value
			case "id":
				ev.ID = value
			case "data":
				ev.Data = value
			}
			has = true
		}
	}
}

// nextAny returns the next event or comment.
func (st *sseStream) nextAny() sseEvent {
	st.t.Helper()
	select {
	case ev, ok := <-st.events:
		if !ok {
			st.t.Fatalf("stream ended: %v", st.err)
		}
		return ev
	case <-time.After(5 * time.Second):
		st.t.Fatal("no event within 5s")
	}
	return sseEvent{}
}

// next returns the next event, skipping keep-alives.
func (st *sseStream) next() sseEvent {
	st.t.Helper()
	for {
		if ev := st.nextAny(); !ev.Comment {
			return ev
		}
	}
}

// end waits for the stream to end and returns the events left in it and
// the reason it ended (io.EOF for a clean end).
func (st *sseStream) end() ([]sseEvent, error) {
	st.t.Helper()
	var rest []sseEvent
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-st.events:
			if !ok {
				return rest, st.err
			}
			if !ev.Comment {
				rest = append(rest, ev)
			}
		case <-timeout:
			st.t.Fatal("stream did not end within 10s")
		}
	}
}

func (st *sseStream) close() { st.resp.Body.Close() }

// item decodes an event's data.
func item(t *testing.T, ev sseEvent) handlers.ItemJSON {
	t.Helper()
	var it handlers.ItemJSON
	require.NoError(t, json.Unmarshal([]byte(ev.Data), &it), ev.Data)
	assert.Equal(t, ev.ID, strconv.FormatUint(it.Version, 10), "the id is the version")
	return it
}

func TestWatchStreamsSetDeleteExpireInOrder(t *testing.T) {
	e := newWEnv(t, wOpts{})
	st := e.watch("/watch/app/")
	h := st.resp.Header
	assert.Equal(t, "text/event-stream", h.Get("Content-Type"))
	assert.Equal(t, "no-cache", h.Get("Cache-Control"))
	assert.Equal(t, "no", h.Get("X-Accel-Buffering"))
	assert.Equal(t, "127.0.0.1", h.Get("X-Client-Ip"))

	e.set("other/x", "not watched")
	r := e.do(e.client, http.MethodPost, "/set/app/a?ttl=60", "line one\n\"two\" <&>")
	require.Equal(t, http.StatusOK, r.status)
	vBin := e.set("app/bin", "\xff\x00\x01")
	r = e.do(e.client, http.MethodPost, "/del/app/a", "")
	require.Equal(t, http.StatusOK, r.status)
	e.set("app/a0", "x")
	r = e.do(e.client, http.MethodPost, "/set/app/short?ttl=1", "brief")
	require.Equal(t, http.StatusOK, r.status)
	e.clock.Advance(2 * time.Second)
	require.Equal(t, 1, e.store.Reap(e.clock.Now(), 100))

	var evs []sseEvent
	for range 6 {
		evs = append(evs, st.next())
	}
	names := make([]string, len(evs))
	last := uint64(0)
	for i, ev := range evs {
		names[i] = ev.Name
		v, err := strconv.ParseUint(ev.ID, 10, 64)
		require.NoError(t, err)
		assert.Greater(t, v, last, "version order")
		last = v
	}
	assert.Equal(t, []string{"set", "set", "delete", "set", "set", "expire"}, names)

	a := item(t, evs[0])
	assert.Equal(t, "app/a", a.Key)
	assert.Equal(t, "line one\n\"two\" <&>", a.Value)
	assert.Empty(t, a.ValueEncoding)
	assert.Equal(t, wT0.Unix()+60, a.ExpiresAt)
	assert.NotContains(t, evs[0].Data, `\u003c`, "no HTML escaping")

	bin := item(t, evs[1])
	assert.Equal(t, vBin, bin.Version)
	assert.Equal(t, "base64", bin.ValueEncoding)
	assert.Equal(t, "/wAB", bin.Value)
	assert.Nil(t, bin.Owned)

	del := item(t, evs[2])
	assert.Equal(t, "app/a", del.Key)
	assert.Equal(t, "line one\n\"two\" <&>", del.Value, "a delete carries the removed value")

	exp := item(t, evs[5])
	assert.Equal(t, "app/short", exp.Key)
	assert.Equal(t, "brief", exp.Value)
	assert.Equal(t, wT0.Unix()+1, exp.ExpiresAt)
}

func TestWatchExactAndPrefixBoundaries(t *testing.T) {
	e := newWEnv(t, wOpts{})
	exact := e.watch("/watch/a?exact=1")
	slash := e.watch("/watch/a/")
	for _, k := range []string{"a0", "a/b", "ab", "a"} {
		e.set(k, "v")
	}
	assert.Equal(t, "a", item(t, exact.next()).Key)
	assert.Equal(t, "a/b", item(t, slash.next()).Key)
	e.set("a/end", "v")
	assert.Equal(t, "a/end", item(t, slash.next()).Key, `"a/" did not match "a0" or "ab"`)
}

func TestWatchKeepAliveOutlivesServerTimeouts(t *testing.T) {
	e := newWEnv(t, wOpts{serverTimeout: 200 * time.Millisecond, keepAlive: 50 * time.Millisecond})
	st := e.watch("/watch/")
	comments := 0
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		ev := st.nextAny()
		require.True(t, ev.Comment, "only keep-alives while idle, got %+v", ev)
		comments++
	}
	assert.GreaterOrEqual(t, comments, 3)
	// Past the server's read and write timeouts, the stream still works.
	v := e.set("k", "v")
	assert.Equal(t, v, item(t, st.next()).Version)
}

func TestWatchResume(t *testing.T) {
	e := newWEnv(t, wOpts{})
	st := e.watch("/watch/")
	e.set("k1", "v")
	e.set("k2", "v")
	st.next()
	seen := st.next()
	st.close()

	var missed []uint64
	for i := range 3 {
		missed = append(missed, e.set(fmt.Sprint("m", i), "v"))
	}
	re := e.watch("/watch/", "Last-Event-ID", seen.ID)
	for _, v := range missed {
		assert.Equal(t, v, item(t, re.next()).Version)
	}
	live := e.set("live", "v")
	assert.Equal(t, live, item(t, re.next()).Version, "exactly the missed events, then live ones")

	since := e.watch(fmt.Sprintf("/watch/?since=%d", missed[1]))
	assert.Equal(t, missed[2], item(t, since.next()).Version)
	assert.Equal(t, live, item(t, since.next()).Version)

	// Last-Event-ID, sent by EventSource on reconnect, beats ?since.
	both := e.watch("/watch/?since=1", "Last-Event-ID", strconv.FormatUint(missed[2], 10))
	assert.Equal(t, live, item(t, both.next()).Version)
	assert.Zero(t, e.feed.Dropped())
}

func TestWatchTooOldResumeGetsRelist(t *testing.T) {
	e := newWEnv(t, wOpts{feed: feed.Options{History: 4}})
	var head uint64
	for i := range 10 {
		head = e.set(fmt.Sprint("k", i), "v")
	}
	for _, hdr := range [][]string{
		{},                          // ?since=1 below
		{"Last-Event-ID", "999999"}, // from another incarnation
	} {
		st := e.watch("/watch/?since=1", hdr...)
		ev := st.next()
		assert.Equal(t, "relist", ev.Name)
		assert.Equal(t, strconv.FormatUint(head, 10), ev.ID)
		var d struct {
			Reason  string `json:"reason"`
			Version uint64 `json:"version"`
		}
		require.NoError(t, json.Unmarshal([]byte(ev.Data), &d))
		assert.Equal(t, "history no longer covers the requested point; list again", d.Reason)
		assert.Equal(t, head, d.Version)
		head = e.set("after", "v")
		ev = st.next()
		assert.Equal(t, "set", ev.Name, "then it continues live")
		assert.Equal(t, head, item(t, ev).Version)
		st.close()
	}
	assert.Zero(t, e.feed.Dropped(), "a relist is not a drop")
}

// A subscriber that stops reading must not slow writers down, and is
// dropped: by the write deadline when it never reads again, by an error
// event when it comes back after events it missed left the history.
func TestWatchSlowSubscriberIsDroppedWithoutSlowingWriters(t *testing.T) {
	value := []byte(strings.Repeat("v", 500))
	caller := policy.Caller{IP: netip.MustParseAddr("198.51.100.9")}
	const n = 2000
	writeN := func(e *wEnv) time.Duration {
		start := time.Now()
		for i := range n {
			_, err := e.svc.Write(caller, policy.OpSet, policy.WriteRequest{Key: fmt.Sprint("load/", i%50), Value: value})
			require.NoError(t, err)
		}
		return time.Since(start)
	}
	rate := func(d time.Duration) int { return int(float64(n) / d.Seconds()) }

	// Stuck: never reads at all.
	e := newWEnv(t, wOpts{feed: feed.Options{History: 64}, smallBuffers: true, writeTimeout: 500 * time.Millisecond})
	alone := writeN(e)
	stuck := e.watchPaused("/watch/")
	require.Eventually(t, func() bool { return e.feed.Active() == 1 }, 5*time.Second, time.Millisecond)
	withStuck := writeN(e)
	t.Logf("%d writes: %v (%d/s) without a subscriber, %v (%d/s) with a stuck one",
		n, alone, rate(alone), withStuck, rate(withStuck))
	assert.Less(t, withStuck, 20*time.Second, "a stuck subscriber must not stop writes")
	// Overrun while its writes still fitted in socket buffers, it got
	// ErrBehind; blocked on a full buffer, it hit the write deadline.
	// Either way the server gives up on it.
	require.Eventually(t, func() bool { return e.feed.Active() == 0 }, 10*time.Second, 5*time.Millisecond,
		"the server gives up on a client that stopped reading")
	stuck.close()

	// Slow: stops reading while the writer overruns the history, then
	// reads again and is told it missed events. The default write
	// timeout outlasts the pause, so only falling behind ends the stream.
	e = newWEnv(t, wOpts{feed: feed.Options{History: 64}, smallBuffers: true})
	slow := e.watchPaused("/watch/")
	require.Eventually(t, func() bool { return e.feed.Active() == 1 }, 5*time.Second, time.Millisecond)
	writeN(e)
	slow.start()
	rest, err := slow.end()
	assert.ErrorIs(t, err, io.EOF, "the stream ends cleanly")
	require.NotEmpty(t, rest)
	last := rest[len(rest)-1]
	assert.Equal(t, "error", last.Name)
	assert.JSONEq(t, `{"error":"too slow; events were dropped"}`, last.Data)
	assert.Less(t, len(rest)-1, n, "it got some events, not all")
	assert.Equal(t, uint64(1), e.feed.Dropped())
	require.Eventually(t, func() bool { return e.feed.Active() == 0 }, 5*time.Second, time.Millisecond)
}

// A client that stops reading while its stream is blocked on a full
// socket buffer is cut off by the write deadline, even when it never falls
// out of the history.
func TestWatchWriteDeadlineFreesStuckStream(t *testing.T) {
	e := newWEnv(t, wOpts{feed: feed.Options{History: 100000}, smallBuffers: true, writeTimeout: 300 * time.Millisecond})
	stuck := e.watchPaused("/watch/")
	defer stuck.close()
	require.Eventually(t, func() bool { return e.feed.Active() == 1 }, 5*time.Second, time.Millisecond)
	value := []byte(strings.Repeat("v", 1000))
	for i := range 4000 { // 4 MB of events, far beyond any socket buffer
		_, err := e.svc.Write(policy.Caller{}, policy.OpSet, policy.WriteRequest{Key: fmt.Sprint("k", i), Value: value})
		require.NoError(t, err)
	}
	start := time.Now()
	require.Eventually(t, func() bool { return e.feed.Active() == 0 }, 10*time.Second, 5*time.Millisecond)
	t.Logf("stuck stream released %v after the last write", time.Since(start))
	assert.Zero(t, e.feed.Dropped(), "released by the deadline, not by falling behind")
}

func TestWatchCaps(t *testing.T) {
	e := newWEnv(t, wOpts{feed: feed.Options{MaxPerClient: 2, MaxTotal: 5}})
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	a1 := e.watch("/watch/", from("198.51.100.1")...)
	e.watch("/watch/x", from("198.51.100.1")...)
	r := e.get("/watch/", from("198.51.100.1")...)
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Contains(t, r.body, "at most 2")
	assert.Empty(t, r.header.Get("Retry-After"))

	// IPv6 is grouped by /64.
	e.watch("/watch/", from("2001:db8::1")...)
	e.watch("/watch/", from("2001:db8::2")...)
	r = e.get("/watch/", from("2001:db8::3")...)
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Contains(t, r.body, "at most 2")

	e.watch("/watch/", from("198.51.100.2")...)
	r = e.get("/watch/", from("203.0.113.3")...)
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Contains(t, r.body, "retry later")

	// A client leaving frees its place.
	a1.close()
	require.Eventually(t, func() bool { return e.feed.Active() == 4 }, 5*time.Second, time.Millisecond)
	e.watch("/watch/", from("203.0.113.3")...)
}

// One allocation of many client groups (an IPv6 /48 of /64s, an IPv4 /24
// of addresses) fills its own network's cap, not the server's: watches
// and long-polls from elsewhere still get in.
func TestWatchCapsPerNetwork(t *testing.T) {
	e := newWEnv(t, wOpts{feed: feed.Options{MaxPerClient: 2, MaxPerNetwork: 4, MaxTotal: 20}})
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	for _, ip := range []string{"2001:db8:1:0::1", "2001:db8:1:1::1"} {
		e.watch("/watch/", from(ip)...)
		e.watch("/watch/", from(ip)...)
	}
	// Refusals come at once; a stream let in by mistake ends the test
	// with a time-out instead of holding it.
	bounded := &http.Client{Transport: e.tr, Timeout: 3 * time.Second}
	for _, path := range []string{"/watch/", "/get/k?wait=5s"} {
		r := e.do(bounded, http.MethodGet, path, "", from("2001:db8:1:2::1")...)
		assert.Equal(t, http.StatusTooManyRequests, r.status, path)
		assert.Contains(t, r.body, "from your network", path)
		assert.Contains(t, r.body, "at most 4", path)
	}
	e.watch("/watch/", from("2001:db8:2::1")...)

	e.watch("/watch/", from("198.51.100.1")...)
	e.watch("/watch/", from("198.51.100.1")...)
	e.watch("/watch/", from("198.51.100.2")...)
	e.watch("/watch/", from("198.51.100.3")...)
	r := e.do(bounded, http.MethodGet, "/watch/", "", from("198.51.100.200")...)
	assert.Equal(t, http.StatusTooManyRequests, r.status, "IPv4 is grouped by /24")
	assert.Contains(t, r.body, "from your network")
	e.watch("/watch/", from("198.51.101.1")...)
	assert.Equal(t, 10, e.feed.Active())
}

func TestWatchFeedCloseEndsStreamsCleanly(t *testing.T) {
	e := newWEnv(t, wOpts{})
	s1 := e.watch("/watch/")
	s2 := e.watch("/watch/k?exact=1")
	v := e.set("k", "v")
	assert.Equal(t, v, item(t, s1.next()).Version)
	e.feed.Close()
	rest, err := s1.end()
	assert.ErrorIs(t, err, io.EOF, "a clean end, not a cut connection")
	assert.Empty(t, rest)
	rest, err = s2.end()
	assert.ErrorIs(t, err, io.EOF)
	require.Len(t, rest, 1, "s2 had not read its event yet")
	assert.Equal(t, v, item(t, rest[0]).Version)
	r := e.get("/watch/")
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Zero(t, e.feed.Active())
}

func TestWatchBadRequests(t *testing.T) {
	e := newWEnv(t, wOpts{})
	for _, c := range []struct {
		path   string
		header []string
		msg    string
	}{
		{"/watch/a%00b", nil, "control character"},
		{"/watch/", []string{"Last-Event-ID", "abc"}, "Last-Event-ID"},
		{"/watch/?since=-1", nil, "since"},
		{"/watch/a?exact=maybe", nil, "exact"},
		{"/watch/?exact=1", nil, "empty"},
	} {
		r := e.get(c.path, c.header...)
		assert.Equal(t, http.StatusBadRequest, r.status, c.path)
		assert.Contains(t, r.body, c.msg, c.path)
		assert.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/plain"))
	}
	assert.Zero(t, e.feed.Active())
}

func TestLongPollAnswersSoonAfterTheWrite(t *testing.T) {
	e := newWEnv(t, wOpts{serverTimeout: 200 * time.Millisecond})
	v1 := e.set("k", "v1")
	type answer struct {
		r  wResp
		at time.Time
	}
	done := make(chan answer, 1)
	go func() {
		r := e.do(e.client, http.MethodGet, "/get/k?wait=5s", "", "If-None-Match", etag(v1))
		done <- answer{r, time.Now()}
	}()
	require.Eventually(t, func() bool { return e.feed.Active() == 1 }, 5*time.Second, time.Millisecond)
	// Outlast the server's read and write timeouts before answering.
	time.Sleep(300 * time.Millisecond)
	written := time.Now()
	v2 := e.set("k", "v2")
	a := <-done
	latency := a.at.Sub(written)
	t.Logf("long-poll answered %v after the write started (the write's own round trip included)", latency)
	assert.Less(t, latency, 500*time.Millisecond)
	assert.Equal(t, http.StatusOK, a.r.status, a.r.body)
	assert.Equal(t, "v2", a.r.body)
	assert.Equal(t, etag(v2), a.r.header.Get("ETag"))
	assert.Equal(t, "application/octet-stream", a.r.header.Get("Content-Type"))
	assert.Equal(t, strconv.FormatInt(wT0.Add(2*time.Hour).Unix(), 10), a.r.header.Get("X-Expires-At"))

	// Without If-None-Match a long-poll on an absent key waits for it.
	go func() {
		r := e.do(e.client, http.MethodGet, "/get/new?wait=5s&format=json", "")
		done <- answer{r, time.Now()}
	}()
	require.Eventually(t, func() bool { return e.feed.Active() == 1 }, 5*time.Second, time.Millisecond)
	vn := e.set("new", "hello")
	a = <-done
	assert.Equal(t, http.StatusOK, a.r.status)
	var got handlers.ItemJSON
	require.NoError(t, json.Unmarshal([]byte(a.r.body), &got))
	assert.Equal(t, "hello", got.Value)
	assert.Equal(t, vn, got.Version)
	assert.Equal(t, etag(vn), a.r.header.Get("ETag"))
}

func TestLongPollTimesOut(t *testing.T) {
	e := newWEnv(t, wOpts{})
	start := time.Now()
	r := e.get("/get/absent?wait=100ms")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "key not found\n", r.body)
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

	v := e.set("k", "v")
	start = time.Now()
	r = e.get("/get/k?wait=100ms", "If-None-Match", etag(v))
	assert.Equal(t, http.StatusNotModified, r.status)
	assert.Empty(t, r.body)
	assert.Equal(t, etag(v), r.header.Get("ETag"))
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

	// A stale ETag, or none, answers at once.
	start = time.Now()
	r = e.get("/get/k?wait=10", "If-None-Match", etag(v+1000))
	assert.Equal(t, http.StatusOK, r.status)
	r = e.get("/get/k?wait=10s")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "v", r.body)
	r = e.do(e.client, http.MethodHead, "/get/k?wait=10s", "")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.body)
	assert.Less(t, time.Since(start), 5*time.Second)

	for _, c := range []struct {
		path, inm, msg string
	}{
		{"/get/k?wait=soon", "", "wait"},
		{"/get/k?wait=-1s", "", "wait"},
		{"/get/k?wait=1s", `W/"1"`, "If-None-Match"},
		{"/get/k?wait=1s", "*", "If-None-Match"},
		{"/get/a%00?wait=1s", "", "control character"},
	} {
		var hdr []string
		if c.inm != "" {
			hdr = []string{"If-None-Match", c.inm}
		}
		r := e.get(c.path, hdr...)
		assert.Equal(t, http.StatusBadRequest, r.status, c.path)
		assert.Contains(t, r.body, c.msg)
	}
	assert.Zero(t, e.feed.Active())
}

// A flood of long-polls from one address: MaxPerClient wait, the others
// are refused at once, and nothing is left running afterwards.
func TestLongPollFloodFromOneAddress(t *testing.T) {
	e := newWEnv(t, wOpts{})
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	flood := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	baseline := runtime.NumGoroutine()

	const n = 50
	type answer struct {
		status int
		took   time.Duration
	}
	answers := make(chan answer, n)
	for range n {
		go func() {
			start := time.Now()
			r := e.do(flood, http.MethodGet, "/get/flood?wait=10s", "")
			answers <- answer{r.status, time.Since(start)}
		}()
	}
	perClient := e.feed.Limits().PerClient
	refused := 0
	for range n - perClient {
		a := <-answers
		require.Equal(t, http.StatusTooManyRequests, a.status)
		assert.Less(t, a.took, 2*time.Second, "refused at once, not after waiting")
		refused++
	}
	require.Eventually(t, func() bool { return e.feed.Active() == perClient }, 5*time.Second, time.Millisecond)
	e.set("flood", "v")
	for range perClient {
		a := <-answers
		assert.Equal(t, http.StatusOK, a.status, "the admitted ones are answered by the write")
	}
	assert.Equal(t, n-perClient, refused)
	assert.Zero(t, e.feed.Active())

	tr.CloseIdleConnections()
	e.tr.CloseIdleConnections()
	// Polled by hand: assert.Eventually runs its condition in goroutines
	// of its own.
	after := runtime.NumGoroutine()
	for end := time.Now().Add(5 * time.Second); after > baseline && time.Now().Before(end); after = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("goroutines: baseline %d, after the flood %d", baseline, after)
	assert.LessOrEqual(t, after, baseline)
}

// etag is the ETag the API promises for a version: the decimal version in
// double quotes. Written out here rather than taken from the handlers, so
// a change of format fails the tests.
func etag(version uint64) string {
	return `"` + strconv.FormatUint(version, 10) + `"`
}
