package persist

import (
	"errors"
	"fmt"
)

// Err returns the write error that makes the journal refuse new records,
// or nil while it is healthy.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// A journal is stalled when OpenJournal could not start a generation for
// want of disk space. It then has no file and refuses every record, so the
// server still starts and serves reads, and Run (or a Rotate) starts the
// generation once there is room. Nothing is lost meanwhile: no record was
// taken, so the snapshot and the older generations hold every write.

// stall puts a journal that could not start generation last+1 in the
// stalled state.
func (j *Journal) stall(last uint64, err error) {
	j.gen = last
	j.err = stalledError(err)
}

// stalledError is the error a stalled journal refuses records with. It
// carries only the innermost cause, such as "no space left on device",
// not the file name, since clients see it in the answer to a refused
// write.
func stalledError(err error) error {
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(err) {
		err = u
	}
	return fmt.Errorf("journal cannot start: %w", err)
}

// stalled reports whether the journal is stalled.
func (j *Journal) stalled() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stalledLocked()
}

// stalledLocked reports whether the journal is stalled; the caller holds
// j.mu.
func (j *Journal) stalledLocked() bool {
	return j.f == nil && !j.closed
}

// resume starts the generation a stalled journal lacks, if it is stalled.
// It reports whether it was, whether or not the start succeeded.
func (j *Journal) resume() bool {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.stalledLocked() {
		return false
	}
	_ = j.resumeLocked()
	return true
}

// resumeLocked starts the next generation of a stalled journal and, once it
// is in place, accepts records again. A failure, of whatever kind, leaves
// the journal stalled and becomes its error: the server is running, so the
// next attempt may well succeed. The caller holds syncMu and j.mu.
func (j *Journal) resumeLocked() error {
	if err := j.startGeneration(j.gen + 1); err != nil {
		j.err = stalledError(err)
		return err
	}
	j.err = nil
	return nil
}
