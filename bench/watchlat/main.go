// Command watchlat measures the change feed: how long a set takes to reach
// W server-sent-event watchers of its prefix, and how much write
// throughput 1000 connected watchers cost. See bench/README.md.
//
//	go build -o /tmp/rendezvous . && go run ./bench/watchlat -bin /tmp/rendezvous
//	go run ./bench/watchlat -bin /tmp/rendezvous -events 50 -duration 2s -rounds 1   # quick
//
// Latency: for each W, a fresh server (memory only, no rate limit), W
// connections to GET /watch/room/ (net/http, one goroutine per watcher
// reading the stream line by line), then one writer sets room/k0, room/k1,
// ... every -interval, each value the send time (UnixNano as text); each
// watcher records the time it read the event's data line minus that send
// time.
//
// Throughput: wrk SET of new keys (bench/lua/set_new.lua, keys n<run>-...)
// against a fresh server with no watchers, with -idle watchers of a prefix
// no write matches (room/), and with -idle watchers of a prefix every write
// matches (n), so that every watcher gets every event. The watchers' streams
// are read and discarded.
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
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rendezvous-kv/rendezvous/bench/internal/kvload"
	"github.com/rendezvous-kv/rendezvous/bench/internal/latency"
	"github.com/rendezvous-kv/rendezvous/bench/internal/rdvproc"
	"github.com/rendezvous-kv/rendezvous/bench/internal/report"
)

type options struct {
	bin       string
	watchers  []int
	events    int
	interval  time.Duration
	idle      int
	duration  time.Duration
	rounds    int
	conns     int
	threads   int
	skipLat   bool
	skipWrite bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "rendezvous binary to measure (required; the tool builds nothing)")
	ws := flag.String("watchers", "1,100,1000", "watcher counts for the latency part, comma-separated")
	flag.IntVar(&o.events, "events", 200, "sets the writer makes per watcher count")
	flag.DurationVar(&o.interval, "interval", 10*time.Millisecond, "time between the writer's sets")
	flag.IntVar(&o.idle, "idle", 1000, "watchers connected during the throughput runs")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "wrk -d of each throughput run (whole seconds)")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of the three throughput runs (none, not matching, matching)")
	flag.IntVar(&o.conns, "conns", 64, "wrk connections")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.BoolVar(&o.skipLat, "no-latency", false, "skip the latency part")
	flag.BoolVar(&o.skipWrite, "no-throughput", false, "skip the throughput part")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long in all")
	out := flag.String("out", "", "report file (default bench/results/watchlat.md in the module)")
	flag.Parse()
	for _, f := range strings.Split(*ws, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			o.watchers = nil
			break
		}
		o.watchers = append(o.watchers, n)
	}
	if o.bin == "" || len(o.watchers) == 0 || o.events <= 0 || o.interval <= 0 || o.idle <= 0 ||
		o.duration < time.Second || o.duration%time.Second != 0 || o.rounds <= 0 || o.conns <= 0 || o.threads <= 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./bench/watchlat -bin PATH [-watchers 1,100,1000] [-events N] [-interval D] [-idle N] [-duration 5s] [-rounds N] [-timeout D] [-out FILE]")
		os.Exit(2)
	}
	if *out == "" {
		*out = filepath.Join(rdvproc.ModuleRoot(), "bench", "results", "watchlat.md")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	text, err := measure(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (stopped: %v)", err, context.Cause(ctx))
		}
		fmt.Fprintln(os.Stderr, "watchlat:", err)
		os.Exit(1)
	}
	report.Save("watchlat", text, *out)
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "watchlat: "+format+"\n", args...) }

