// Command memory measures what a built rendezvous server costs in memory
// and on disk for N keys, and how long its snapshot takes to write and to
// load. It builds nothing: give it a binary.
//
//	go build -o /tmp/rendezvous . && go run ./bench/memory -bin /tmp/rendezvous
//	go run ./bench/memory -bin /tmp/rendezvous -keys 100000   # quick
//
// It starts the binary on 127.0.0.1 with a snapshot file in a temp folder
// and --pprof-addr 127.0.0.1:0, stores -keys keys (32-byte keys, 200-byte
// values) over ~32 keep-alive connections, forces a GC through
// /debug/pprof/heap?gc=1 and reads /debug/vars memstats and VmRSS. Then it
// sends SIGTERM (timing the final snapshot), reports the snapshot size,
// restarts the server on the same file and times start to `msg=listening`.
// A server without --pprof-addr (or that never logs `msg="pprof
// listening"` within 10s) is measured by RSS only, and the report says so.
//
// It prints a markdown table and writes it to bench/results/memory.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rendezvous-kv/rendezvous/bench/internal/kvload"
)

const (
	keySize   = 32
	valueSize = 200
	// pprofWait is how long after start the pprof line may take.
	pprofWait = 10 * time.Second
)

func main() {
	bin := flag.String("bin", "", "path to a built rendezvous binary (required)")
	keys := flag.Int("keys", 1000000, "keys to store")
	conns := flag.Int("conns", 32, "concurrent keep-alive connections while loading")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	out := flag.String("out", "", "report file (default bench/results/memory.md in the module)")
	flag.Parse()
	if *bin == "" || *keys <= 0 || *conns <= 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./bench/memory -bin PATH [-keys N] [-conns N] [-timeout D] [-out FILE]")
		os.Exit(2)
	}
	if *out == "" {
		*out = filepath.Join(moduleRoot(), "bench", "results", "memory.md")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	report, err := measure(ctx, *bin, *keys, *conns)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (gave up after -timeout %s)", err, *timeout)
		}
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
	fmt.Print(report)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "memory: written to", *out)
}

