// Command kvconnect measures the KV Connect front end against the HTTP
// API on one server, with one Go load generator for both so the ratio
// compares the protocols, not the tools:
//
//   - snapshot_read of one existing key (as Deno's kv.get sends it)
//     against GET /get of the same keys;
//   - atomic_write of one SET against POST /set;
//
// alternated in blocks in one run, with -conns keep-alive HTTP/1.1
// connections (as @deno/kv talks; Deno itself uses HTTP/2). Then, with
// -watchers KV Connect watch streams open on one key, the latency from a
// curl-like POST /set to the frame at every watcher, p50 and p99.
//
//	go build -o /tmp/rdv . && go run ./bench/kvconnect -bin /tmp/rdv
//
// Only 127.0.0.1 is contacted; the server process is stopped on exit.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/rendezvous-kv/rendezvous/bench/internal/kvload"
	"github.com/rendezvous-kv/rendezvous/bench/internal/latency"
	"github.com/rendezvous-kv/rendezvous/bench/internal/rdvproc"
)

func main() {
	bin := flag.String("bin", "", "the rendezvous binary (go build -o /tmp/rdv .)")
	dur := flag.Duration("duration", 3*time.Second, "length of one run")
	blocks := flag.Int("blocks", 3, "runs of each scenario, alternated")
	conns := flag.Int("conns", 64, "concurrent keep-alive connections")
	keys := flag.Int("keys", 1000, "preloaded keys")
	watchers := flag.Int("watchers", 100, "watch streams for the latency run (0 skips it)")
	writes := flag.Int("writes", 200, "writes timed in the latency run")
	authFile := flag.Bool("auth", false, "run with a token file: both sides send the token of an identity granted rw:")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "kvconnect: -bin is required (go build -o /tmp/rdv .)")
		os.Exit(2)
	}
	if err := run(*bin, *dur, *blocks, *conns, *keys, *watchers, *writes, *authFile); err != nil {
		fmt.Fprintln(os.Stderr, "kvconnect:", err)
		os.Exit(1)
	}
}

func run(bin string, dur time.Duration, blocks, conns, nkeys, watchers, writes int, withAuth bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	args := []string{"--addr", "127.0.0.1:0", "--data", "", "--rate", "off",
		"--max-value-size", "65536", "--max-keys", "2000000",
		"--max-watchers", "10000", "--max-watchers-per-ip", "10000", "--max-watchers-per-net", "10000"}
	if withAuth {
		// The token "bench" is the identity the measured requests carry;
		// anonymous callers keep every right, for the preload and the
		// watch run's writes.
		dir, err := os.MkdirTemp("", "kvconnect-bench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "tokens")
		if err := os.WriteFile(path, []byte("bench bench rw:\n"), 0o600); err != nil {
			return err
		}
		args = append(args, "--auth-file", path, "--anonymous", "rw:")
	}
	srv, err := rdvproc.Start(ctx, bin, args)
	if err != nil {
		return err
	}
	defer srv.Stop(context.Background(), 10*time.Second)
	base := srv.BaseURL()
	key := func(i int) string { return "bench/k" + strconv.Itoa(i) }
	value := bytes.Repeat([]byte("v"), 200)
	if err := kvload.Load(ctx, kvload.Options{BaseURL: base, N: nkeys, Key: key, Value: func(int) []byte { return value }, Conns: 32}); err != nil {
		return err
	}
	client := kvload.Client(conns)
	endpoint, token, dbID, err := metadata(client, base)
	if err != nil {
		return err
	}
	kvHeaders := func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/x-protobuf")
		r.Header.Set("X-Denokv-Version", "3")
		r.Header.Set("X-Denokv-Database-Id", dbID)
	}
	reads := make([][]byte, nkeys)
	sets := make([][]byte, nkeys)
	for i := range nkeys {
		k := tuple(key(i))
		reads[i] = msg(1, msg(1, k, 2, append(slices.Clone(k), 0), 3, 1))
		sets[i] = msg(2, msg(1, k, 2, msg(1, value, 2, 3), 3, 1))
	}
	type scenario struct {
		name string
		req  func(i int) (*http.Request, error)
	}
	post := func(url string, body []byte, kvc bool) (*http.Request, error) {
		r, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		switch {
		case err == nil && kvc:
			kvHeaders(r)
		case err == nil && withAuth:
			r.Header.Set("Authorization", "Bearer bench")
		}
		return r, err
	}
	pairs := [][2]scenario{
		{
			{"GET /get", func(i int) (*http.Request, error) {
				r, err := http.NewRequest(http.MethodGet, base+"/get/"+key(i), nil)
				if err == nil && withAuth {
					r.Header.Set("Authorization", "Bearer bench")
				}
				return r, err
			}},
			{"snapshot_read", func(i int) (*http.Request, error) { return post(endpoint+"/snapshot_read", reads[i], true) }},
		},
		{
			{"POST /set", func(i int) (*http.Request, error) { return post(base+"/set/"+key(i), value, false) }},
			{"atomic_write", func(i int) (*http.Request, error) { return post(endpoint+"/atomic_write", sets[i], true) }},
		},
	}
	fmt.Printf("load: %d connections, %d keys of %d bytes, %d blocks of 4 runs of %s (ABBA, BAAB, ...); medians of %d runs per side\n\n",
		conns, nkeys, len(value), blocks, dur, 2*blocks)
	fmt.Println("| scenario | HTTP API req/s | KV Connect req/s | ratio |")
	fmt.Println("|---|---:|---:|---:|")
	for _, pair := range pairs {
		var rates [2][]float64
		// ABBA order, so a drift of the machine's load during a block
		// weighs on both sides alike.
		for b := range blocks {
			order := []int{0, 1, 1, 0}
			if b%2 == 1 {
				order = []int{1, 0, 0, 1}
			}
			for _, j := range order {
				sc := pair[j]
				n, err := drive(ctx, client, conns, dur, nkeys, sc.req)
				if err != nil {
					return fmt.Errorf("%s: %w", sc.name, err)
				}
				rates[j] = append(rates[j], n)
			}
		}
		a, b := median(rates[0]), median(rates[1])
		fmt.Printf("| %s vs %s | %.0f | %.0f | %.2f |\n", pair[0].name, pair[1].name, a, b, b/a)
	}
	if watchers > 0 {
		if err := watchLatency(ctx, base, endpoint, kvHeaders, watchers, writes); err != nil {
			return err
		}
	}
	return nil
}

