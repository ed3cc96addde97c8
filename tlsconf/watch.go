package tlsconf

import (
	"context"
	"os"
	"time"
)

// DefaultPollInterval is how often Run looks at the files when not told.
// A stat of two or three files is cheap, and ten seconds is soon enough
// after a renewal that is done weeks before expiry.
const DefaultPollInterval = 10 * time.Second

// fileState is what a change of a file changes: renewal tools write a new
// file and rename it over the old one (a new inode), or rewrite it in
// place (a new size or modification time).
type fileState struct {
	ino   uint64
	size  int64
	mtime int64 // nanoseconds
	err   bool  // the file could not be looked at
}

type fileStates [3]fileState // certificate, key, client CA

// stat looks at the files the Manager reads.
func (m *Manager) stat() fileStates {
	var s fileStates
	for i, name := range []string{m.opts.CertFile, m.opts.KeyFile, m.opts.ClientCAFile} {
		if name == "" {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			s[i].err = true
			continue
		}
		s[i].size, s[i].mtime, s[i].ino = fi.Size(), fi.ModTime().UnixNano(), inode(fi)
	}
	return s
}

// Run reloads the files whenever one of them changes, looking every
// interval (DefaultPollInterval when 0), until ctx is done. A change that
// does not load is logged once; the next change is tried again.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	if m.opts.CertFile == "" && m.opts.ClientCAFile == "" {
		return // nothing on disk to watch
	}
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		if states := m.stat(); states != m.files {
			m.reload(states)
		}
		m.mu.Unlock()
	}
}
