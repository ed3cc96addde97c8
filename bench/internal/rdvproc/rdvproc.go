// Package rdvproc runs a rendezvous server binary for the benchmark tools:
// it starts the process on a loopback port, reads the address back from
// the `msg=listening addr=...` log line, keeps every log line with the time
// it arrived, waits for other log lines, stops the process (SIGTERM, timed)
// and scrapes /metrics.
//
// bench/memory, bench/snapshotlat and bench/watchlat share it.
package rdvproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Line is one line of the server's output and when the tool read it.
type Line struct {
	At   time.Time
	Text string
}

// Server is one running rendezvous process whose log is watched.
type Server struct {
	Cmd      *exec.Cmd
	StartAt  time.Time // just before the process was started
	ListenAt time.Time // when the listening line was read
	Addr     string    // host:port from the listening line

	listening chan struct{}
	exited    chan struct{}
	exitAt    time.Time // set before exited is closed
	exitErr   error     // likewise

	mu    sync.Mutex
	lines []Line
	grew  chan struct{} // closed and replaced when a line is added
}

var listeningRE = regexp.MustCompile(`\bmsg=listening\b.*?\baddr="?([^\s"]+)`)

// Start runs bin with args (which should include --addr 127.0.0.1:0) and
// waits for its listening line. It fails, with the process's output, if the
// process exits first or listens anywhere but 127.0.0.1. The process is
// killed when ctx ends.
func Start(ctx context.Context, bin string, args []string) (*Server, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = CleanEnv()
	s := &Server{Cmd: cmd, listening: make(chan struct{}), exited: make(chan struct{}), grew: make(chan struct{})}
	s.StartAt = time.Now()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			now := time.Now()
			line := sc.Text()
			s.mu.Lock()
			s.lines = append(s.lines, Line{At: now, Text: line})
			close(s.grew)
			s.grew = make(chan struct{})
			s.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil && s.Addr == "" {
				s.Addr, s.ListenAt = m[1], now
				close(s.listening)
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		s.exitAt, s.exitErr = time.Now(), err
		<-readDone
		close(s.exited)
	}()

	select {
	case <-s.listening:
		if !strings.HasPrefix(s.Addr, "127.0.0.1:") {
			s.Kill()
			return nil, fmt.Errorf("server listens on %s, not 127.0.0.1", s.Addr)
		}
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("server exited before listening (%v): %s", s.exitErr, strings.TrimSpace(s.Output()))
	case <-ctx.Done():
		s.Kill()
		return nil, fmt.Errorf("waiting for the server to listen: %w", ctx.Err())
	}
}

// CleanEnv is the environment without RENDEZVOUS_* settings, so that only
// the flags given configure the server.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RENDEZVOUS_") {
			env = append(env, kv)
		}
	}
	return env
}

// BaseURL is http://ADDR.
func (s *Server) BaseURL() string { return "http://" + s.Addr }

// Output is everything the process has written so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, l := range s.lines {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// Lines returns the lines logged so far whose msg is msg.
func (s *Server) Lines(msg string) []Line {
	re := msgRE(msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Line
	for _, l := range s.lines {
		if re.MatchString(l.Text) {
			out = append(out, l)
		}
	}
	return out
}

// WaitLine waits for the first line whose msg is msg and returns it. It
// returns false when the process exits without logging one, or when ctx
// ends or deadline passes first.
func (s *Server) WaitLine(ctx context.Context, msg string, deadline time.Time) (Line, bool) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		s.mu.Lock()
		grew := s.grew
		s.mu.Unlock()
		if ls := s.Lines(msg); len(ls) > 0 {
			return ls[0], true
		}
		select {
		case <-grew:
		case <-s.exited:
			// Every line has been read by now: look once more.
			if ls := s.Lines(msg); len(ls) > 0 {
				return ls[0], true
			}
			return Line{}, false
		case <-t.C:
			return Line{}, false
		case <-ctx.Done():
			return Line{}, false
		}
	}
}

func msgRE(msg string) *regexp.Regexp {
	return regexp.MustCompile(`\bmsg="?` + regexp.QuoteMeta(msg) + `(?:"|\s|$)`)
}

// Attr returns attribute name of the first line whose msg is msg, or "".
func (s *Server) Attr(msg, name string) string {
	for _, l := range s.Lines(msg) {
		if v := LineAttr(l.Text, name); v != "" {
			return v
		}
	}
	return ""
}

// LineAttr returns attribute name=value of one slog text line, or "".
func LineAttr(line, name string) string {
	re := regexp.MustCompile(`\s` + regexp.QuoteMeta(name) + `=("(?:[^"\\]|\\.)*"|\S*)`)
	m := re.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	if v, err := strconv.Unquote(m[1]); err == nil {
		return v
	}
	return m[1]
}

// Alive reports whether the process still runs.
func (s *Server) Alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and returns the time until the process exited; a
// non-zero exit is an error. After limit it kills the process; a limit of
// zero or less leaves the wait to ctx alone.
func (s *Server) Stop(ctx context.Context, limit time.Duration) (time.Duration, error) {
	sent := time.Now()
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil && s.Alive() {
		return 0, err
	}
	var expired <-chan time.Time // nil, never ready, without a limit
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-s.exited:
	case <-expired:
		s.Kill()
		return 0, fmt.Errorf("server still running %s after SIGTERM; killed", limit)
	case <-ctx.Done():
		s.Kill()
		return 0, fmt.Errorf("waiting for exit after SIGTERM: %w", ctx.Err())
	}
	if s.exitErr != nil {
		return 0, fmt.Errorf("server exit after SIGTERM: %v: %s", s.exitErr, LastLines(s.Output(), 5))
	}
	return s.exitAt.Sub(sent), nil
}

// Kill ends the process if it still runs and waits for it.
func (s *Server) Kill() {
	if !s.Alive() {
		return
	}
	s.Cmd.Process.Kill()
	<-s.exited
}

// LastLines returns the last n lines of text.
func LastLines(text string, n int) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Metrics scrapes base/metrics and returns every series without labels
// (like rendezvous_keys or rendezvous_last_snapshot_timestamp_seconds) by
// name.
func Metrics(ctx context.Context, client *http.Client, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.Fields(val)[0], 64); err == nil {
			out[name] = v
		}
	}
	if len(out) == 0 {
		return nil, errors.New("/metrics: no series without labels")
	}
	return out, nil
}

// ModuleRoot is the nearest folder at or above the working directory that
// has a go.mod, or the working directory.
func ModuleRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			return wd
		}
	}
}

// QuoteArgs renders args for a report: tmp replaced by $tmp, empty
// arguments as two single quotes.
func QuoteArgs(args []string, tmp string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if tmp != "" {
			a = strings.ReplaceAll(a, tmp, "$tmp")
		}
		if a == "" {
			a = "''"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// RaiseFileLimit lifts the soft limit on open files to at least want (up
// to the hard limit) and returns the soft limit in force. Children started
// afterwards inherit it.
func RaiseFileLimit(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
