package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// filesIn returns every file in dir with its content, but for lock
// files: each start writes its PID into one, and it holds no data.
func filesIn(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := make(map[string][]byte)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".lock") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = data
	}
	return files
}

// requireKept checks that the bytes of every file in before are still in
// some file in dir.
func requireKept(t *testing.T, before map[string][]byte, dir string) {
	t.Helper()
	after := filesIn(t, dir)
	for name, data := range before {
		found := ""
		for other, got := range after {
			if bytes.Equal(got, data) {
				found = other
				break
			}
		}
		assert.NotEmpty(t, found, "the bytes of %s are no longer on disk (files: %v)", name, keys(after))
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// snapshotThenCrash runs a server that writes n keys a0.. and stops,
// which snapshots them (the snapshot covers journal generation 1 and
// generation 2 is left empty), then one that writes n keys b0.. into
// generation 3 and is killed.
func snapshotThenCrash(t *testing.T, data string, n int) {
	t.Helper()
	args := []string{"--data", data, "--rate", "off", "--save-interval", "1h"}
	s := startServer(t, args...)
	for i := range n {
		resp, body := do(t, "POST", fmt.Sprintf("%s/set/a%d", s.base, i), "first run")
		require.Equal(t, 200, resp.StatusCode, body)
	}
	require.Equal(t, 0, s.stop(t), s.log.String())

	s = startServer(t, args...)
	for i := range n {
		resp, body := do(t, "POST", fmt.Sprintf("%s/set/b%d", s.base, i), "second run")
		require.Equal(t, 200, resp.StatusCode, body)
	}
	require.NoError(t, s.cmd.Process.Kill())
	<-s.done
	gens, err := filepath.Glob(data + ".journal.*")
	require.NoError(t, err)
	require.Equal(t, []string{data + ".journal.0000000000000002", data + ".journal.0000000000000003"}, gens)
}

// startRefused runs the server on data and returns its exit code and
// output; it must not start.
func startRefused(t *testing.T, data string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "--addr", "127.0.0.1:0", "--data", data, "--rate", "off").CombinedOutput()
	require.Error(t, err, "the server must refuse to start:\n%s", out)
	return exitCode(err), string(out)
}

// checkServes checks that s has the n keys of the given prefix with value.
func checkServes(t *testing.T, s *process, prefix, value string, n int) {
	t.Helper()
	for i := range n {
		resp, body := do(t, "GET", fmt.Sprintf("%s/get/%s%d", s.base, prefix, i), "")
		require.Equal(t, 200, resp.StatusCode, "%s%d", prefix, i)
		assert.Equal(t, value, body)
	}
}

// TestEndToEndMissingSnapshotRefusesToStart: with the snapshot gone and
// journal generations that do not start at 1, the server refuses to start
// instead of serving what the newest generations hold and then deleting
// them; --repair serves that, keeps every file, and the next start is
// ordinary.
func TestEndToEndMissingSnapshotRefusesToStart(t *testing.T) {
	const n = 5
	dir := t.TempDir()
	data := filepath.Join(dir, "rendezvous.db")
	snapshotThenCrash(t, data, n)
	require.NoError(t, os.Remove(data))
	before := filesIn(t, dir)

	code, out := startRefused(t, data)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, fmt.Sprintf("there is no snapshot %s, but the oldest journal file %s.journal.0000000000000002 is generation 2, not 1", data, data))
	assert.Contains(t, out, "starting would lose them")
	assert.Contains(t, out, "start with --repair")
	assert.Equal(t, before, filesIn(t, dir), "a refused start changes no file")

	s := startServer(t, "--data", data, "--rate", "off", "--repair")
	checkServes(t, s, "b", "second run", n)
	resp, _ := do(t, "GET", s.base+"/get/a0", "")
	assert.Equal(t, 404, resp.StatusCode, "the first run's keys were only in the snapshot")
	requireKept(t, before, dir)
	require.Equal(t, 0, s.stop(t), s.log.String())
	assert.Contains(t, s.log.String(), "repair: journal generations are missing")
	requireKept(t, before, dir)

	s = startServer(t, "--data", data, "--rate", "off")
	checkServes(t, s, "b", "second run", n)
	require.Equal(t, 0, s.stop(t), s.log.String())
}

// TestEndToEndMissingJournalGenerationRefusesToStart: with the generation
// after the snapshot gone, the server refuses to start, naming it; with
// --repair it serves the snapshot's keys and the later generation's, and
// keeps every file.
func TestEndToEndMissingJournalGenerationRefusesToStart(t *testing.T) {
	const n = 5
	dir := t.TempDir()
	data := filepath.Join(dir, "rendezvous.db")
	snapshotThenCrash(t, data, n)
	require.NoError(t, os.Remove(data+".journal.0000000000000002"))
	before := filesIn(t, dir)

	code, out := startRefused(t, data)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, fmt.Sprintf("journal generation 2 is missing between snapshot %s, which covers generations up to 1, and %s.journal.0000000000000003", data, data))
	assert.Contains(t, out, "starting would lose the keys written in it")
	assert.Contains(t, out, "start with --repair")
	assert.Equal(t, before, filesIn(t, dir), "a refused start changes no file")

	s := startServer(t, "--data", data, "--rate", "off", "--repair")
	checkServes(t, s, "a", "first run", n)
	checkServes(t, s, "b", "second run", n)
	requireKept(t, before, dir)
	require.Equal(t, 0, s.stop(t), s.log.String())

	s = startServer(t, "--data", data, "--rate", "off")
	checkServes(t, s, "a", "first run", n)
	checkServes(t, s, "b", "second run", n)
	require.Equal(t, 0, s.stop(t), s.log.String())
	requireKept(t, before, dir)
}
