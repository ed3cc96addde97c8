package kvconnect_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/denoclient"
	"github.com/rendezvous-kv/rendezvous/server"
)

// The database UUID and the data-path token survive a restart on the same
// data, and so do tuple keys (journal and snapshot).
func TestTokenAndDatabaseSurviveRestart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "db")
	withData := func(c *server.Config) { c.Data = data }
	ts := startServer(t, withData)
	m := openMeta(t, ts.base)
	hdr := []string{"X-Denokv-Version", "3", "X-Denokv-Database-Id", m.DatabaseID}
	resp, body := post(t, m.Endpoints[0].URL+"/atomic_write", m.Token,
		pb(2, pb(1, append(key("t"), 0x15, 0x01), 2, pb(1, "tuple", 2, 3), 3, 1)), hdr...)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	fi, err := os.Stat(data + ".kvconnect")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the token key is private")
	ts.stop(t)

	ts = startServer(t, withData)
	m2 := openMeta(t, ts.base)
	assert.Equal(t, m.DatabaseID, m2.DatabaseID, "one database UUID per data directory")
	ep := ts.base + "/kv/v3"
	resp, body = post(t, ep+"/snapshot_read", m.Token, pb(1, pb(1, key("t"), 2, append(key("t"), 0xff), 3, 10)), hdr...)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the old token: %s", body)
	assert.Contains(t, string(body), "tuple", "the tuple key was kept")
	resp, list := do(t, ts.base+"/list/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, list, "and is no string key")
}

func do(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, err = bufio.NewReader(resp.Body).WriteTo(&b)
	require.NoError(t, err)
	return resp, b.String()
}

// Both real clients keep working through a restart of the server on the
// same data and port, with the data-path token they hold.
func TestClientsReconnectAfterRestart(t *testing.T) {
	c := clients(t)
	for _, script := range []string{"deno.ts", "node.mjs"} {
		t.Run(script, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "db")
			ts := startServer(t, func(c *server.Config) { c.Data = data })
			addr := ts.srv.Addr().String()
			restarted := filepath.Join(dir, "restarted")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			path, _ := filepath.Abs(filepath.Join("testdata", script))
			var cmd *exec.Cmd
			if script == "deno.ts" {
				cmd = exec.CommandContext(ctx, c.Deno, "run", "--quiet", "--no-config", "--no-lock", "--unstable-kv", "--allow-net", "--allow-env", "--allow-read", path)
			} else {
				cmd = exec.CommandContext(ctx, "node", path)
			}
			cmd.Env = append(os.Environ(), "DENO_NO_UPDATE_CHECK=1", "DENO_KV_ESM="+c.KVModule, "DENO_DIR="+filepath.Join(denoclient.Dir(), "deno-dir"),
				"CASES=restart.mjs", "BASE="+ts.base, "DENO_KV_ACCESS_TOKEN=t", "RESTARTED="+restarted)
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			lines := bufio.NewScanner(stdout)
			require.True(t, lines.Scan(), "no READY: %s", stderr.String())
			require.Equal(t, "READY", lines.Text())

			ts.stop(t)
			ts = startServer(t, func(c *server.Config) { c.Data = data; c.Addr = addr })
			require.NoError(t, os.WriteFile(restarted, nil, 0o644))
			var out strings.Builder
			for lines.Scan() {
				out.WriteString(lines.Text() + "\n")
			}
			require.NoError(t, cmd.Wait(), "%s\n%s", out.String(), stderr.String())
			assert.Contains(t, out.String(), "ok restart")
			assert.Contains(t, out.String(), "done")
		})
	}
}
