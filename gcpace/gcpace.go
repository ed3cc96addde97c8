// Package gcpace keeps a floor under the garbage collector's headroom.
//
// With the default GOGC of 100 the collector runs whenever the heap has
// grown by as much as was live after the last cycle. A small store (a few
// tens of MiB live) then collects several times a second under load, and
// a CPU profile of the server at 100,000 keys showed the collector's
// marking at about 6% of its time, twice the share of a plain map server,
// since every entry is a separate object to mark. Giving the heap at least
// a fixed headroom (GOGC raised while the live heap is small) collects
// less often where memory is cheap, and leaves large stores, where the
// heap per key matters, at GOGC=100.
package gcpace

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultFloor is the headroom the server keeps: 64 MiB.
const DefaultFloor = 64 << 20

// BasePercent is the GOGC used once the live heap is at least the floor.
const BasePercent = 100

// MaxPercent bounds the GOGC chosen for a tiny heap.
const MaxPercent = 1000

// Percent returns the GOGC that lets a heap with live bytes grow by at
// least floor bytes before the next collection: BasePercent, raised to
// 100*floor/live (rounded up) when that is larger, and at most MaxPercent.
func Percent(live, floor uint64) int {
	if floor == 0 {
		return BasePercent
	}
	if live == 0 {
		return MaxPercent
	}
	p := (100*floor + live - 1) / live
	switch {
	case p < BasePercent:
		return BasePercent
	case p > MaxPercent:
		return MaxPercent
	}
	return int(p)
}

// Overridden reports whether the operator set GOGC in the environment, in
// which case Run should not be started.
func Overridden() bool {
	_, ok := os.LookupEnv("GOGC")
	return ok
}

// liveHeap is the runtime metric of heap bytes marked live by the last
// collection.
const liveHeap = "/gc/heap/live:bytes"

// Apply sets GOGC to Percent(live heap, floor) and returns it.
func Apply(floor uint64) int {
	sample := []metrics.Sample{{Name: liveHeap}}
	metrics.Read(sample)
	var live uint64
	if sample[0].Value.Kind() == metrics.KindUint64 {
		live = sample[0].Value.Uint64()
	}
	p := Percent(live, floor)
	debug.SetGCPercent(p)
	return p
}

// Run calls Apply now and then every interval until ctx is done, and
// restores the GOGC it found when it returns.
func Run(ctx context.Context, floor uint64, every time.Duration) {
	prev := debug.SetGCPercent(BasePercent)
	defer debug.SetGCPercent(prev)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		Apply(floor)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
