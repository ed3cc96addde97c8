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

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/denoclient"
	"github.com/rendezvous-kv/rendezvous/server"
)

// withTokenFile starts a server whose token file holds lines, and returns
// it with the file's path.
func withTokenFile(t *testing.T, lines ...string) (*testServer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	return startServer(t, func(c *server.Config) { c.AuthFile = path }), path
}

// clientCommand is the command that runs testdata/<script> with the
// client it is for, with env added.
func clientCommand(t *testing.T, ctx context.Context, script string, env ...string) *exec.Cmd {
	t.Helper()
	c := clients(t)
	path, err := filepath.Abs(filepath.Join("testdata", script))
	require.NoError(t, err)
	var cmd *exec.Cmd
	if strings.HasSuffix(script, ".ts") {
		cmd = exec.CommandContext(ctx, c.Deno, "run", "--quiet", "--no-config", "--no-lock", "--unstable-kv",
			"--allow-net", "--allow-env", "--allow-read", path)
	} else {
		cmd = exec.CommandContext(ctx, "node", path)
	}
	cmd.Env = append(os.Environ(), "DENO_NO_UPDATE_CHECK=1", "DENO_KV_ESM="+c.KVModule, "DENO_DIR="+filepath.Join(denoclient.Dir(), "deno-dir"))
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// A token the token file does not hold makes openKv fail in both
// clients, with the server's 401 and its reason.
func TestUnknownTokenFailsOpen(t *testing.T) {
	ts, _ := withTokenFile(t, "tok-team team rw:team/")
	for _, script := range []string{"deno.ts", "node.mjs"} {
		t.Run(script, func(t *testing.T) {
			out, err := tryClient(t, script, "CASES=badtoken.mjs", "BASE="+ts.base, "DENO_KV_ACCESS_TOKEN=tok-wrong")
			require.Error(t, err, out)
			require.Contains(t, out, "401")
			require.Contains(t, out, "invalid token: the server refused the access token")
			require.NotContains(t, out, "opened with a refused token")
		})
	}
}

// An identity granted rw:team/ writes ["team", "x"] and ["team/x"] and is
// refused every other key with a 403 both clients show, through the
// token file and through a JWT.
func TestGrantsOnDenoKeys(t *testing.T) {
	ts, _ := withTokenFile(t, "tok-team team rw:team/", "tok-admin admin rw:")
	secret := []byte(strings.Repeat("s", 32))
	secretFile := filepath.Join(t.TempDir(), "jwt")
	require.NoError(t, os.WriteFile(secretFile, secret, 0o600))
	jts := startServer(t, func(c *server.Config) { c.JWTSecretFile = secretFile })
	jwtToken, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "jay", "grants": []string{"rw:team/"}, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	require.NoError(t, err)

	for _, script := range []string{"deno.ts", "node.mjs"} {
		t.Run(script+"/token-file", func(t *testing.T) {
			out := runClient(t, script, "CASES=grants.mjs", "BASE="+ts.base, "DENO_KV_ACCESS_TOKEN=tok-team")
			require.Contains(t, out, "ok grants", out)
			require.Contains(t, out, "no permission to write this key", out)
			t.Log(out)
			// What the team wrote is there for curl, under the rules of
			// the token that wrote it.
			req, _ := http.NewRequest(http.MethodGet, ts.base+"/get/team/x", nil)
			req.Header.Set("Authorization", "Bearer tok-admin")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
		})
		t.Run(script+"/jwt", func(t *testing.T) {
			out := runClient(t, script, "CASES=grants.mjs", "BASE="+jts.base, "DENO_KV_ACCESS_TOKEN="+jwtToken)
			require.Contains(t, out, "ok grants", out)
		})
	}
}

// A token removed from the token file while a client has the database
// open stops working on the data path at the next call after the reload,
// in both clients.
func TestRevokedTokenFailsNextCall(t *testing.T) {
	for _, script := range []string{"deno.ts", "node.mjs"} {
		t.Run(script, func(t *testing.T) {
			ts, path := withTokenFile(t, "tok-gone gone rw:", "tok-stays stays rw:")
			revoked := filepath.Join(t.TempDir(), "revoked")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := clientCommand(t, ctx, script, "CASES=revoke.mjs", "BASE="+ts.base, "DENO_KV_ACCESS_TOKEN=tok-gone", "REVOKED="+revoked)
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			lines := bufio.NewScanner(stdout)
			require.True(t, lines.Scan(), "no READY: %s", stderr.String())
			require.Equal(t, "READY", lines.Text())

			require.NoError(t, os.WriteFile(path, []byte("tok-stays stays rw:\n"), 0o600))
			require.NoError(t, ts.srv.Reload())
			require.NoError(t, os.WriteFile(revoked, nil, 0o644))
			var out strings.Builder
			for lines.Scan() {
				out.WriteString(lines.Text() + "\n")
			}
			require.NoError(t, cmd.Wait(), "%s\n%s", out.String(), stderr.String())
			// @deno/kv fails on the data path's 401; Deno, on a data-path
			// 401, fetches the metadata again and fails with that refusal.
			assert.Contains(t, out.String(), "REFUSED")
			if script == "deno.ts" {
				assert.Contains(t, out.String(), "invalid token: the server refused the access token")
			} else {
				assert.Contains(t, out.String(), "401 the access token of this database connection was revoked")
			}
		})
	}
}
