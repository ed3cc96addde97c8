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
// restarts the server on the same file and times start to `msg=listening`,
// then measures the live heap again once the server logs that its ordered
// index is built.
// A server without --pprof-addr (or that never logs `msg="pprof
// listening"` within 10s) is measured by RSS only, and the report says so.
//
// It prints a markdown table and writes it to bench/results/memory.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/rendezvous-kv/rendezvous/bench/internal/kvload"
	"github.com/rendezvous-kv/rendezvous/bench/internal/rdvproc"
	"github.com/rendezvous-kv/rendezvous/bench/internal/report"
)

const (
	keySize   = 32
	valueSize = 200
	// pprofWait is how long after start the pprof line may take.
	pprofWait = 10 * time.Second
	// treesWait is how long after listening the restarted server may take
	// to log that its ordered index is built.
	treesWait = 30 * time.Second
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
		*out = filepath.Join(rdvproc.ModuleRoot(), "bench", "results", "memory.md")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	text, err := measure(ctx, *bin, *keys, *conns)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (gave up after -timeout %s)", err, *timeout)
		}
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
	report.Save("memory", text, *out)
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
	srv, err := rdvproc.Start(ctx, bin, append(args, "--pprof-addr", "127.0.0.1:0"))
	if err != nil && strings.Contains(err.Error(), "pprof-addr") {
		notes = append(notes, "the server has no --pprof-addr flag: measured by RSS only (no live-heap figures)")
		fmt.Fprintln(os.Stderr, "memory: server refused --pprof-addr; retrying without it (RSS only)")
		srv, err = rdvproc.Start(ctx, bin, args)
	} else if err == nil {
		args = append(args, "--pprof-addr", "127.0.0.1:0")
	}
	if err != nil {
		return "", err
	}
	defer srv.Kill()
	pprof := ""
	if len(notes) == 0 {
		pprof = waitPprof(ctx, srv)
		if pprof == "" {
			notes = append(notes, fmt.Sprintf("no `msg=\"pprof listening\"` line within %s: measured by RSS only (no live-heap figures)", pprofWait))
		}
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	client := kvload.Client(2)
	base := srv.BaseURL()

	var heap0, heap1 memStats
	if pprof != "" {
		if heap0, err = gcAndStats(ctx, client, pprof); err != nil {
			return "", err
		}
	}
	rss0, err := rss(srv.Cmd.Process.Pid)
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
	rss1, err := rss(srv.Cmd.Process.Pid)
	if err != nil {
		return "", err
	}
	client.CloseIdleConnections()

	// SIGTERM: drain, final snapshot, exit.
	fmt.Fprintln(os.Stderr, "memory: SIGTERM, waiting for the final snapshot")
	stopTook, err := srv.Stop(ctx, 0) // no limit but -timeout
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
	srv2, err := rdvproc.Start(ctx, bin, args)
	if err != nil {
		return "", fmt.Errorf("restart: %w", err)
	}
	defer srv2.Kill()
	loadTime := srv2.ListenAt.Sub(srv2.StartAt)
	rss2, err := rss(srv2.Cmd.Process.Pid)
	if err != nil {
		return "", err
	}
	restored := srv2.Attr("listening", "keys")
	if restored != strconv.Itoa(n) {
		notes = append(notes, fmt.Sprintf("after restart the server reports keys=%s, expected %d", restored, n))
	}
	// The server names its start-up load "data loaded" (snapshot plus
	// journal) or, in older builds, "snapshot loaded".
	selfReported := srv2.Attr("data loaded", "duration")
	if selfReported == "" {
		selfReported = srv2.Attr("snapshot loaded", "duration")
	}
	// Builds that load into the hash index alone build the ordered index
	// in the background and log when it is done; the heap is measured
	// after that, so it holds everything a long-running server does.
	treesBuilt := ""
	if line, ok := srv2.WaitLine(ctx, "ordered index built", time.Now().Add(treesWait)); ok {
		treesBuilt = rdvproc.LineAttr(line.Text, "duration")
	}
	var heap2 memStats
	if pprof2 := ""; pprof != "" {
		if pprof2 = waitPprof(ctx, srv2); pprof2 != "" {
			if heap2, err = gcAndStats(ctx, client, pprof2); err != nil {
				return "", err
			}
		}
	}
	if _, err := srv2.Stop(ctx, 0); err != nil { // no limit but -timeout
		return "", fmt.Errorf("second stop: %w", err)
	}

	// Report.
	payload := keySize + valueSize
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## rendezvous memory and snapshot\n\n")
	fmt.Fprintf(&b, "- machine: %d CPUs, %s/%s, host %s; tool built with %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, host, runtime.Version())
	fmt.Fprintf(&b, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "- server: `%s %s`\n", filepath.Base(bin), rdvproc.QuoteArgs(args, tmp))
	fmt.Fprintf(&b, "- data: %d keys of %d bytes with %d-byte values (payload %d B/key), stored over %d keep-alive connections\n", n, keySize, valueSize, payload, conns)
	for _, note := range notes {
		fmt.Fprintf(&b, "- note: %s\n", note)
	}
	fmt.Fprintf(&b, "\n| measure | value |\n|---|---:|\n")
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	row("load over HTTP", fmt.Sprintf("%s (%.0f keys/s)", report.Round(loadTook), float64(n)/loadTook.Seconds()))
	if pprof != "" {
		perKey := float64(int64(heap1.HeapAlloc)-int64(heap0.HeapAlloc)) / float64(n)
		row("live heap after GC (HeapAlloc)", fmt.Sprintf("%s (empty server: %s)", report.MiB(heap1.HeapAlloc), report.MiB(heap0.HeapAlloc)))
		row("live heap per key (growth / keys)", fmt.Sprintf("%.0f B", perKey))
		row("overhead per key (heap per key − payload)", fmt.Sprintf("%.0f B", perKey-float64(payload)))
		row("HeapInuse", report.MiB(heap1.HeapInuse))
		row("Sys (memory from the OS)", report.MiB(heap1.Sys))
	}
	row("RSS (VmRSS)", fmt.Sprintf("%s (empty server: %s)", report.MiB(rss1), report.MiB(rss0)))
	rssNote := ""
	if pprof == "" {
		rssNote = ", no forced GC: includes garbage"
	}
	row("RSS per key (growth / keys)", fmt.Sprintf("%.0f B%s", float64(int64(rss1)-int64(rss0))/float64(n), rssNote))
	if pprof != "" {
		row("RSS / live heap", fmt.Sprintf("%.2f", float64(rss1)/float64(heap1.HeapAlloc)))
	}
	row("SIGTERM to exit (drain + final snapshot)", report.Round(stopTook))
	row("snapshot file size", fmt.Sprintf("%s (%.0f B/key)", report.MiB(fi.Size()), float64(fi.Size())/float64(n)))
	if len(journals) > 0 {
		row("journal files left after exit", fmt.Sprintf("%d, %s", len(journals), report.KiB(journalBytes)))
	}
	loaded := report.Round(loadTime)
	if selfReported != "" {
		loaded += fmt.Sprintf(" (load time the server logs: %s)", selfReported)
	}
	row("restart: process start to `msg=listening`", loaded)
	row("RSS right after restart", report.MiB(rss2))
	if treesBuilt != "" {
		row("after restart: ordered index built in the background in", treesBuilt)
	}
	if heap2.HeapAlloc != 0 {
		perKey := float64(int64(heap2.HeapAlloc)-int64(heap0.HeapAlloc)) / float64(n)
		row("after restart: live heap after GC (HeapAlloc)", fmt.Sprintf("%s, %.0f B per key (%.0f B over the payload)", report.MiB(heap2.HeapAlloc), perKey, perKey-float64(payload)))
	}
	return b.String(), nil
}

func key(i int) string { return fmt.Sprintf("mem-%028d", i) } // 32 bytes

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

// waitPprof returns the pprof address once the server logs it, or "" when
// it is not logged within pprofWait of the start or is not on 127.0.0.1.
func waitPprof(ctx context.Context, srv *rdvproc.Server) string {
	line, ok := srv.WaitLine(ctx, "pprof listening", srv.StartAt.Add(pprofWait))
	addr := rdvproc.LineAttr(line.Text, "addr")
	if !ok || !strings.HasPrefix(addr, "127.0.0.1:") {
		return ""
	}
	return addr
}
