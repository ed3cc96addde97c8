package gcpace_test

import (
	"context"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/rendezvous-kv/rendezvous/gcpace"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name        string
		live, floor uint64
		want        int
	}{
		{"large heap keeps the base", 500 * mib, 64 * mib, 100},
		{"heap equal to the floor", 64 * mib, 64 * mib, 100},
		{"half the floor doubles it", 32 * mib, 64 * mib, 200},
		{"rounded up", 30 * mib, 64 * mib, 214},
		{"tiny heap is capped", 1 * mib, 64 * mib, 1000},
		{"nothing live yet", 0, 64 * mib, 1000},
		{"no floor", 10 * mib, 0, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, gcpace.Percent(tc.live, tc.floor))
		})
	}
}

// TestApply sets GOGC from the live heap: far below a huge floor it is the
// cap, and with no floor the base.
func TestApply(t *testing.T) {
	before := debug.SetGCPercent(77)
	defer debug.SetGCPercent(before)

	assert.Equal(t, gcpace.MaxPercent, gcpace.Apply(1<<50))
	assert.Equal(t, gcpace.MaxPercent, debug.SetGCPercent(77), "Apply sets what it returns")
	assert.Equal(t, gcpace.BasePercent, gcpace.Apply(0))
	assert.Equal(t, gcpace.BasePercent, debug.SetGCPercent(77))
}

// TestRunRestores: Run applies at once and, when its context ends, puts
// back the GOGC it found.
func TestRunRestores(t *testing.T) {
	before := debug.SetGCPercent(77)
	defer debug.SetGCPercent(before)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		gcpace.Run(ctx, 1<<50, time.Hour)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	assert.Equal(t, 77, debug.SetGCPercent(77), "the previous GOGC is restored")
}
