package persist

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Saver writes snapshots of a store to one file, periodically and on
// demand, one at a time: a shutdown save never races a periodic one for
// the same temp file and rename.
type Saver struct {
	// Path is the snapshot file.
	Path string
	// Source produces the items to save; ttlstore.Store.Snapshot fits.
	Source func(yield func(kv.Item) error) error
	// Version, when set, returns the store's version counter; it is read
	// before Source runs and recorded so versions never repeat after a
	// restart.
	Version func() uint64
	// Journal, when set, is rotated before each snapshot, which records
	// the generation rotated away from as the one it covers, and the
	// covered generations are removed after it.
	Journal *Journal
	// JournalFloor overrides DefaultJournalFloor when positive.
	JournalFloor int64
	// Log receives one line per snapshot; nil discards.
	Log *slog.Logger

	mu        sync.Mutex
	lastBytes atomic.Int64
	lastAt    atomic.Int64 // Unix nanoseconds of the last successful snapshot
	lastTook  atomic.Int64 // its duration in nanoseconds
}

// Last returns when the last successful snapshot finished and how long it
// took; ok is false before the first one.
func (s *Saver) Last() (at time.Time, took time.Duration, ok bool) {
	ns := s.lastAt.Load()
	if ns == 0 {
		return time.Time{}, 0, false
	}
	return time.Unix(0, ns), time.Duration(s.lastTook.Load()), true
}

// DefaultJournalFloor is the journal size below which churn never
// triggers a snapshot by itself: small stores would otherwise snapshot
// constantly, and a burst of new keys would take full snapshots of a
// growing store every few seconds (the journal then holds new data, not
// churn, so snapshotting early saves no disk).
const DefaultJournalFloor = 64 << 20

// JournalLimit returns the journal size that triggers an early snapshot:
// twice the last snapshot, at least the journal floor. Beyond it, replaying the
// journal costs more than loading a fresh snapshot, and constant TTL
// refreshes of the same keys would otherwise grow the disk forever.
func (s *Saver) JournalLimit() int64 {
	floor := s.JournalFloor
	if floor <= 0 {
		floor = DefaultJournalFloor
	}
	return max(floor, 2*s.lastBytes.Load())
}

// Save writes one snapshot and logs its size and duration.
func (s *Saver) Save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var covered uint64
	if s.Journal != nil {
		gen, err := s.Journal.Rotate()
		if err != nil {
			log.Error("snapshot skipped: journal rotation failed", "file", s.Path, "err", err)
			return err
		}
		covered = gen
	}
	var version uint64
	if s.Version != nil {
		version = s.Version()
	}
	stats, err := WriteFileCovering(s.Path, version, covered, s.Source)
	if err != nil {
		log.Error("snapshot failed", "file", s.Path, "err", err)
		return err
	}
	s.lastBytes.Store(stats.Bytes)
	s.lastTook.Store(int64(stats.Duration))
	s.lastAt.Store(time.Now().UnixNano())
	if s.Journal != nil {
		if err := s.Journal.RemoveThrough(covered); err != nil {
			log.Warn("snapshot written, but old journal files could not be removed", "err", err)
		}
	}
	log.Info("snapshot written", "file", s.Path, "keys", stats.Keys, "bytes", stats.Bytes, "duration", stats.Duration)
	return nil
}

// Run saves every interval, and early whenever the journal passes
// JournalLimit, until ctx is done. A failed save is logged and retried at
// the next tick; the previous snapshot stays in place.
func (s *Saver) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Save()
		case <-check.C:
			if s.Journal != nil && s.Journal.Size() > s.JournalLimit() {
				s.Save()
				t.Reset(interval)
			}
		}
	}
}
