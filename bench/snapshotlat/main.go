// Command snapshotlat measures how much a snapshot in progress slows down
// reads: GET latency of requests that overlapped a snapshot against those
// that did not, on a server holding many keys. It also times the server's
// start-up on the resulting snapshot. See bench/README.md.
//
//	go build -o /tmp/rendezvous . && go run ./bench/snapshotlat -bin /tmp/rendezvous
//	go run ./bench/snapshotlat -bin /tmp/rendezvous -keys 200000 -duration 10s   # quick
//
// The server runs with --save-interval 2s, so snapshots of every key come
// one after another while 16 goroutines GET random existing keys over
// keep-alive connections. The tool polls /metrics
// (rendezvous_last_snapshot_timestamp_seconds and
// rendezvous_last_snapshot_duration_seconds) to learn each snapshot's
// window [end - duration, end] and afterwards classifies every GET by
// whether its [start, end] overlapped a window.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
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

const (
	keySize   = 32
	valueSize = 200
	// warmup is dropped from the start of the GET samples: new connections
	// and the first requests on them.
	warmup = 500 * time.Millisecond
	// pollEvery is how often /metrics is read; far below --save-interval,
	// so no snapshot goes unseen.
	pollEvery = 100 * time.Millisecond
)

func main() {
	bin := flag.String("bin", "", "rendezvous binary to measure (required; the tool builds nothing)")
	keys := flag.Int("keys", 1000000, "keys to load")
	conns := flag.Int("conns", 16, "concurrent GET goroutines, one keep-alive connection each")
	duration := flag.Duration("duration", 20*time.Second, "how long to GET")
	saveInterval := flag.Duration("save-interval", 2*time.Second, "the server's --save-interval during the measurement")
	loadConns := flag.Int("load-conns", 32, "connections used to load the keys")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long in all")
	out := flag.String("out", "", "report file (default bench/results/snapshotlat.md in the module)")
	flag.Parse()
	if *bin == "" || *keys <= 0 || *conns <= 0 || *duration <= warmup || *saveInterval <= 0 || *loadConns <= 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./bench/snapshotlat -bin PATH [-keys N] [-conns N] [-duration D] [-save-interval D] [-timeout D] [-out FILE]")
		os.Exit(2)
	}
	if *out == "" {
		*out = filepath.Join(rdvproc.ModuleRoot(), "bench", "results", "snapshotlat.md")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	text, err := measure(ctx, options{bin: *bin, keys: *keys, conns: *conns, duration: *duration,
		saveInterval: *saveInterval, loadConns: *loadConns})
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (stopped: %v)", err, context.Cause(ctx))
		}
		fmt.Fprintln(os.Stderr, "snapshotlat:", err)
		os.Exit(1)
	}
	report.Save("snapshotlat", text, *out)
}

type options struct {
	bin          string
	keys, conns  int
	duration     time.Duration
	saveInterval time.Duration
	loadConns    int
}

// key is 32 bytes.
func key(i int) string { return fmt.Sprintf("snap-%027d", i) }

// sample is one GET: start and end as offsets from the measurement's t0.
type sample struct{ start, end time.Duration }

// window is one snapshot as /metrics reported it, as offsets from t0.
type window struct {
	start, end time.Duration
	took       time.Duration
}