// drive sends requests from conns goroutines for dur and returns the rate
// of 200 answers; any other answer is an error.
func drive(ctx context.Context, client *http.Client, conns int, dur time.Duration, nkeys int, mk func(int) (*http.Request, error)) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var done atomic.Int64
	var once sync.Once
	var failure error
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conns {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += conns {
				req, err := mk(i % nkeys)
				if err != nil {
					once.Do(func() { failure = err })
					return
				}
				resp, err := client.Do(req.WithContext(ctx))
				if err != nil {
					if ctx.Err() == nil {
						once.Do(func() { failure = err })
					}
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					once.Do(func() { failure = fmt.Errorf("status %d", resp.StatusCode) })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds(), failure
}

// watchLatency opens watchers KV Connect watches of one key, then times
// writes from a POST /set to the frame at each watcher.
func watchLatency(ctx context.Context, base, endpoint string, kvHeaders func(*http.Request), watchers, writes int) error {
	const k = "bench/leader"
	body := msg(1, msg(1, tuple(k)))
	frames := make(chan time.Time, watchers*4)
	client := kvload.Client(watchers + 4)
	var opened sync.WaitGroup
	for range watchers {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/watch", bytes.NewReader(body))
		if err != nil {
			return err
		}
		kvHeaders(req)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("watch: status %d", resp.StatusCode)
		}
		opened.Add(1)
		go func() {
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			first := true
			for {
				var n [4]byte
				if _, err := io.ReadFull(br, n[:]); err != nil {
					return
				}
				size := binary.LittleEndian.Uint32(n[:])
				if _, err := io.CopyN(io.Discard, br, int64(size)); err != nil {
					return
				}
				if size == 0 {
					continue // ping
				}
				if first {
					first = false
					opened.Done()
					continue
				}
				frames <- time.Now()
			}
		}()
	}
	opened.Wait()
	var samples []time.Duration
	for i := range writes {
		start := time.Now()
		resp, err := http.Post(base+"/set/"+k, "", bytes.NewReader([]byte(strconv.Itoa(i))))
		if err != nil {
			return err
		}
		resp.Body.Close()
		deadline := time.After(10 * time.Second)
		for range watchers {
			select {
			case at := <-frames:
				samples = append(samples, at.Sub(start))
			case <-deadline:
				return fmt.Errorf("write %d: frames missing after 10 s", i)
			}
		}
	}
	s := latency.Summarize(samples)
	fmt.Printf("\nwatch: POST /set to the KV Connect frame at %d watchers, %d writes: p50 %s, p99 %s\n",
		watchers, writes, latency.Format(s.P50), latency.Format(s.P99))
	return nil
}

// metadata opens the database as a client does.
func metadata(client *http.Client, base string) (endpoint, token, dbID string, err error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/kv", bytes.NewReader([]byte(`{"supportedVersions":[1,2,3]}`)))
	req.Header.Set("Authorization", "Bearer bench")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", "", "", err
	}
	defer resp.Body.Close()
	var m struct {
		DatabaseID string `json:"databaseId"`
		Endpoints  []struct {
			URL string `json:"url"`
		} `json:"endpoints"`
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Endpoints) == 0 {
		return "", "", "", fmt.Errorf("metadata exchange: status %d, %v", resp.StatusCode, err)
	}
	return m.Endpoints[0].URL, m.Token, m.DatabaseID, nil
}

// tuple is the tuple encoding of a key of one string part.
func tuple(s string) []byte { return append(append([]byte{2}, s...), 0) }

// msg builds a protobuf message from field numbers and []byte or int
// values.
func msg(fields ...any) []byte {
	var b []byte
	for i := 0; i+1 < len(fields); i += 2 {
		num := protowire.Number(fields[i].(int))
		switch v := fields[i+1].(type) {
		case []byte:
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendBytes(b, v)
		case int:
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		}
	}
	return b
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
