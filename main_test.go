package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/wiretest"
)

// binary is the server built once for the end-to-end tests, in binDir.
var binary, binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rendezvous-e2e")
	if err != nil {
		panic(err)
	}
	binDir = dir
	binary = filepath.Join(dir, "rendezvous")
	if err := buildServer(binary); err != nil {
		panic("building the server: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildServer builds the server into out with the race detector, or
// without it where it is missing (it needs cgo), passing the build tags.
func buildServer(out string, tags ...string) error {
	build := func(race bool) error {
		args := []string{"build", "-o", out}
		if race {
			args = append(args, "-race")
		}
		if len(tags) > 0 {
			args = append(args, "-tags", strings.Join(tags, ","))
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if build(true) == nil {
		return nil
	}
	return build(false)
}

// journalWriteBinary is the server built with the journal_write tag, so
// that its journal takes the write(2) path it takes off Linux; built on
// first use.
var journalWriteBinary = sync.OnceValues(func() (string, error) {
	out := filepath.Join(binDir, "rendezvous-journal-write")
	return out, buildServer(out, "journal_write")
})

// process is a running server process.
type process struct {
	cmd  *exec.Cmd
	base string
	log  *serverLog
	done chan error
}

// serverLog collects a server's log lines; tests may read it while the
// server still writes.
type serverLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *serverLog) WriteString(s string) {
	l.mu.Lock()
	l.b.WriteString(s)
	l.mu.Unlock()
}

func (l *serverLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listenLine = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServer runs the binary with args on a free loopback port and waits
// until it listens.
func startServer(t *testing.T, args ...string) *process {
	t.Helper()
	return startServerUnder(t, nil, args...)
}

// startServerUnder is startServer with the binary run by the command
// wrapper (like prlimit with its options), if any.
func startServerUnder(t *testing.T, wrapper []string, args ...string) *process {
	t.Helper()
	return startBinary(t, wrapper, binary, args...)
}

// startBinary is startServerUnder with the server binary bin.
func startBinary(t *testing.T, wrapper []string, bin string, args ...string) *process {
	t.Helper()
	argv := append(append(wrapper, bin, "--addr", "127.0.0.1:0"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	s := &process{cmd: cmd, log: &serverLog{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.log.WriteString(line + "\n")
			if m := listenLine.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case a := <-addr:
		s.base = "http://" + a
	case err := <-s.done:
		t.Fatalf("server exited before listening: %v\n%s", err, s.log)
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not start listening:\n%s", s.log)
	}
	return s
}

// stop sends SIGTERM and returns the exit code.
func (s *process) stop(t *testing.T) int {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not stop after SIGTERM:\n%s", s.log)
	}
	return s.cmd.ProcessState.ExitCode()
}

// client and do talk to the server under test (see wiretest).
var (
	client = wiretest.Client
	do     = wiretest.Do
)

func TestEndToEndCorruptSnapshotRefusesToStart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "rendezvous.db")
	s := startServer(t, "--data", data, "--rate", "off")
	for i := range 20 {
		resp, _ := do(t, "POST", s.base+"/set/k"+strconv.Itoa(i), "value")
		require.Equal(t, 200, resp.StatusCode)
	}
	require.Equal(t, 0, s.stop(t))

	raw, err := os.ReadFile(data)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0xff
	require.NoError(t, os.WriteFile(data, raw, 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "--addr", "127.0.0.1:0", "--data", data).CombinedOutput()
	require.Error(t, err, "start-up on a corrupt snapshot must fail")
	assert.NotEqual(t, 0, exitCode(err))
	assert.Contains(t, string(out), data, "the message names the file")

	after, err := os.ReadFile(data)
	require.NoError(t, err)
	assert.Equal(t, raw, after, "the damaged file is left as it was")
}

func TestEndToEndBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--max-ttl", "soon"}, "max-ttl"},
		{[]string{"--max-key-size", "-1"}, "max-key-size"},
		{[]string{"--rate", "lots"}, "rate"},
		{[]string{"--addr", "0.0.0.0:0"}, "insecure"},
	}
	for _, c := range cases {
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

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func TestEndToEndSecondServerOnOneDataFileIsRefused(t *testing.T) {
	data := filepath.Join(t.TempDir(), "rendezvous.db")
	first := startServer(t, "--data", data, "--rate", "off")
	resp, body := do(t, "POST", first.base+"/set/kept", "v1")
	require.Equal(t, 200, resp.StatusCode, body)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, binary, "--addr", "127.0.0.1:0", "--data", data).CombinedOutput()
	require.Error(t, err, "a second server on the same data file must not start")
	assert.Equal(t, 1, exitCode(err), string(out))
	assert.Less(t, time.Since(start), 10*time.Second, "it exits at once instead of waiting for the lock")
	assert.Contains(t, string(out), data+".lock", "the message names the lock file")
	assert.Contains(t, string(out), "pid="+strconv.Itoa(first.cmd.Process.Pid), "and the process holding it")
	assert.NotContains(t, string(out), "msg=listening")

	// The first server was not disturbed: its writes go on and survive.
	resp, body = do(t, "POST", first.base+"/set/after", "v2")
	require.Equal(t, 200, resp.StatusCode, body)
	require.Equal(t, 0, first.stop(t), first.log.String())
	again := startServer(t, "--data", data, "--rate", "off")
	for key, want := range map[string]string{"kept": "v1", "after": "v2"} {
		resp, body = do(t, "GET", again.base+"/get/"+key, "")
		assert.Equal(t, 200, resp.StatusCode, key)
		assert.Equal(t, want, body, key)
	}
	require.Equal(t, 0, again.stop(t))
}

// TestBuildsForOtherSystems: the server is self-hosted on whatever its
// operators run, so it must build beyond Linux (files with an inode,
// rlimits, locks and the journal's mapping each have a per-system side).
func TestBuildsForOtherSystems(t *testing.T) {
	for _, target := range []string{"darwin/amd64", "freebsd/amd64", "windows/amd64"} {
		t.Run(target, func(t *testing.T) {
			goos, goarch, _ := strings.Cut(target, "/")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", "build", "-o", os.DevNull, ".")
			cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "GOOS=%s GOARCH=%s go build: %s", goos, goarch, out)
		})
	}
}
