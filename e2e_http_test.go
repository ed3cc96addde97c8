package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// --ip-write-origins and its environment variable reach the HTTP front
// end: a page of another site cannot overwrite the visitor's ip/ key, the
// server's own page and listed ones can.
func TestEndToEndCrossSiteIPWrites(t *testing.T) {
	t.Setenv("RENDEZVOUS_IP_WRITE_ORIGINS", "https://env.example")
	s := startServer(t, "--data", "", "--rate", "off", "--ip-write-origins", "https://app.example")
	s2 := startServer(t, "--data", "", "--rate", "off")
	for _, tc := range []struct {
		s      *process
		origin string
		status int
	}{
		{s, "https://evil.example", 403},
		{s, "https://env.example", 403}, // the command line's list replaces the environment's
		{s, "https://app.example", 200},
		{s, s.base, 200}, // the server's own page
		{s2, "https://evil.example", 403},
		{s2, "https://env.example", 200},
	} {
		resp, body := do(t, "POST", tc.s.base+"/set/ip/ssh", tc.origin, "Origin", tc.origin, "Content-Type", "text/plain")
		assert.Equal(t, tc.status, resp.StatusCode, "%s: %s", tc.origin, body)
		if tc.status != 200 {
			assert.Contains(t, body, "ip/ keys")
			assert.Equal(t, 1, strings.Count(body, "\n"), body)
		}
	}
	_, body := do(t, "GET", s.base+"/get/ip/127.0.0.1/ssh", "")
	assert.Equal(t, s.base, body, "the last allowed write is stored")
	_, body = do(t, "GET", s2.base+"/get/ip/127.0.0.1/ssh", "")
	assert.Equal(t, "https://env.example", body)
	require.Equal(t, 0, s.stop(t))
	require.Equal(t, 0, s2.stop(t))
}

func TestEndToEndBadIPWriteOrigins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "--data", "", "--ip-write-origins", "*").CombinedOutput()
	require.Error(t, err)
	assert.Equal(t, 2, exitCode(err))
	assert.Contains(t, string(out), "ip-write-origins")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(string(out)), "\n")+1, "one line: %s", out)
}
