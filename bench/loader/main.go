// Command loader preloads a rendezvous-compatible server with keys
// PREFIX0..PREFIX(N-1), each holding a value of -value-size bytes, then reads
// a few back to check the server answers what it stored. bench/run.sh uses
// it before every benchmark.
//
//	go run ./bench/loader -url http://127.0.0.1:8080 -keys 100000
//	go run ./bench/loader -url https://127.0.0.1:8443 -ca cert.pem
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/rendezvous-kv/rendezvous/bench/internal/kvload"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "server base URL (loopback only)")
	n := flag.Int("keys", 100000, "number of keys")
	prefix := flag.String("prefix", "k", "key prefix; keys are PREFIX0..PREFIX(N-1)")
	size := flag.Int("value-size", 200, "bytes per value")
	conns := flag.Int("conns", 32, "concurrent keep-alive connections")
	verify := flag.Int("verify", 100, "random keys read back after loading")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	caFile := flag.String("ca", "", "PEM certificates that an https -url is verified against (default: the system's)")
	flag.Parse()

	var roots *x509.CertPool
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loader:", err)
			os.Exit(1)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			fmt.Fprintln(os.Stderr, "loader: no PEM certificate in", *caFile)
			os.Exit(1)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	err := kvload.Load(ctx, kvload.Options{
		BaseURL: *url,
		N:       *n,
		Conns:   *conns,
		RootCAs: roots,
		Key:     func(i int) string { return *prefix + strconv.Itoa(i) },
		Value:   func(i int) []byte { return kvload.Value(i, *size) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loader:", err)
		os.Exit(1)
	}
	took := time.Since(start)

	client := kvload.ClientTLS(1, roots)
	for range min(*verify, *n) {
		i := rand.IntN(*n)
		status, body, err := kvload.Get(ctx, client, *url, *prefix+strconv.Itoa(i))
		if err != nil {
			fmt.Fprintln(os.Stderr, "loader: verify:", err)
			os.Exit(1)
		}
		if status != 200 || !bytes.Equal(body, kvload.Value(i, *size)) {
			fmt.Fprintf(os.Stderr, "loader: verify %s%d: status %d, %d bytes, not what was stored\n", *prefix, i, status, len(body))
			os.Exit(1)
		}
	}
	fmt.Printf("loaded %d keys (%d-byte values) into %s in %s (%.0f keys/s), %d verified\n",
		*n, *size, *url, took.Round(time.Millisecond), float64(*n)/took.Seconds(), min(*verify, *n))
}