// moduleRoot is the nearest folder at or above the working directory that
// has a go.mod, or the working directory.
func moduleRoot() string {
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

// memStats is the part of expvar's memstats the report uses.
type memStats struct {
	HeapAlloc uint64
	HeapInuse uint64
	Sys       uint64
}

func measure(ctx context.Context, bin string, n, conns int) (string, error) {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("-bin: %w", err)
	}
	tmp, err := os.MkdirTemp("", "rendezvous-memory-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	data := filepath.Join(tmp, "mem.db")
	args := []string{"--addr", "127.0.0.1:0", "--data", data, "--rate", "off",
		"--max-keys", strconv.Itoa(max(2000000, 2*n))}
	notes := []string{}

	// First start, with pprof if the binary knows the flag.
	srv, err := start(ctx, bin, append(args, "--pprof-addr", "127.0.0.1:0"))
	if err != nil && strings.Contains(err.Error(), "pprof-addr") {
		notes = append(notes, "the server has no --pprof-addr flag: measured by RSS only (no live-heap figures)")
		fmt.Fprintln(os.Stderr, "memory: server refused --pprof-addr; retrying without it (RSS only)")
		srv, err = start(ctx, bin, args)
	} else if err == nil {
		args = append(args, "--pprof-addr", "127.0.0.1:0")
	}
	if err != nil {
		return "", err
	}
	defer srv.kill()
	pprof := ""
	if len(notes) == 0 {
		pprof = srv.waitPprof(ctx)
		if pprof == "" {
			notes = append(notes, fmt.Sprintf("no `msg=\"pprof listening\"` line within %s: measured by RSS only (no live-heap figures)", pprofWait))
		}
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	client := kvload.Client(2)
	base := "http://" + srv.addr

	var heap0, heap1 memStats
	if pprof != "" {
		if heap0, err = gcAndStats(ctx, client, pprof); err != nil {
			return "", err
		}
	}
	rss0, err := rss(srv.cmd.Process.Pid)
	if err != nil {
		return "", err
	}

	fmt.Fprintf(os.Stderr, "memory: storing %d keys into %s over %d connections\n", n, base, conns)
	loadStart := time.Now()
	err = kvload.Load(ctx, kvload.Options{
		BaseURL: base,
		N:       n,
		Conns:   conns,
		Key:     key,
		Value:   func(i int) []byte { return kvload.Value(i, valueSize) },
	})
	if err != nil {
		return "", fmt.Errorf("loading: %w", err)
	}
	loadTook := time.Since(loadStart)
	if status, body, err := kvload.Get(ctx, client, base, key(n-1)); err != nil || status != 200 || !bytes.Equal(body, kvload.Value(n-1, valueSize)) {
		return "", fmt.Errorf("reading back %s: status %d, err %v", key(n-1), status, err)
	}

	if pprof != "" {
		if heap1, err = gcAndStats(ctx, client, pprof); err != nil {
			return "", err
		}
	}
	rss1, err := rss(srv.cmd.Process.Pid)
	if err != nil {
		return "", err
	}
	client.CloseIdleConnections()

	// SIGTERM: drain, final snapshot, exit.
	fmt.Fprintln(os.Stderr, "memory: SIGTERM, waiting for the final snapshot")
	stopTook, err := srv.stop(ctx)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(data)
	if err != nil {
		return "", fmt.Errorf("no snapshot after SIGTERM: %w", err)
	}
	// Servers with a journal keep it beside the snapshot as
	// <data>.journal.<generation>.
	journals, _ := filepath.Glob(data + ".journal.*")
	var journalBytes int64
	for _, j := range journals {
		if jfi, err := os.Stat(j); err == nil {
			journalBytes += jfi.Size()
		}
	}

	// Restart on the same file: start to listening is the load time.
	fmt.Fprintln(os.Stderr, "memory: restarting on the snapshot")
	srv2, err := start(ctx, bin, args)
	if err != nil {
		return "", fmt.Errorf("restart: %w", err)
	}
	defer srv2.kill()
	loadTime := srv2.listenAt.Sub(srv2.startAt)
	rss2, err := rss(srv2.cmd.Process.Pid)
	if err != nil {
		return "", err
	}
	restored := srv2.attr("listening", "keys")
	if restored != strconv.Itoa(n) {
		notes = append(notes, fmt.Sprintf("after restart the server reports keys=%s, expected %d", restored, n))
	}
	// The server names its start-up load "data loaded" (snapshot plus
	// journal) or, in older builds, "snapshot loaded".
	selfReported := srv2.attr("data loaded", "duration")
	if selfReported == "" {
		selfReported = srv2.attr("snapshot loaded", "duration")
	}
	if _, err := srv2.stop(ctx); err != nil {
		return "", fmt.Errorf("second stop: %w", err)
	}

	// Report.
	payload := keySize + valueSize
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## rendezvous memory and snapshot\n\n")
	fmt.Fprintf(&b, "- machine: %d CPUs, %s/%s, host %s; tool built with %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, host, runtime.Version())
	fmt.Fprintf(&b, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "- server: `%s %s`\n", filepath.Base(bin), strings.Join(quoteArgs(args, tmp), " "))
	fmt.Fprintf(&b, "- data: %d keys of %d bytes with %d-byte values (payload %d B/key), stored over %d keep-alive connections\n", n, keySize, valueSize, payload, conns)
	for _, note := range notes {
		fmt.Fprintf(&b, "- note: %s\n", note)
	}
	fmt.Fprintf(&b, "\n| measure | value |\n|---|---:|\n")
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	row("load over HTTP", fmt.Sprintf("%s (%.0f keys/s)", round(loadTook), float64(n)/loadTook.Seconds()))
	if pprof != "" {
		perKey := float64(int64(heap1.HeapAlloc)-int64(heap0.HeapAlloc)) / float64(n)
		row("live heap after GC (HeapAlloc)", fmt.Sprintf("%s (empty server: %s)", mib(heap1.HeapAlloc), mib(heap0.HeapAlloc)))
		row("live heap per key (growth / keys)", fmt.Sprintf("%.0f B", perKey))
		row("overhead per key (heap per key − payload)", fmt.Sprintf("%.0f B", perKey-float64(payload)))
		row("HeapInuse", mib(heap1.HeapInuse))
		row("Sys (memory from the OS)", mib(heap1.Sys))
	}
	row("RSS (VmRSS)", fmt.Sprintf("%s (empty server: %s)", mib(rss1), mib(rss0)))
	rssNote := ""
	if pprof == "" {
		rssNote = ", no forced GC: includes garbage"
	}
	row("RSS per key (growth / keys)", fmt.Sprintf("%.0f B%s", float64(int64(rss1)-int64(rss0))/float64(n), rssNote))
	if pprof != "" {
		row("RSS / live heap", fmt.Sprintf("%.2f", float64(rss1)/float64(heap1.HeapAlloc)))
	}
	row("SIGTERM to exit (drain + final snapshot)", round(stopTook))
	row("snapshot file size", fmt.Sprintf("%s (%.0f B/key)", mib(uint64(fi.Size())), float64(fi.Size())/float64(n)))
	if len(journals) > 0 {
		row("journal files left after exit", fmt.Sprintf("%d, %s", len(journals), kib(journalBytes)))
	}
	loaded := round(loadTime)
	if selfReported != "" {
		loaded += fmt.Sprintf(" (load time the server logs: %s)", selfReported)
	}
	row("restart: process start to `msg=listening`", loaded)
	row("RSS right after restart", mib(rss2))
	return b.String(), nil
}

func key(i int) string { return fmt.Sprintf("mem-%028d", i) } // 32 bytes

func quoteArgs(args []string, tmp string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		a = strings.ReplaceAll(a, tmp, "$tmp")
		if a == "" {
			a = "''"
		}
		out[i] = a
	}
	return out
}

func round(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(100 * time.Microsecond).String()
	}
}

func kib(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10)) }

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// gcAndStats forces a GC (the heap profile with gc=1 runs one first) and
// reads the memstats that expvar publishes.
func gcAndStats(ctx context.Context, client *http.Client, pprof string) (memStats, error) {
	if _, err := fetch(ctx, client, "http://"+pprof+"/debug/pprof/heap?gc=1"); err != nil {
		return memStats{}, err
	}
	body, err := fetch(ctx, client, "http://"+pprof+"/debug/vars")
	if err != nil {
		return memStats{}, err
	}
	var vars struct {
		Memstats *memStats `json:"memstats"`
	}
	if err := json.Unmarshal(body, &vars); err != nil {
		return memStats{}, fmt.Errorf("/debug/vars: %w", err)
	}
	if vars.Memstats == nil {
		return memStats{}, errors.New("/debug/vars has no memstats")
	}
	return *vars.Memstats, nil
}

