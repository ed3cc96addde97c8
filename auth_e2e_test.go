package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SIGHUP makes the running binary re-read its token file: a removed token
// stops working without a restart, and a malformed file keeps the old
// tokens, with the file and line in the log.
func TestEndToEndTokenFileReloadOnSIGHUP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(path, []byte("tok-a alice rw:\ntok-b bob rw:\n"), 0o600))
	s := startServer(t, "--data", "", "--auth-file", path, "--anonymous", "r:")
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	resp, body := do(t, "POST", s.base+"/set/k", "1", bearer("tok-b")...)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, _ = do(t, "GET", s.base+"/get/k", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "anonymous reads with --anonymous r:")
	resp, _ = do(t, "POST", s.base+"/set/k", "2")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	require.NoError(t, os.WriteFile(path, []byte("tok-a alice rw:\n"), 0o600))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		resp, _ := do(t, "GET", s.base+"/get/k", "", bearer("tok-b")...)
		return resp.StatusCode == http.StatusUnauthorized
	}, 10*time.Second, 20*time.Millisecond, "the removed token stops working")

	require.NoError(t, os.WriteFile(path, []byte("tok-a alice rw:\ntok-c carol rw:a rw:a\n"), 0o600))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(s.log.String(), path+":2:") }, 10*time.Second, 20*time.Millisecond)
	resp, body = do(t, "POST", s.base+"/set/k", "3", bearer("tok-a")...)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, 0, s.stop(t))
}

func TestEndToEndAuthFlagsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(path, []byte("tok alice rw:\n"), 0o600))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--auth-file", path, "--jwt-secret-file", path}, "exclusive"},
		{[]string{"--anonymous", "rw:"}, "--anonymous"},
		{[]string{"--auth-file", path, "--anonymous", "all"}, "--anonymous"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, binary, append(c.args, "--data", "")...).CombinedOutput()
			require.Error(t, err)
			assert.Equal(t, 2, exitCode(err))
			assert.Contains(t, string(out), c.want)
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(string(out)), "\n")+1, "one line: %s", out)
		})
	}
}
