package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
)

// chromium returns the path of a Chromium binary, installing Debian's
// package when it is missing, as the project's test command promises.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return apt.Installed(t, "chromium", "chromium")
}

// The page a browser loads: it watches room/ with EventSource, writes two
// keys and deletes one with fetch, and reports what the stream delivered
// to the test server. Everything crosses the wire as a browser does it:
// cross-origin, so CORS is exercised too.
const eventSourcePage = `<!doctype html><meta charset="utf-8"><body><script>
const api = %q, report = %q;
const seen = [];
const es = new EventSource(api + "/watch/room/");
function done(extra) {
  es.close();
  fetch(report, {method: "POST", body: JSON.stringify({seen, extra})});
}
for (const type of ["set", "delete", "expire"]) {
  es.addEventListener(type, (e) => {
    const d = JSON.parse(e.data);
    seen.push({type, id: e.lastEventId, key: d.key, value: d.value, version: d.version});
    if (type === "delete") done("");
  });
}
es.onopen = async () => {
  await fetch(api + "/set/room/a", {method: "POST", body: "hello"});
  await fetch(api + "/set/room/b", {method: "POST", body: "wörld"});
  await fetch(api + "/set/other/x", {method: "POST", body: "not watched"});
  await fetch(api + "/del/room/a", {method: "POST"});
};
es.onerror = () => { if (es.readyState === EventSource.CLOSED) done("stream closed"); };
setTimeout(() => done("timeout"), 15000);
</script>`

func TestBrowserEventSource(t *testing.T) {
	browser := chromium(t)
	s := start(t, testConfig())

	type event struct {
		Type, ID, Key, Value string
		Version              uint64
	}
	results := make(chan []event, 1)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			var got struct {
				Seen  []event
				Extra string
			}
			b, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(b, &got); err != nil || got.Extra != "" {
				t.Errorf("page reported %q (%v)", b, err)
			}
			select {
			case results <- got.Seen:
			default:
			}
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, eventSourcePage, s.base, "http://"+r.Host+"/report")
	}))
	defer page.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	profile := t.TempDir()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir="+profile, page.URL)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	var seen []event
	select {
	case seen = <-results:
	case <-ctx.Done():
		t.Fatalf("the browser reported nothing; chromium said:\n%s", stderr.String())
	}
	require.Len(t, seen, 3, "set a, set b, delete a; other/x is outside the prefix: %+v", seen)
	assert.Equal(t, event{Type: "set", ID: fmt.Sprint(seen[0].Version), Key: "room/a", Value: "hello", Version: seen[0].Version}, seen[0])
	assert.Equal(t, "room/b", seen[1].Key)
	assert.Equal(t, "wörld", seen[1].Value, "UTF-8 survives the stream")
	assert.Equal(t, "delete", seen[2].Type)
	assert.Equal(t, "room/a", seen[2].Key)
	assert.Less(t, seen[0].Version, seen[1].Version)
	assert.Less(t, seen[1].Version, seen[2].Version, "events arrive in version order")
	assert.Equal(t, fmt.Sprint(seen[2].Version), seen[2].ID, "the SSE id is the version, so Last-Event-ID resumes")
}
