// Package kvload writes many keys into a rendezvous-compatible server over
// HTTP (POST /set/{key}) with a fixed number of keep-alive connections. The
// benchmark's preloader and the memory tool share it.
package kvload

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options says what to load and where.
type Options struct {
	// BaseURL is the server, like http://127.0.0.1:8080 (no trailing slash).
	BaseURL string
	// N is the number of keys; Key(i) and Value(i) are called for 0 <= i < N.
	N     int
	Key   func(i int) string
	Value func(i int) []byte
	// Conns is the number of concurrent keep-alive connections (default 32).
	Conns int
	// RootCAs is what an https BaseURL's certificate is verified against;
	// nil means the system's roots.
	RootCAs *x509.CertPool
}

// Client returns an HTTP client that keeps up to conns connections alive
// to one host.
func Client(conns int) *http.Client { return ClientTLS(conns, nil) }

// ClientTLS is Client for https URLs whose certificates roots verify (nil:
// the system's roots).
func ClientTLS(conns int, roots *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSClientConfig:     &tls.Config{RootCAs: roots},
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// Load stores every key and returns the first failure, if any. Every
// response must be 200.
func Load(ctx context.Context, o Options) error {
	if o.Conns <= 0 {
		o.Conns = 32
	}
	client := ClientTLS(o.Conns, o.RootCAs)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var next atomic.Int64
	var once sync.Once
	var firstErr error
	fail := func(err error) {
		once.Do(func() { firstErr = err; cancel() })
	}
	var wg sync.WaitGroup
	for range o.Conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= o.N {
					return
				}
				if err := Set(ctx, client, o.BaseURL, o.Key(i), o.Value(i)); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// Set stores one value and wants 200 back.
func Set(ctx context.Context, client *http.Client, base, key string, value []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/set/"+key, bytes.NewReader(value))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("set %s: reading answer: %w", key, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("set %s: status %d: %s", key, resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// Get reads one key and returns its status and body.
func Get(ctx context.Context, client *http.Client, base, key string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/get/"+key, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("get %s: reading answer: %w", key, err)
	}
	return resp.StatusCode, body, nil
}

// Value is the value stored under key number i: its number, then filler
// up to size bytes. Readers can check what they get back against it.
func Value(i, size int) []byte {
	v := bytes.Repeat([]byte{'x'}, size)
	copy(v, strconv.Itoa(i)+":")
	return v
}