func measure(ctx context.Context, o options) (string, error) {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("-bin: %w", err)
	}
	most := max(o.idle, slices.Max(o.watchers))
	// Each watcher is a socket here and one in the server (a child, which
	// inherits the limit), plus wrk's connections and some slack.
	nofile, err := rdvproc.RaiseFileLimit(uint64(most + o.conns + 256))
	if err != nil {
		return "", fmt.Errorf("raising the open-file limit: %w", err)
	}
	if nofile < uint64(most+o.conns+64) {
		return "", fmt.Errorf("open-file limit is %d (hard limit), too low for %d watchers", nofile, most)
	}
	limit := strconv.Itoa(max(2000, most+16))
	args := []string{"--addr", "127.0.0.1:0", "--data", "", "--rate", "off", "--max-keys", "5000000",
		"--max-watchers", limit, "--max-watchers-per-ip", limit, "--max-watchers-per-net", limit}

	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## rendezvous watch latency and write throughput with watchers\n\n")
	fmt.Fprintf(&b, "- machine: %d CPUs, %s/%s, host %s; tool built with %s; open-file limit %d\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, host, runtime.Version(), nofile)
	fmt.Fprintf(&b, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "- server: `%s %s` (%s), a fresh one for every row and run\n", filepath.Base(bin), rdvproc.QuoteArgs(args, ""), bin)
	fmt.Fprintf(&b, "- the watchers, the writer or wrk, and the server share the same %d CPUs (loopback)\n", runtime.NumCPU())

	if !o.skipLat {
		if err := latencyPart(ctx, &b, bin, args, o); err != nil {
			return "", err
		}
	}
	if !o.skipWrite {
		if err := throughputPart(ctx, &b, bin, args, o); err != nil {
			return "", err
		}
	}
	fmt.Fprintf(&b, "\n- load average at the end: %s\n", report.LoadAverage())
	return b.String(), nil
}

// --- watchers --------------------------------------------------------------

// stream is one open watch connection.
type stream struct {
	body io.ReadCloser
	done chan struct{} // closed when the reader goroutine returns

	// filled by the reader goroutine; read after done
	err      error
	errEvent bool  // the server ended the stream with an error event
	bytes    int64 // bytes read
}

// watchClient opens each watch on a connection of its own.
func watchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableKeepAlives:     true,
		DisableCompression:    true,
		ResponseHeaderTimeout: 10 * time.Second,
	}}
}

