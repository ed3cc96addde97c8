package persist

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// Saver writes snapshots of a store to one file, periodically and on
// demand, one at a time: a shutdown save never races a periodic one for
// the same temp file and rename.
type Saver struct {
	// Path is the snapshot file.
	Path string
	// Source produces the items to save; ttlstore.Store.Snapshot fits.
	Source func(yield func(ttlstore.Item) error) error
	// Version, when set, returns the store's version counter; it is read
	// before Source runs and recorded so versions never repeat after a
	// restart.
	Version func() uint64
	// Log receives one line per snapshot; nil discards.
	Log *slog.Logger

	mu sync.Mutex
}

// Save writes one snapshot and logs its size and duration.
func (s *Saver) Save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var version uint64
	if s.Version != nil {
		version = s.Version()
	}
	stats, err := WriteFileVersion(s.Path, version, s.Source)
	if err != nil {
		log.Error("snapshot failed", "file", s.Path, "err", err)
		return err
	}
	log.Info("snapshot written", "file", s.Path, "keys", stats.Keys, "bytes", stats.Bytes, "duration", stats.Duration)
	return nil
}

// Run saves every interval until ctx is done. A failed save is logged and
// retried at the next tick; the previous snapshot stays in place.
func (s *Saver) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Save()
		}
	}
}