func fetch(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return body, nil
}

// rss is VmRSS of a process, in bytes.
func rss(pid int) (uint64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// server is one running rendezvous process whose log is watched.
type server struct {
	cmd      *exec.Cmd
	startAt  time.Time
	listenAt time.Time // set before listening is closed
	addr     string    // likewise

	listening chan struct{}
	pprofSeen chan struct{}
	exited    chan struct{}
	exitAt    time.Time // set before exited is closed
	exitErr   error     // likewise

	mu        sync.Mutex
	pprofAddr string
	out       bytes.Buffer
}

var (
	listeningRE = regexp.MustCompile(`\bmsg=listening\b.*?\baddr="?([^\s"]+)`)
	pprofRE     = regexp.MustCompile(`\bmsg="pprof listening".*?\baddr="?([^\s"]+)`)
)

// start runs bin with args and waits for its listening line. It fails,
// with the process's output, if the process exits first.
func start(ctx context.Context, bin string, args []string) (*server, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = cleanEnv()
	s := &server{
		cmd:       cmd,
		listening: make(chan struct{}),
		pprofSeen: make(chan struct{}),
		exited:    make(chan struct{}),
	}
	s.startAt = time.Now()
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
			line := sc.Text()
			now := time.Now()
			s.mu.Lock()
			s.out.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil && s.addr == "" {
				s.addr, s.listenAt = m[1], now
				close(s.listening)
			}
			if m := pprofRE.FindStringSubmatch(line); m != nil {
				s.mu.Lock()
				first := s.pprofAddr == ""
				s.pprofAddr = m[1]
				s.mu.Unlock()
				if first {
					close(s.pprofSeen)
				}
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
		if !strings.HasPrefix(s.addr, "127.0.0.1:") {
			s.kill()
			return nil, fmt.Errorf("server listens on %s, not 127.0.0.1", s.addr)
		}
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("server exited before listening (%v): %s", s.exitErr, strings.TrimSpace(s.output()))
	case <-ctx.Done():
		s.kill()
		return nil, fmt.Errorf("waiting for the server to listen: %w", ctx.Err())
	}
}

// cleanEnv is the environment without RENDEZVOUS_* settings, so that only
// the flags given here configure the server.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RENDEZVOUS_") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// waitPprof returns the pprof address once it is logged, or "" when it is
// not logged within pprofWait of the start.
func (s *server) waitPprof(ctx context.Context) string {
	t := time.NewTimer(time.Until(s.startAt.Add(pprofWait)))
	defer t.Stop()
	select {
	case <-s.pprofSeen:
		s.mu.Lock()
		defer s.mu.Unlock()
		if !strings.HasPrefix(s.pprofAddr, "127.0.0.1:") {
			return ""
		}
		return s.pprofAddr
	case <-t.C:
	case <-s.exited:
	case <-ctx.Done():
	}
	return ""
}

// attr returns attribute name of the first log line whose msg is msg.
func (s *server) attr(msg, name string) string {
	re := regexp.MustCompile(`\bmsg="?` + regexp.QuoteMeta(msg) + `"?\s.*?\b` + regexp.QuoteMeta(name) + `="?([^\s"]+)`)
	for line := range strings.Lines(s.output()) {
		if m := re.FindStringSubmatch(line); m != nil {
			return m[1]
		}
	}
	return ""
}

// stop sends SIGTERM and returns the time until the process exited; a
// non-zero exit is an error.
func (s *server) stop(ctx context.Context) (time.Duration, error) {
	sent := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	select {
	case <-s.exited:
	case <-ctx.Done():
		s.kill()
		return 0, fmt.Errorf("waiting for exit after SIGTERM: %w", ctx.Err())
	}
	if s.exitErr != nil {
		return 0, fmt.Errorf("server exit after SIGTERM: %v: %s", s.exitErr, lastLines(s.output(), 5))
	}
	return s.exitAt.Sub(sent), nil
}

// kill ends the process if it still runs and waits for it.
func (s *server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.exited
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
