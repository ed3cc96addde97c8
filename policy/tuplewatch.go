package policy

import (
	"context"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// TupleWatcher is an open watch of a few Deno keys. Its Read returns
// every key's current entry; Wait blocks until one of them may have
// changed. Close must be called.
type TupleWatcher struct {
	svc    *Service
	w      *Watcher
	tuples [][]byte
	// watched holds the store keys whose changes wake the watcher: each
	// key, and for a shared string key the record of its encoding.
	watched map[string]bool
}

// TupleWatch opens a watch of keys (tuple encodings), at most
// TupleMaxWatchKeys. Like Watch it costs CostRead once and holds a place
// in the caller's watcher caps while open.
func (s *Service) TupleWatch(c Caller, keys [][]byte) (*TupleWatcher, error) {
	switch {
	case len(keys) == 0:
		return nil, Errorf(KindBadRequest, "a watch needs at least one key")
	case len(keys) > TupleMaxWatchKeys:
		return nil, Errorf(KindBadRequest, "too many keys: at most %d per watch", TupleMaxWatchKeys)
	}
	watched := make(map[string]bool, 2*len(keys))
	for i, k := range keys {
		switch {
		case len(k) == 0:
			return nil, Errorf(KindBadRequest, "keys[%d]: key is empty", i)
		case len(k) > TupleMaxKey:
			return nil, Errorf(KindBadRequest, "keys[%d]: key too long: at most %d bytes", i, TupleMaxKey)
		}
		key, shared := s.storeKey(k)
		if err := s.allowTuple(c, k, key, shared, AccessRead); err != nil {
			return nil, at("keys", i, err)
		}
		watched[key] = true
		if shared {
			watched[encodingSpace+key] = true
		}
	}
	if err := s.charge(c, s.cfg.CostRead); err != nil {
		return nil, err
	}
	if s.cfg.Feed == nil {
		return nil, errNoFeed
	}
	// One subscription to every change, filtered here: a watch of ten
	// keys holds one place in the caps, as one HTTP watch does.
	w, err := s.watcher(c, kv.SubOptions{})
	if err != nil {
		return nil, err
	}
	return &TupleWatcher{svc: s, w: w, tuples: keys, watched: watched}, nil
}

// Read returns the current entry of every watched key, nil for an absent
// one, in the order of the keys.
func (tw *TupleWatcher) Read() []*TupleEntry {
	out := make([]*TupleEntry, len(tw.tuples))
	for i, k := range tw.tuples {
		end := append(append([]byte(nil), k...), 0)
		if es, _ := tw.svc.readRange(TupleRange{Start: k, End: end, Limit: 1}, nil); len(es) == 1 {
			out[i] = &es[0]
		}
	}
	return out
}

// Wait blocks until a watched key may have changed since the last Wait
// (or since the watch opened). Its errors are Watcher.Next's: ctx's, and
// a KindShuttingDown Error when the server stops. A watcher that fell
// behind the feed ends too (KindUnavailable), and its client reconnects.
func (tw *TupleWatcher) Wait(ctx context.Context) error {
	for {
		step, err := tw.w.Next(ctx)
		if err != nil {
			return err
		}
		if step.Kind != WatchEvents {
			return Errorf(KindUnavailable, "watch fell behind the changes; reconnect")
		}
		for i := range step.Events {
			if tw.watched[step.Events[i].Key] {
				return nil
			}
		}
	}
}

// Close ends the watch.
func (tw *TupleWatcher) Close() { tw.w.Close() }
