package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// streamWriter is the http.ResponseWriter of a watch stream in the
// benchmark: it counts the frames written (each ends with a blank line)
// and supports what the handler asks of a ResponseController.
type streamWriter struct {
	h      http.Header
	frames atomic.Int64
	wrote  chan struct{} // capacity 1; a signal after each Write
}

func (w *streamWriter) Header() http.Header              { return w.h }
func (w *streamWriter) WriteHeader(int)                  {}
func (w *streamWriter) FlushError() error                { return nil }
func (w *streamWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *streamWriter) SetWriteDeadline(time.Time) error { return nil }

func (w *streamWriter) Write(p []byte) (int, error) {
	w.frames.Add(int64(bytes.Count(p, []byte("\n\n"))))
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

// waitFor blocks until n frames have been written.
func (w *streamWriter) waitFor(n int64) {
	for w.frames.Load() < n {
		<-w.wrote
	}
}

// BenchmarkWatchStream measures the stream path of GET /watch/ per event:
// from the feed through the policy's watcher to the bytes of the frame,
// without a socket. Events are published straight into the feed, which
// does not allocate, so the allocations reported are the stream's. Each
// round publishes batch events and waits until they are written, so that
// the watcher never falls out of the history.
func BenchmarkWatchStream(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			e := newEnvWith(b, options{keepAlive: time.Hour})
			f, api := e.feed, e.srv
			ctx, cancel := context.WithCancel(context.Background())
			req := httptestRequest(http.MethodGet, "/watch/bench/", nil).WithContext(ctx)
			w := &streamWriter{h: make(http.Header), wrote: make(chan struct{}, 1)}
			done := make(chan struct{})
			go func() {
				defer close(done)
				api.ServeHTTP(w, req)
			}()
			for f.Active() == 0 {
				time.Sleep(time.Millisecond)
			}
			var v uint64
			b.ReportAllocs()
			for b.Loop() {
				v++
				f.Publish(kv.Change{Op: kv.OpSet, Item: kv.Item{Key: "bench/key", Value: benchValue, Version: v}})
				if v%uint64(batch) == 0 {
					w.waitFor(int64(v))
				}
			}
			w.waitFor(int64(v))
			b.StopTimer()
			cancel()
			<-done
			if got := w.frames.Load(); got != int64(v) {
				b.Fatalf("%d frames for %d events", got, v)
			}
		})
	}
}
