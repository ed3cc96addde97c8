package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

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

// sseEvent is one server-sent event as a client parses it.
type sseEvent struct {
	Name, ID, Data string
}

// watch opens /watch/<prefix> and returns a function that reads the next
// n events (keep-alives skipped), failing the test after 10 s.
func (r *running) watch(t *testing.T, prefix string, hdr ...string) func(n int) []sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", r.base+"/watch/"+prefix, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	br := bufio.NewReader(resp.Body)
	return func(n int) []sseEvent {
		t.Helper()
		var evs []sseEvent
		var ev sseEvent
		for len(evs) < n {
			line, err := br.ReadString('\n')
			require.NoError(t, err, "after %d events", len(evs))
			line = strings.TrimSuffix(line, "\n")
			field, value, _ := strings.Cut(line, ": ")
			switch {
			case line == "" && ev != (sseEvent{}):
				evs = append(evs, ev)
				ev = sseEvent{}
			case field == "event":
				ev.Name = value
			case field == "id":
				ev.ID = value
			case field == "data":
				ev.Data = value
			}
		}
		return evs
	}
}

// eventItem is an event's data.
type eventItem struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version uint64 `json:"version"`
}

func decodeEvent(t *testing.T, ev sseEvent) eventItem {
	t.Helper()
	var it eventItem
	require.NoError(t, json.Unmarshal([]byte(ev.Data), &it), ev.Data)
	return it
}

// A watcher gets each of a transaction's events with its own key and
// value and the commit's one version; only the last carries the id, so a
// stream cut inside the transaction resumes before it, not after it.
func TestTxnEventsReachWatchers(t *testing.T) {
	s := start(t, testConfig())
	resp, _ := do(t, "POST", s.base+"/set/tx/c", "doomed")
	require.Equal(t, 200, resp.StatusCode)
	before := s.etagOf(t, "tx/c")
	all := s.watch(t, "tx/")
	onlyB := s.watch(t, "tx/b")

	status, a := s.txnJSON(t, `{"ops": [{"op": "set", "key": "tx/a", "value": "1"},
		{"op": "set", "key": "tx/b", "value": "2"}, {"op": "delete", "key": "tx/c"}]}`)
	require.Equal(t, 200, status, "%+v", a)
	resp, _ = do(t, "POST", s.base+"/set/tx/d", "after")
	require.Equal(t, 200, resp.StatusCode)
	after := s.etagOf(t, "tx/d")

	check := func(evs []sseEvent) {
		t.Helper()
		want := []struct{ name, key, value string }{
			{"set", "tx/a", "1"}, {"set", "tx/b", "2"}, {"delete", "tx/c", "doomed"}, {"set", "tx/d", "after"},
		}
		require.Len(t, evs, len(want))
		for i, w := range want {
			it := decodeEvent(t, evs[i])
			assert.Equal(t, w.name, evs[i].Name, "event %d", i)
			assert.Equal(t, w.key, it.Key, "event %d has its own key", i)
			assert.Equal(t, w.value, it.Value, "event %d has its own value", i)
			if i < 3 {
				assert.Equal(t, a.Version, it.Version, "event %d has the commit's version", i)
			}
		}
		assert.Equal(t, []string{"", "", strconv.FormatUint(a.Version, 10), strconv.FormatUint(after, 10)},
			[]string{evs[0].ID, evs[1].ID, evs[2].ID, evs[3].ID}, "one id per version, on its last event")
	}
	check(all(4))

	b := onlyB(1)[0]
	assert.Equal(t, "tx/b", decodeEvent(t, b).Key)
	assert.Equal(t, strconv.FormatUint(a.Version, 10), b.ID, "the last of the version this stream gets")

	// A client whose stream broke after tx/a resumes from the last id it
	// saw, before the transaction, and gets the whole of it again.
	check(s.watch(t, "tx/", "Last-Event-ID", strconv.FormatUint(before, 10))(4))
}

// A long-poll waiting for a key is answered by the transaction that
// creates it, with the commit's version as its ETag.
func TestTxnAnswersLongPoll(t *testing.T) {
	s := start(t, testConfig())
	type answer struct {
		status int
		body   string
		etag   string
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := client.Get(s.base + "/get/lp/k?wait=10s")
		if err != nil {
			got <- answer{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, string(b), resp.Header.Get("ETag")}
	}()
	// The long-poll subscribes before it reads the key, so a commit after
	// its subscription wakes it; wait until the feed has the subscriber.
	require.Eventually(t, func() bool { return strings.Contains(s.metrics(t), "rendezvous_watchers 1") }, 5*time.Second, 10*time.Millisecond)
	status, a := s.txnJSON(t, `{"ops": [{"op": "set", "key": "lp/other", "value": "o"}, {"op": "set", "key": "lp/k", "value": "v"}]}`)
	require.Equal(t, 200, status)
	select {
	case ans := <-got:
		assert.Equal(t, 200, ans.status, ans.body)
		assert.Equal(t, "v", ans.body)
		assert.Equal(t, `"`+strconv.FormatUint(a.Version, 10)+`"`, ans.etag)
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll was not answered")
	}
}

func (r *running) metrics(t *testing.T) string {
	t.Helper()
	_, body := do(t, "GET", r.base+"/metrics", "")
	return body
}