// openWatchers opens n watches of prefix, 64 at a time, and starts read on
// each in a goroutine of its own once its answer's headers arrived.
func openWatchers(ctx context.Context, client *http.Client, base, prefix string, n int, read func(i int, s *stream, r io.Reader)) ([]*stream, error) {
	streams := make([]*stream, n)
	sem := make(chan struct{}, 64)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/watch/"+prefix, nil)
			if err == nil {
				var resp *http.Response
				if resp, err = client.Do(req); err == nil {
					if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
						body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
						resp.Body.Close()
						err = fmt.Errorf("status %d, %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), bytes.TrimSpace(body))
					} else {
						s := &stream{body: resp.Body, done: make(chan struct{})}
						streams[i] = s
						go func() {
							defer close(s.done)
							read(i, s, resp.Body)
						}()
					}
				}
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("watch %d of %d: %w", i+1, n, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		closeStreams(streams)
		return nil, firstErr
	}
	return streams, nil
}

// closeStreams ends every stream and waits for its reader.
func closeStreams(streams []*stream) {
	for _, s := range streams {
		if s != nil {
			s.body.Close()
		}
	}
	for _, s := range streams {
		if s != nil {
			<-s.done
		}
	}
}

// waitWatchers waits until the server's rendezvous_watchers gauge is want.
func waitWatchers(ctx context.Context, client *http.Client, base string, want int) error {
	deadline := time.Now().Add(10 * time.Second)
	var got float64 = -1
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m, err := rdvproc.Metrics(ctx, client, base)
		if err == nil {
			if got = m["rendezvous_watchers"]; int(got) == want {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the server reports %v watchers, want %d", got, want)
}

// --- latency -----------------------------------------------------------------

type latRow struct {
	w, sent    int
	received   int64
	errEvents  int
	ended      int // streams that ended before the tool closed them
	pairs      latency.Summary
	allGot     latency.Summary // per event: until the last watcher had it
	setLatency latency.Summary
}

func latencyPart(ctx context.Context, b *strings.Builder, bin string, args []string, o options) error {
	var rows []latRow
	for _, w := range o.watchers {
		logf("latency: %d watchers of /watch/room/, %d sets every %s", w, o.events, o.interval)
		row, err := latencyRun(ctx, bin, args, o, w)
		if err != nil {
			return fmt.Errorf("latency with %d watchers: %w", w, err)
		}
		logf("latency: %d watchers: p50 %s, p99 %s over %d pairs", w, latency.Format(row.pairs.P50), latency.Format(row.pairs.P99), row.pairs.N)
		rows = append(rows, row)
	}
	fmt.Fprintf(b, "\n### Latency from a set to its event at each watcher\n\n")
	fmt.Fprintf(b, "- W watchers of `/watch/room/`, each a connection of its own read line by line by a goroutine of its own (net/http client, bufio, encoding/json for the data line)\n")
	fmt.Fprintf(b, "- one writer: %d sets of `room/k0`, `room/k1`, ... every %s (POST /set over one keep-alive connection, waiting for each answer), each value the send time as UnixNano text\n", o.events, o.interval)
	fmt.Fprintf(b, "- latency = when a watcher read the event's `data:` line − the send time taken just before the POST; percentiles over all (watcher, event) pairs; \"all W had it\" is, per event, the latency of the last watcher to read it\n")
	fmt.Fprintf(b, "\n| watchers | pairs received / expected | p50 | p90 | p99 | max | all W had it: p50 | all W had it: p99 | set answered: p50 |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var warn []string
	for _, r := range rows {
		fmt.Fprintf(b, "| %d | %d / %d | %s | %s | %s | %s | %s | %s | %s |\n", r.w, r.received, r.w*r.sent,
			latency.Format(r.pairs.P50), latency.Format(r.pairs.P90), latency.Format(r.pairs.P99), latency.Format(r.pairs.Max),
			latency.Format(r.allGot.P50), latency.Format(r.allGot.P99), latency.Format(r.setLatency.P50))
		if r.received != int64(r.w*r.sent) {
			warn = append(warn, fmt.Sprintf("%d watchers: %d of %d events missing", r.w, int64(r.w*r.sent)-r.received, r.w*r.sent))
		}
		if r.errEvents > 0 || r.ended > 0 {
			warn = append(warn, fmt.Sprintf("%d watchers: %d streams ended early, %d with an error event (dropped as too slow)", r.w, r.ended, r.errEvents))
		}
	}
	if len(warn) > 0 {
		fmt.Fprintf(b, "\nWarnings:\n")
		for _, w := range warn {
			fmt.Fprintf(b, "- %s\n", w)
		}
	}
	return nil
}

// eventData is the part of a watch event's data the tool reads.
type eventData struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func latencyRun(ctx context.Context, bin string, args []string, o options, w int) (latRow, error) {
	row := latRow{w: w, sent: o.events}
	srv, err := rdvproc.Start(ctx, bin, args)
	if err != nil {
		return row, err
	}
	defer srv.Kill()
	base := srv.BaseURL()
	metricsClient := kvload.Client(1)
	defer metricsClient.CloseIdleConnections()

	// lat[i][e] is watcher i's latency for event e, or -1.
	lat := make([][]time.Duration, w)
	for i := range lat {
		lat[i] = make([]time.Duration, o.events)
		for e := range lat[i] {
			lat[i][e] = -1
		}
	}
	var received atomic.Int64
	read := func(i int, s *stream, r io.Reader) {
		br := bufio.NewReaderSize(r, 16<<10)
		var ev eventData
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				s.err = err
				return
			}
			now := time.Now().UnixNano()
			switch {
			case bytes.HasPrefix(line, []byte("data: ")):
				if err := json.Unmarshal(line[len("data: "):], &ev); err != nil {
					s.err = fmt.Errorf("data line %q: %w", line, err)
					return
				}
				e, err1 := strconv.Atoi(strings.TrimPrefix(ev.Key, "room/k"))
				sent, err2 := strconv.ParseInt(ev.Value, 10, 64)
				if err1 != nil || err2 != nil || e < 0 || e >= o.events {
					continue // not one of ours
				}
				if lat[i][e] < 0 {
					lat[i][e] = time.Duration(now - sent)
					received.Add(1)
				}
			case bytes.HasPrefix(line, []byte("event: error")):
				s.errEvent = true
			}
		}
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	streams, err := openWatchers(wctx, watchClient(), base, "room/", w, read)
	if err != nil {
		return row, err
	}
	defer closeStreams(streams)
	if err := waitWatchers(ctx, metricsClient, base, w); err != nil {
		return row, err
	}

	writer := kvload.Client(1)
	defer writer.CloseIdleConnections()
	var setLat []time.Duration
	tick := time.NewTicker(o.interval)
	for e := range o.events {
		sent := time.Now()
		if err := kvload.Set(ctx, writer, base, "room/k"+strconv.Itoa(e), []byte(strconv.FormatInt(sent.UnixNano(), 10))); err != nil {
			tick.Stop()
			return row, err
		}
		setLat = append(setLat, time.Since(sent))
		select {
		case <-ctx.Done():
			tick.Stop()
			return row, ctx.Err()
		case <-tick.C:
		}
	}
	tick.Stop()
	want := int64(w * o.events)
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if ctx.Err() != nil {
		return row, ctx.Err()
	}
	// Streams that ended on their own, before the tool closes them.
	for _, s := range streams {
		select {
		case <-s.done:
			row.ended++
		default:
		}
	}
	stopWatch()
	closeStreams(streams)
	for _, s := range streams {
		if s.errEvent {
			row.errEvents++
		}
	}
	row.received = received.Load()
	var pairs, allGot []time.Duration
	for e := range o.events {
		var worst time.Duration
		complete := true
		for i := range w {
			d := lat[i][e]
			if d < 0 {
				complete = false
				continue
			}
			pairs = append(pairs, d)
			worst = max(worst, d)
		}
		if complete {
			allGot = append(allGot, worst)
		}
	}
	row.pairs = latency.Summarize(pairs)
	row.allGot = latency.Summarize(allGot)
	row.setLatency = latency.Summarize(setLat)
	if !srv.Alive() {
		return row, fmt.Errorf("the server exited: %s", rdvproc.LastLines(srv.Output(), 10))
	}
	if _, err := srv.Stop(ctx, 30*time.Second); err != nil {
		return row, err
	}
	return row, nil
}

// --- throughput --------------------------------------------------------------

type config struct {
	name   string
	prefix string
	n      int
}

type tputRun struct {
	rps, p50, p99 float64 // req/s, µs, µs
	requests      int64
	bad           int64 // non-2xx answers and socket errors
	left          int   // watchers still connected when wrk ended (client side)
	dropped       int   // streams the server ended with an error event
	serverDropped float64
	bytes         int64
}

func throughputPart(ctx context.Context, b *strings.Builder, bin string, args []string, o options) error {
	wrkPath, err := ensureWrk(ctx)
	if err != nil {
		return err
	}
	script := filepath.Join(rdvproc.ModuleRoot(), "bench", "lua", "set_new.lua")
	if _, err := os.Stat(script); err != nil {
		return fmt.Errorf("wrk script: %w (run from the module)", err)
	}
	configs := []config{
		{"no watchers", "", 0},
		{fmt.Sprintf("%d watchers of `room/` (no write matches)", o.idle), "room/", o.idle},
		{fmt.Sprintf("%d watchers of `n` (every write matches)", o.idle), "n", o.idle},
	}
	runs := make([][]tputRun, len(configs))
	step := 0
	for round := range o.rounds {
		for ci, c := range configs {
			step++
			logf("throughput [%d/%d]: %s", step, o.rounds*len(configs), c.name)
			r, err := throughputRun(ctx, bin, args, o, wrkPath, script, c, fmt.Sprintf("w%d", step))
			if err != nil {
				return fmt.Errorf("throughput, %s, round %d: %w", c.name, round+1, err)
			}
			logf("throughput: %.0f req/s, p99 %.0f µs, %d of %d watchers left, %d dropped", r.rps, r.p99, r.left, c.n, r.dropped)
			runs[ci] = append(runs[ci], r)
		}
	}
	mean := func(rs []tputRun, f func(tputRun) float64) float64 {
		s := 0.0
		for _, r := range rs {
			s += f(r)
		}
		return s / float64(len(rs))
	}
	base := mean(runs[0], func(r tputRun) float64 { return r.rps })
	fmt.Fprintf(b, "\n### Write throughput with watchers connected\n\n")
	fmt.Fprintf(b, "- wrk %d threads, %d connections, %s per run, `bench/lua/set_new.lua` (POST of a key never written before, `n<run>-<thread>-<counter>`, 200-byte value)\n", o.threads, o.conns, o.duration)
	fmt.Fprintf(b, "- %d round(s) in the order none, not matching, matching; each run on a fresh server with its watchers connected (and counted in /metrics) before wrk starts; the tool reads every stream and discards it\n", o.rounds)
	fmt.Fprintf(b, "- ratio: mean req/s / mean req/s with no watchers; left: watchers still connected when wrk ended (mean); dropped: streams that ended with an `error` event (too slow), and the server's rendezvous_watchers_dropped_total (means); events: event-stream bytes the watchers received in all (mean)\n")
	fmt.Fprintf(b, "\n| watchers | req/s | runs | ratio to none | target | p50 | p99 | left | dropped | events received |\n|---|---:|---|---:|---|---:|---:|---:|---:|---:|\n")
	var warn []string
	for ci, c := range configs {
		rs := runs[ci]
		rps := mean(rs, func(r tputRun) float64 { return r.rps })
		var list []string
		for _, r := range rs {
			list = append(list, fmt.Sprintf("%.0f", r.rps))
			if r.bad > 0 {
				warn = append(warn, fmt.Sprintf("%s: %d of %d requests failed or were not 2xx", c.name, r.bad, r.requests))
			}
		}
		ratio, target := "1.00", "—"
		if ci > 0 {
			ratio = fmt.Sprintf("%.2f", rps/base)
			target = fmt.Sprintf("≥ 0.9: %s (%.3f)", report.MetOrMissed(rps/base >= 0.9), rps/base)
		}
		left, dropped := "—", "—"
		if c.n > 0 {
			left = fmt.Sprintf("%.0f of %d", mean(rs, func(r tputRun) float64 { return float64(r.left) }), c.n)
			dropped = fmt.Sprintf("%.0f (server: %.0f)", mean(rs, func(r tputRun) float64 { return float64(r.dropped) }),
				mean(rs, func(r tputRun) float64 { return r.serverDropped }))
		}
		fmt.Fprintf(b, "| %s | %.0f | %s | %s | %s | %.2f ms | %.2f ms | %s | %s | %.1f MiB |\n", c.name, rps, strings.Join(list, ", "), ratio, target,
			mean(rs, func(r tputRun) float64 { return r.p50 })/1000, mean(rs, func(r tputRun) float64 { return r.p99 })/1000,
			left, dropped, mean(rs, func(r tputRun) float64 { return float64(r.bytes) })/(1<<20))
	}
	if len(warn) > 0 {
		fmt.Fprintf(b, "\nWarnings (a row with warnings is not a valid measurement):\n")
		for _, w := range warn {
			fmt.Fprintf(b, "- %s\n", w)
		}
	}
	return nil
}

// tailWriter counts bytes and keeps the last few.
type tailWriter struct {
	n    int64
	tail []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.n += int64(len(p))
	t.tail = append(t.tail, p...)
	if len(t.tail) > 512 {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-256:]...)
	}
	return len(p), nil
}

func throughputRun(ctx context.Context, bin string, args []string, o options, wrkPath, script string, c config, runID string) (tputRun, error) {
	var r tputRun
	srv, err := rdvproc.Start(ctx, bin, args)
	if err != nil {
		return r, err
	}
	defer srv.Kill()
	base := srv.BaseURL()
	metricsClient := kvload.Client(1)
	defer metricsClient.CloseIdleConnections()

	var streams []*stream
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if c.n > 0 {
		discard := func(_ int, s *stream, rd io.Reader) {
			var t tailWriter
			buf := make([]byte, 32<<10)
			_, s.err = io.CopyBuffer(&t, rd, buf)
			s.bytes = t.n
			s.errEvent = bytes.Contains(t.tail, []byte("event: error"))
		}
		if streams, err = openWatchers(wctx, watchClient(), base, c.prefix, c.n, discard); err != nil {
			return r, err
		}
		defer closeStreams(streams)
		if err := waitWatchers(ctx, metricsClient, base, c.n); err != nil {
			return r, err
		}
	}

	secs := int(o.duration / time.Second)
	wctxRun, cancel := context.WithTimeout(ctx, o.duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(wctxRun, wrkPath, "-t"+strconv.Itoa(o.threads), "-c"+strconv.Itoa(o.conns), "-d"+strconv.Itoa(secs)+"s",
		"--timeout", "5s", "--latency", "-s", script, base, "--", runID)
	cmd.Env = rdvproc.CleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("wrk: %v: %s", err, rdvproc.LastLines(string(out), 10))
	}
	line := benchLineRE.FindString(string(out))
	if line == "" {
		return r, fmt.Errorf("no BENCH line from wrk: %s", rdvproc.LastLines(string(out), 10))
	}
	field := func(name string) float64 {
		m := regexp.MustCompile(`\b` + name + `=([0-9.]+)`).FindStringSubmatch(line)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	r.rps, r.p50, r.p99 = field("rps"), field("p50_us"), field("p99_us")
	r.requests = int64(field("requests"))
	r.bad = int64(field("status") + field("connect") + field("read") + field("write") + field("timeout"))
	if r.requests == 0 {
		return r, errors.New("wrk completed no request")
	}
	if !srv.Alive() {
		return r, fmt.Errorf("the server exited: %s", rdvproc.LastLines(srv.Output(), 10))
	}
	if m, err := rdvproc.Metrics(ctx, metricsClient, base); err == nil {
		r.serverDropped = m["rendezvous_watchers_dropped_total"]
	}
	for _, s := range streams {
		select {
		case <-s.done:
		default:
			r.left++
		}
	}
	stopWatch()
	closeStreams(streams)
	for _, s := range streams {
		r.bytes += s.bytes
		if s.errEvent {
			r.dropped++
		}
	}
	if _, err := srv.Stop(ctx, 30*time.Second); err != nil {
		return r, err
	}
	return r, nil
}

var benchLineRE = regexp.MustCompile(`(?m)^BENCH .*$`)

// ensureWrk finds wrk, installing it from Debian when missing and root.
func ensureWrk(ctx context.Context) (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("wrk is not on PATH: install it (apt-get install wrk)")
	}
	logf("installing wrk from Debian")
	for _, a := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "wrk"}} {
		cmd := exec.CommandContext(ctx, "apt-get", a...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("apt-get %s: %w", a[0], err)
		}
	}
	return exec.LookPath("wrk")
}
