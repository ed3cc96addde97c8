package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// The defaults of Config.WatchKeepAlive and Config.StreamWriteTimeout.
const (
	// DefaultWatchKeepAlive stays below the 30 s or 60 s idle timeouts
	// that proxies and load balancers commonly apply.
	DefaultWatchKeepAlive = 25 * time.Second
	// DefaultStreamWriteTimeout gives a slow but reading client time to
	// take a burst of events.
	DefaultStreamWriteTimeout = 10 * time.Second
)

var (
	errWaitNotFound = policy.Errorf(policy.KindNotFound, "key not found")
	errNotModified  = policy.Errorf(policy.KindNotModified, "not modified")
	errBadETag      = policy.Errorf(policy.KindBadRequest, `If-None-Match on a long-poll must be one ETag as given by GET, like "42"`)
)

// handleWatch serves GET /watch/{prefix} as a stream of server-sent events:
// every set, delete and expiry of a key starting with prefix ("" for every
// key; ?exact=1 for only the key itself), in version order. An event's id
// is its version, so a client resumes with Last-Event-ID (as EventSource
// does on its own) or ?since=VERSION. The events of one transaction share
// a version, and only the last of them carries the id: a stream cut in
// the middle of them resumes from before the transaction and gets all of
// it again, instead of resuming after it with the rest lost. A resume point the history no longer
// covers gets a "relist" event first, then the stream continues live; a
// client too slow to keep up gets an "error" event and the stream ends.
func (s *API) handleWatch(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	prefix, err := keyFrom(r, "/watch/")
	if err != nil {
		return err
	}
	var q url.Values
	if r.URL.RawQuery != "" {
		q = r.URL.Query()
	}
	exact, err := flagParam(q, "exact")
	if err != nil {
		return err
	}
	since, err := resumePoint(r, q)
	if err != nil {
		return err
	}
	wt, err := s.svc.Watch(c, prefix, since, exact)
	if err != nil {
		return err
	}
	defer wt.Close()

	rc := http.NewResponseController(w)
	// The server's timeouts are meant for requests, not for a stream that
	// lasts hours; an expired read deadline would even cancel the request
	// context. Clear both: each write below sets its own deadline.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if r.ProtoMajor == 1 {
		// The per-write deadline outlives the response; do not let it
		// reach the next request on this connection.
		h.Set("Connection", "close")
	}
	w.WriteHeader(http.StatusOK)
	st := &eventStream{w: w, rc: rc, frames: &s.frames, timeout: s.cfg.StreamWriteTimeout}
	if st.flush() != nil {
		return nil
	}
	for {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WatchKeepAlive)
		step, err := wt.Next(ctx)
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
			st.buf = append(st.buf, ": keep-alive\n\n"...)
		case err != nil:
			// The client left, or the server is shutting down: end the
			// stream cleanly.
			return nil
		case step.Kind == policy.WatchEvents:
			// A step holds a transaction's events together, so the last
			// of a version in it is the last this stream gets.
			evs := step.Events
			for i := range evs {
				st.event(&evs[i], i+1 == len(evs) || evs[i+1].Version != evs[i].Version)
			}
		case step.Kind == policy.WatchRelist:
			st.relist(step.Cursor)
		default: // policy.WatchDropped
			st.buf = append(st.buf, "event: error\ndata: {\"error\":\"too slow; events were dropped\"}\n\n"...)
			st.flush()
			return nil
		}
		if st.flush() != nil {
			return nil
		}
	}
}

// resumePoint returns the version a watch resumes after: Last-Event-ID,
// which EventSource sends on reconnecting and so is the newer, else ?since,
// else 0 (from now).
func resumePoint(r *http.Request, q url.Values) (uint64, error) {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		v, err := strconv.ParseUint(strings.TrimSpace(id), 10, 64)
		if err != nil {
			return 0, policy.Errorf(policy.KindBadRequest, "Last-Event-ID must be an event id from this server (a version number)")
		}
		return v, nil
	}
	if vs, ok := q["since"]; ok {
		v, err := strconv.ParseUint(vs[0], 10, 64)
		if err != nil {
			return 0, policy.Errorf(policy.KindBadRequest, "since must be a version number, like the id of an event")
		}
		return v, nil
	}
	return 0, nil
}

// flagParam reports whether a boolean query parameter is set: present
// with no value, 1 or true; absent, 0 or false is off.
func flagParam(q url.Values, name string) (bool, error) {
	vs, ok := q[name]
	if !ok {
		return false, nil
	}
	switch vs[0] {
	case "", "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, policy.Errorf(policy.KindBadRequest, "%s must be 1, true, 0 or false", name)
}

// eventStream formats server-sent events into buf; flush writes them.
type eventStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	buf     []byte
	json    bytes.Buffer
	enc     *json.Encoder
	frames  *frameCache
	timeout time.Duration // for each flush
}

