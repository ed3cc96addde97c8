package handlers_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rendezvous-kv/rendezvous/handlers"
)

// discardWriter is a minimal http.ResponseWriter that keeps only the
// status, so the benchmarks measure the handler and not a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// reset readies w for the next response, keeping the header map's memory.
func (w *discardWriter) reset() {
	clear(w.h)
	w.status = http.StatusOK
}

func newDiscardWriter() *discardWriter { return &discardWriter{h: make(http.Header)} }

var benchValue = bytes.Repeat([]byte{'v'}, 200)

func BenchmarkGetHandler(b *testing.B) {
	e := newEnv(b)
	r, _ := newRequest(http.MethodPost, "/set/bench/key", string(benchValue))
	if rec := e.serve(r); rec.Code != http.StatusOK {
		b.Fatalf("set: %d", rec.Code)
	}
	req := httptestRequest(http.MethodGet, "/get/bench/key", nil)
	w := newDiscardWriter()
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		e.srv.ServeHTTP(w, req)
	}
	if w.status != http.StatusOK {
		b.Fatalf("get: status %d", w.status)
	}
}

func BenchmarkSetHandler(b *testing.B) {
	e := newEnv(b)
	rd := bytes.NewReader(benchValue)
	req := httptestRequest(http.MethodPost, "/set/bench/key?ttl=10m", nil)
	req.Body = io.NopCloser(rd)
	req.ContentLength = int64(len(benchValue))
	w := newDiscardWriter()
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		rd.Reset(benchValue)
		e.srv.ServeHTTP(w, req)
	}
	if w.status != http.StatusOK {
		b.Fatalf("set: status %d", w.status)
	}
	if it, ok := e.store.Get("bench/key"); !ok || !bytes.Equal(it.Value, benchValue) {
		b.Fatal("value not stored")
	}
}

func BenchmarkGetHandlerRateLimited(b *testing.B) {
	const clients = 10_000
	// A budget no client exhausts, so every request takes the allowed path
	// through a table of 10,000 buckets.
	e := newEnvWith(b, options{rate: &rateConfig{Tokens: 1 << 30, Window: time.Second, Burst: 1 << 30}})
	r, _ := newRequest(http.MethodPost, "/set/bench/key", string(benchValue))
	if rec := e.serve(r); rec.Code != http.StatusOK {
		b.Fatalf("set: %d", rec.Code)
	}
	addrs := make([]string, clients)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.%d.%d.%d:40000", i>>16&255, i>>8&255, i&255)
	}
	req := httptestRequest(http.MethodGet, "/get/bench/key", nil)
	w := newDiscardWriter()
	for _, a := range addrs { // create every bucket outside the timed loop
		req.RemoteAddr = a
		w.reset()
		e.srv.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("warm-up: status %d", w.status)
		}
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		req.RemoteAddr = addrs[i]
		if i++; i == clients {
			i = 0
		}
		w.reset()
		e.srv.ServeHTTP(w, req)
	}
	if w.status != http.StatusOK {
		b.Fatalf("get: status %d", w.status)
	}
}

// BenchmarkSetNewConn serves each SET on a fresh goroutine, as a server
// does for a request on a new connection, so the goroutine's stack starts
// small and grows during the write. The sub-benchmarks compare growing it
// at the top of the handler (growStack) with letting it grow where the
// write first needs the room.
func BenchmarkSetNewConn(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("pregrow=%v", on), func(b *testing.B) {
			defer handlers.SetPreGrow(on)()
			e := newEnv(b)
			rd := bytes.NewReader(benchValue)
			req := httptestRequest(http.MethodPost, "/set/bench/key?ttl=10m", nil)
			req.Body = io.NopCloser(rd)
			req.ContentLength = int64(len(benchValue))
			w := newDiscardWriter()
			done := make(chan struct{})
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				rd.Reset(benchValue)
				go func() {
					connLoopFrame(func() { e.srv.ServeHTTP(w, req) })
					done <- struct{}{}
				}()
				<-done
			}
			if w.status != http.StatusOK {
				b.Fatalf("set: status %d", w.status)
			}
		})
	}
}

// connLoopFrame calls f below a frame about the size of net/http's
// connection loop, which sits under every handler in a real server.
//
//go:noinline
func connLoopFrame(f func()) {
	var frame [1 << 10]byte
	f()
	frameSink = frame[int(frameSink)&(len(frame)-1)]
}

var frameSink byte