func measure(ctx context.Context, o options) (string, error) {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("-bin: %w", err)
	}
	tmp, err := os.MkdirTemp("", "rendezvous-snapshotlat-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	data := filepath.Join(tmp, "s.db")
	common := []string{"--addr", "127.0.0.1:0", "--data", data, "--fsync", "no", "--rate", "off",
		"--max-keys", strconv.Itoa(max(2000000, 2*o.keys))}
	// Load without periodic snapshots (they would slow the load down),
	// stop (the final snapshot holds every key), then measure on a server
	// started on that snapshot that saves every saveInterval.
	loadArgs := append(slices.Clone(common), "--save-interval", "1h")
	args := append(slices.Clone(common), "--save-interval", o.saveInterval.String())

	srv, err := rdvproc.Start(ctx, bin, loadArgs)
	if err != nil {
		return "", err
	}
	defer srv.Kill()
	base := srv.BaseURL()
	fmt.Fprintf(os.Stderr, "snapshotlat: storing %d keys into %s over %d connections\n", o.keys, base, o.loadConns)
	loadStart := time.Now()
	err = kvload.Load(ctx, kvload.Options{
		BaseURL: base, N: o.keys, Conns: o.loadConns, Key: key,
		Value: func(i int) []byte { return kvload.Value(i, valueSize) },
	})
	if err != nil {
		return "", fmt.Errorf("loading: %w", err)
	}
	loadTook := time.Since(loadStart)
	fmt.Fprintln(os.Stderr, "snapshotlat: SIGTERM (final snapshot), then restarting with --save-interval", o.saveInterval)
	stopTook, err := srv.Stop(ctx, 2*time.Minute)
	if err != nil {
		return "", err
	}
	var starts []startup
	if srv, err = startOn(ctx, bin, args, data, &starts); err != nil {
		return "", err
	}
	defer srv.Kill()
	base = srv.BaseURL()
	metricsClient := kvload.Client(1)
	defer metricsClient.CloseIdleConnections()

	// Measure: GETs and the /metrics poller run together.
	fmt.Fprintf(os.Stderr, "snapshotlat: %d goroutines GET random keys for %s while snapshots run every %s\n", o.conns, o.duration, o.saveInterval)
	t0 := time.Now()
	t0wall := t0.UnixNano()
	logLinesBefore := len(srv.Lines("snapshot written"))
	pollCtx, stopPoll := context.WithCancel(ctx)
	seen := make(map[float64]window)
	var seenMu sync.Mutex
	var pollErrs atomic.Int64
	poll := func(c context.Context) {
		m, err := rdvproc.Metrics(c, metricsClient, base)
		if err != nil {
			pollErrs.Add(1)
			return
		}
		at, ok1 := m["rendezvous_last_snapshot_timestamp_seconds"]
		took, ok2 := m["rendezvous_last_snapshot_duration_seconds"]
		if !ok1 || !ok2 {
			return // no snapshot since the start yet
		}
		end := time.Duration(int64(at*1e9) - t0wall)
		d := time.Duration(took * 1e9)
		seenMu.Lock()
		seen[at] = window{start: end - d, end: end, took: d}
		seenMu.Unlock()
	}
	var pollWG sync.WaitGroup
	pollWG.Go(func() {
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			poll(pollCtx)
			select {
			case <-pollCtx.Done():
				return
			case <-t.C:
			}
		}
	})

	getCtx, stopGets := context.WithTimeout(ctx, o.duration)
	client := kvload.Client(o.conns)
	perWorker := make([][]sample, o.conns)
	var getErrs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range o.conns {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(t0wall)))
			samples := make([]sample, 0, 1<<16)
			for getCtx.Err() == nil {
				i := rng.IntN(o.keys)
				start := time.Since(t0)
				status, body, err := kvload.Get(getCtx, client, base, key(i))
				end := time.Since(t0)
				if getCtx.Err() != nil {
					break // cut short by the end of the run: not a sample
				}
				if err != nil || status != http.StatusOK || len(body) != valueSize {
					if getErrs.Add(1) == 1 {
						firstErr.Store(fmt.Sprintf("GET %s: status %d, %d bytes, err %v", key(i), status, len(body), err))
					}
					continue
				}
				samples = append(samples, sample{start, end})
			}
			perWorker[w] = samples
		})
	}
	wg.Wait()
	stopGets()
	measured := time.Since(t0)
	client.CloseIdleConnections()
	if ctx.Err() != nil {
		stopPoll()
		pollWG.Wait()
		return "", ctx.Err()
	}

	// A snapshot running at the end is known only once it finishes: go on
	// polling until one has started after the end (snapshots never
	// overlap), so every window that overlapped the run is seen.
	deadline := time.Now().Add(3*o.saveInterval + time.Minute)
	for {
		seenMu.Lock()
		done := false
		for _, w := range seen {
			if w.start > measured {
				done = true
			}
		}
		seenMu.Unlock()
		if done || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(pollEvery)
	}
	stopPoll()
	pollWG.Wait()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if !srv.Alive() {
		return "", fmt.Errorf("the server exited during the measurement: %s", rdvproc.LastLines(srv.Output(), 10))
	}
	snapLines := srv.Lines("snapshot written")[logLinesBefore:]

	// Windows that overlap the counted part of the run [warmup, measured].
	var windows []window
	for _, w := range seen {
		if w.end > warmup && w.start < measured {
			windows = append(windows, w)
		}
	}
	slices.SortFunc(windows, func(a, b window) int { return cmp.Compare(a.start, b.start) })
	// Log lines of snapshots that finished within the same span, as a
	// check that polling saw them all.
	loggedInRun := 0
	for _, l := range snapLines {
		off := l.At.Sub(t0)
		if off > warmup && off-durationAttr(l.Text) < measured {
			loggedInRun++
		}
	}

	var inside, outside, all []time.Duration
	for _, ws := range perWorker {
		for _, s := range ws {
			if s.start < warmup {
				continue
			}
			d := s.end - s.start
			all = append(all, d)
			if overlaps(windows, s) {
				inside = append(inside, d)
			} else {
				outside = append(outside, d)
			}
		}
	}
	if len(all) == 0 {
		return "", fmt.Errorf("no successful GET (%d errors; first: %v)", getErrs.Load(), firstErr.Load())
	}
	var inWindows time.Duration
	for _, w := range windows {
		inWindows += min(w.end, measured) - max(w.start, warmup)
	}
	counted := measured - warmup

	// Snapshot size: the file now, and the sizes the server logged.
	var snapBytes []int64
	for _, l := range snapLines {
		if b, err := strconv.ParseInt(rdvproc.LineAttr(l.Text, "bytes"), 10, 64); err == nil {
			snapBytes = append(snapBytes, b)
		}
	}
	fi, err := os.Stat(data)
	if err != nil {
		return "", fmt.Errorf("snapshot file: %w", err)
	}

	// Restart on the snapshot once more: SIGTERM writes a final one, then
	// time the start-up.
	fmt.Fprintln(os.Stderr, "snapshotlat: SIGTERM, then restarting on the snapshot")
	if _, err := srv.Stop(ctx, 2*time.Minute); err != nil {
		return "", err
	}
	srv2, err := startOn(ctx, bin, args, data, &starts)
	if err != nil {
		return "", fmt.Errorf("restart: %w", err)
	}
	defer srv2.Kill()
	if _, err := srv2.Stop(ctx, 2*time.Minute); err != nil {
		return "", fmt.Errorf("last stop: %w", err)
	}

	// Report.
	in, outS, allS := latency.Summarize(inside), latency.Summarize(outside), latency.Summarize(all)
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## rendezvous GET latency during snapshots\n\n")
	fmt.Fprintf(&b, "- machine: %d CPUs, %s/%s, host %s; tool built with %s; load average at the end %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, host, runtime.Version(), report.LoadAverage())
	fmt.Fprintf(&b, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "- server: `%s %s` (%s)\n", filepath.Base(bin), rdvproc.QuoteArgs(args, tmp), bin)
	fmt.Fprintf(&b, "- data: %d keys of %d bytes with %d-byte values, stored over HTTP with %d keep-alive connections in %s\n", o.keys, keySize, valueSize, o.loadConns, report.Round(loadTook))
	fmt.Fprintf(&b, "- reads: %d goroutines, one keep-alive connection each, GET of uniformly random existing keys for %s (the first %s dropped as warm-up): %.0f GET/s; latency from sending the request to reading the whole answer, as the Go client sees it (the client shares the 2 CPUs with the server)\n",
		o.conns, report.Round(measured), warmup, float64(len(all))/counted.Seconds())
	fmt.Fprintf(&b, "- snapshot windows: [end − duration, end] from /metrics, polled every %s; a GET is \"during a snapshot\" when its [start, end] overlaps a window. %d windows overlapped the run (the server logged %d snapshots in the same span), covering %.0f%% of it\n",
		pollEvery, len(windows), loggedInRun, 100*inWindows.Seconds()/counted.Seconds())
	if n := getErrs.Load(); n > 0 {
		fmt.Fprintf(&b, "- **%d GETs failed** (first: %v); they are not in the table\n", n, firstErr.Load())
	}
	if n := pollErrs.Load(); n > 0 {
		fmt.Fprintf(&b, "- %d /metrics polls failed\n", n)
	}
	fmt.Fprintf(&b, "\n| GETs | count | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|\n")
	row := func(name string, s latency.Summary) {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", name, s.N,
			latency.Format(s.P50), latency.Format(s.P90), latency.Format(s.P99), latency.Format(s.P999), latency.Format(s.Max))
	}
	row("no snapshot running", outS)
	row("during a snapshot", in)
	row("all", allS)

	fmt.Fprintf(&b, "\n| measure | value | target |\n|---|---:|---|\n")
	ratio := "n/a (no GET during a snapshot)"
	verdict := "—"
	if in.N > 0 && outS.N > 0 {
		r := float64(in.P99) / float64(outS.P99)
		ratio = fmt.Sprintf("%.2f", r)
		verdict = fmt.Sprintf("≤ 2: %s (%.3f)", report.MetOrMissed(r <= 2), r)
		if in.N < 1000 {
			verdict += fmt.Sprintf(" (only %d GETs during snapshots: p99 is rough)", in.N)
		}
	}
	fmt.Fprintf(&b, "| p99 during a snapshot / p99 without | %s | %s |\n", ratio, verdict)
	if len(windows) > 0 {
		var sum, mx time.Duration
		for _, w := range windows {
			sum += w.took
			mx = max(mx, w.took)
		}
		fmt.Fprintf(&b, "| snapshot duration (mean, max of %d) | %s, %s | — |\n", len(windows), report.Round(sum/time.Duration(len(windows))), report.Round(mx))
	}
	size := fi.Size()
	if len(snapBytes) > 0 {
		size = snapBytes[len(snapBytes)-1]
	}
	fmt.Fprintf(&b, "| snapshot size | %s (%.0f B/key) | — |\n", report.MiB(size), float64(size)/float64(o.keys))
	fmt.Fprintf(&b, "| SIGTERM to exit (drain + final snapshot) | %s | — |\n", report.Round(stopTook))
	var worst time.Duration
	var texts []string
	for _, st := range starts {
		worst = max(worst, st.took)
		t := report.Round(st.took)
		if st.logged != "" {
			t += fmt.Sprintf(" (server logs the load as %s)", st.logged)
		}
		if st.keys != strconv.Itoa(o.keys) {
			t += fmt.Sprintf(" **keys=%s, expected %d**", st.keys, o.keys)
		}
		texts = append(texts, t)
	}
	startTarget := "< 2 s at 1,000,000 keys: "
	if o.keys >= 1000000 {
		startTarget += report.MetOrMissed(worst < 2*time.Second)
	} else {
		startTarget += fmt.Sprintf("not judged at %d keys", o.keys)
	}
	fmt.Fprintf(&b, "| start-up on the snapshot (%s): process start to `msg=listening`, before and after the measurement | %s | %s |\n",
		report.MiB(starts[0].snapshot), strings.Join(texts, "; "), startTarget)
	return b.String(), nil
}