// event appends e, with its id when it is the last event of its version
// on this stream. Its data is the entry as JSON answers show items (for a
// delete or an expiry, the entry removed) with the event's version.
func (st *eventStream) event(e *kv.Event, last bool) {
	st.buf = append(st.buf, "event: "...)
	st.buf = append(st.buf, e.Op.String()...)
	if last {
		st.buf = append(st.buf, "\nid: "...)
		st.buf = strconv.AppendUint(st.buf, e.Version, 10)
	}
	st.buf = append(st.buf, '\n')
	if d := st.frames.get(e.Version, e.Key); d != nil {
		st.buf = append(st.buf, d...)
	} else {
		start := len(st.buf)
		st.buf = append(st.buf, "data: "...)
		st.appendJSON(NewItemJSON(kv.Item{Key: e.Key, Value: e.Value, Expires: e.Expires, Version: e.Version}, false))
		st.frames.put(e.Version, e.Key, st.buf[start:])
	}
	st.buf = append(st.buf, '\n')
}

// frameCache keeps the encoded data lines of recent events. A data line
// depends only on the event, so a thousand watchers of one prefix share
// one JSON encoding instead of making a thousand: without it, encoding
// was half the CPU of a fan-out to 1000 watchers. An event is named by its
// version and its key, since a transaction's events share one version.
// Slots are picked by both and replaced without locks; a stale or missing
// slot only means encoding again.
type frameCache struct {
	slots [4096]atomic.Pointer[cachedFrame]
}

type cachedFrame struct {
	version uint64
	key     string
	data    []byte
}

// frameSeed spreads the keys of one version over the slots.
var frameSeed = maphash.MakeSeed()

func (c *frameCache) slot(version uint64, key string) *atomic.Pointer[cachedFrame] {
	return &c.slots[(version^maphash.String(frameSeed, key))%uint64(len(c.slots))]
}

func (c *frameCache) get(version uint64, key string) []byte {
	if f := c.slot(version, key).Load(); f != nil && f.version == version && f.key == key {
		return f.data
	}
	return nil
}

func (c *frameCache) put(version uint64, key string, data []byte) {
	c.slot(version, key).Store(&cachedFrame{version: version, key: key, data: bytes.Clone(data)})
}

// relist tells a resuming client that its resume point is gone: it should
// list the keys again, and the stream continues after version head.
func (st *eventStream) relist(head uint64) {
	st.buf = append(st.buf, "event: relist\nid: "...)
	st.buf = strconv.AppendUint(st.buf, head, 10)
	st.buf = append(st.buf, "\ndata: "...)
	st.appendJSON(struct {
		Reason  string `json:"reason"`
		Version uint64 `json:"version"`
	}{"history no longer covers the requested point; list again", head})
	st.buf = append(st.buf, '\n')
}

// appendJSON appends v as one line of JSON and a newline. JSON escapes
// every control character, so the data field cannot be split.
func (st *eventStream) appendJSON(v any) {
	if st.enc == nil {
		st.enc = json.NewEncoder(&st.json)
		st.enc.SetEscapeHTML(false)
	}
	st.json.Reset()
	st.enc.Encode(v) // cannot fail for these types; ends with a newline
	st.buf = append(st.buf, st.json.Bytes()...)
}

// flush writes the buffered events and pushes them to the client, within
// the stream's write timeout.
func (st *eventStream) flush() error {
	st.rc.SetWriteDeadline(time.Now().Add(st.timeout))
	if len(st.buf) > 0 {
		_, err := st.w.Write(st.buf)
		st.buf = st.buf[:0]
		if err != nil {
			return err
		}
	}
	return st.rc.Flush()
}

// wantsWait reports whether a GET asks for a long-poll (?wait=).
func wantsWait(r *http.Request) bool {
	if r.URL.RawQuery == "" {
		return false
	}
	_, ok := r.URL.Query()["wait"]
	return ok
}

// longPoll answers GET /get/{key}?wait=DURATION. Without If-None-Match it
// answers as soon as the key exists; with If-None-Match: "<version>" as
// soon as the key holds another version. The answer is the one a plain GET
// gives (the value with its ETag, or JSON). When the wait, capped by the
// server's MaxWait, runs out: 304 if the key is still at the given
// version, else 404.
func (s *API) longPoll(w http.ResponseWriter, r *http.Request, c policy.Caller, key string) error {
	wait, err := policy.ParseWait(r.URL.Query().Get("wait"))
	if err != nil {
		return err
	}
	var tag uint64
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		var ok bool
		if tag, ok = parseETag(inm); !ok {
			return errBadETag
		}
	}
	extendDeadlines(w, r, s.svc.WaitLimit(wait)+s.cfg.StreamWriteTimeout)
	it, ok, err := s.svc.WaitKey(r.Context(), c, key, tag, wait)
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the client left; nobody reads an answer
		}
		return err
	}
	if !ok {
		if tag != 0 && it.Version == tag {
			itemHeaders(w.Header(), it, false)
			return errNotModified
		}
		return errWaitNotFound
	}
	s.writeItem(w, r, it)
	return nil
}

// extendDeadlines makes room for a long-poll of wait (with the time to
// write its answer) in the server's request timeouts, where it has any: an
// expired read deadline would cancel the request, an expired write
// deadline lose the answer. A server without a timeout is left without
// one, so nothing outlives the request.
func extendDeadlines(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	if srv == nil {
		return
	}
	rc := http.NewResponseController(w)
	end := time.Now().Add(wait)
	if srv.ReadTimeout > 0 {
		rc.SetReadDeadline(end)
	}
	if srv.WriteTimeout > 0 {
		rc.SetWriteDeadline(end)
	}
}
