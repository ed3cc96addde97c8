// Command baseline is the "net/http ceiling" that bench/run.sh compares
// rendezvous against: the least a Go server must do to answer the same two
// routes with the same response shapes. It has an in-memory map under one
// RWMutex and nothing else: no TTL, no limits beyond the body size, no
// rate limiting, no persistence, no client-IP logic.
//
//	GET  /get/{key}  200 + value (application/octet-stream), or 404 "key not found"
//	POST /set/{key}  stores the body, 200 "OK"
//
// It logs `msg=listening addr=HOST:PORT` like rendezvous does, so -addr
// 127.0.0.1:0 picks a free port that a script can read back. With
// -tls-cert and -tls-key it serves TLS the way net/http does by itself
// (ServeTLS: TLS 1.2+, HTTP/2 by ALPN), the ceiling of bench/tls.sh.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// maxValueSize matches rendezvous's default --max-value-size.
const maxValueSize = 1000

type store struct {
	mu sync.RWMutex
	m  map[string][]byte
}

func (s *store) get(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	if !ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "key not found\n")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(v)))
	w.Write(v)
}

func (s *store) set(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueSize))
	if err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "value too large\n")
		return
	}
	s.mu.Lock()
	s.m[key] = v
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "OK")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address (use 127.0.0.1:0 for a free port)")
	certFile := flag.String("tls-cert", "", "serve TLS with this PEM certificate (with -tls-key)")
	keyFile := flag.String("tls-key", "", "PEM private key of -tls-cert")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	s := &store{m: make(map[string][]byte)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /get/{key...}", s.get)
	mux.HandleFunc("POST /set/{key...}", s.set)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
	// The same timeouts as rendezvous, so neither side skips work the
	// other does.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	log.Info("listening", "addr", ln.Addr().String())
	serve := func() error { return srv.Serve(ln) }
	if *certFile != "" {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		serve = func() error { return srv.ServeTLS(ln, *certFile, *keyFile) }
	}
	if err := serve(); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}
