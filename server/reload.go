package server

import (
	"errors"
	"fmt"
)

// reload is one part that Server.Reload re-reads.
type reload struct {
	name string
	f    func() error
}

// onReload adds a part that Reload re-reads.
func (s *Server) onReload(name string, f func() error) {
	s.reloads = append(s.reloads, reload{name, f})
}

// Reload re-reads what the server keeps from files while it runs: the
// token file or the JWT key, the mTLS identity file, and whatever else a
// part registered with onReload (a certificate). The rendezvous command
// calls it on SIGHUP. A part
// that fails to load keeps what it had and says why (each part logs its
// refusal); the others still reload. It returns every failure.
func (s *Server) Reload() error {
	var errs []error
	for _, r := range s.reloads {
		if err := r.f(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
		}
	}
	return errors.Join(errs...)
}