// startup is one start of the server on the snapshot.
type startup struct {
	took     time.Duration // process start to the listening line
	logged   string        // the load duration the server logs
	keys     string        // keys= of the listening line
	snapshot int64         // the snapshot file's size
}

// startOn starts the server on an existing snapshot and appends how long
// that took to starts.
func startOn(ctx context.Context, bin string, args []string, data string, starts *[]startup) (*rdvproc.Server, error) {
	fi, err := os.Stat(data)
	if err != nil {
		return nil, fmt.Errorf("snapshot file: %w", err)
	}
	srv, err := rdvproc.Start(ctx, bin, args)
	if err != nil {
		return nil, err
	}
	*starts = append(*starts, startup{
		took:     srv.ListenAt.Sub(srv.StartAt),
		logged:   srv.Attr("data loaded", "duration"),
		keys:     srv.Attr("listening", "keys"),
		snapshot: fi.Size(),
	})
	return srv, nil
}

// overlaps reports whether s overlaps any of the windows, sorted by start.
// Snapshots never overlap one another, so the ends are sorted too.
func overlaps(windows []window, s sample) bool {
	// Skip the windows that ended before s started, then check those that
	// start before s ends.
	i, _ := slices.BinarySearchFunc(windows, s.start, func(w window, t time.Duration) int { return cmp.Compare(w.end, t) })
	for ; i < len(windows) && windows[i].start < s.end; i++ {
		if windows[i].end > s.start {
			return true
		}
	}
	return false
}

// durationAttr is the duration= of a log line, or 0.
func durationAttr(line string) time.Duration {
	d, _ := time.ParseDuration(rdvproc.LineAttr(line, "duration"))
	return d
}
