package main

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
)

// The README's walk-through, typed as a newcomer types it: the shell
// blocks of "Using it", "Discovery and coordination" and "Transactions",
// run by bash with curl against the server started as README says, each
// command's answer checked against what its comment promises.
func TestReadmeWalkthrough(t *testing.T) {
	curl := apt.Installed(t, "curl", "curl")
	bash := apt.Installed(t, "bash", "bash")
	raw, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(raw)
	block := func(after string) string {
		t.Helper()
		i := strings.Index(readme, after)
		require.GreaterOrEqual(t, i, 0, "README has %q", after)
		m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(readme[i:])
		require.NotNil(t, m, "a shell block after %q", after)
		return m[1]
	}
	script := block("## Using it") + block("### Discovery and coordination") + block("### Transactions")
	require.True(t, strings.Contains(readme, "go run . --rate off"), "README says how to run the walk-through")

	s := startServer(t, "--data", "", "--rate", "off")
	// Each command's output on a line of its own, after a marker.
	var run strings.Builder
	run.WriteString("set -m\n")
	var cmd strings.Builder
	for _, line := range strings.Split(script, "\n") {
		if cmd.Len() == 0 && strings.TrimSpace(line) == "" {
			continue
		}
		cmd.WriteString(line + "\n")
		if strings.Count(cmd.String(), "'")%2 == 1 {
			continue // a quoted JSON body goes on over the next line
		}
		run.WriteString("echo '>>>'\n")
		run.WriteString(strings.ReplaceAll(cmd.String(), "localhost:8080", strings.TrimPrefix(s.base, "http://")))
		run.WriteString("echo; sleep 0.2\n") // lets a background stream print first
		cmd.Reset()
	}
	require.Zero(t, cmd.Len(), "a quote left open in the walk-through: %q", cmd.String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh := exec.CommandContext(ctx, bash, "-c", run.String())
	sh.Env = append(os.Environ(), "PATH="+strings.TrimSuffix(curl, "/curl")+":"+os.Getenv("PATH"))
	// A command that never ends (a stream left in the foreground) must not
	// hold the test: on time-out the whole process group goes.
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	sh.WaitDelay = 5 * time.Second
	out, err := sh.CombinedOutput()
	require.NoError(t, err, "%s", out)

	got := strings.Split(string(out), ">>>\n")[1:]
	want := []string{
		"OK", "10.0.0.7:9000", "OK", "OK", "OK", "key is owned", "127.0.0.1", "addr",
		"", // the stream, in the background
		"OK", "mesh42/leader\nmesh42/node-a\nmesh42/node-b", "", "",
		"OK", "", "OK", "", "OK", "precondition failed", "OK",
		// Transactions: a hand-over, a stale one, two registrations.
		"", `{"ok":true,"version":`, "node-b", `{"ok":false,"failed":[0]`,
		`{"ok":true,"version":`, `{"ok":false,"failed":[1]`, "key not found",
	}
	require.Len(t, got, len(want), "one answer per command:\n%s", out)
	for i, w := range want {
		assert.Contains(t, got[i], w, "command %d of the walk-through", i+1)
		assert.NotContains(t, got[i], "too many", "command %d ran out of tokens", i+1)
	}
	// What a background command prints comes when it comes: on a loaded
	// machine after the next command's marker, so it is looked for up to
	// the command that ends it (kill %1, wait).
	stream := strings.Join(got[9:12], "")
	assert.Contains(t, stream, "event: set", "the stream shows the write")
	assert.Contains(t, stream, `"key":"mesh42/node-b"`, "the stream shows the write")
	assert.Contains(t, strings.Join(got[13:15], ""), "node-b", "the long-poll answers with the write")
}
