package policy

// The server sheds load rather than queue it: past Config.MaxInFlight, a
// request is refused at once, before it reads its body or takes a token,
// so that a burst costs its senders a retry instead of costing everyone
// latency and the server memory.

var errOverloaded = &Error{Kind: KindOverloaded, Message: "server overloaded: too many requests in flight; retry in a moment"}

// Admit counts one more request in flight, or refuses it with
// KindOverloaded when Config.MaxInFlight requests are in flight already.
// Every nil answer must be paired with one Release when the request ends.
// A front end admits each request of its protocol but the ones that only
// report the server's health, and it admits neither watch streams nor
// long-polls: those wait without working, for as long as their clients
// like, and the watcher caps bound them instead; counted, a thousand idle
// waiters would shed every other request.
func (s *Service) Admit() error {
	if s.cfg.MaxInFlight <= 0 {
		return nil
	}
	if s.inFlight.Add(1) > int64(s.cfg.MaxInFlight) {
		s.inFlight.Add(-1)
		return errOverloaded
	}
	return nil
}

// Release ends a request that Admit let in.
func (s *Service) Release() {
	if s.cfg.MaxInFlight > 0 {
		s.inFlight.Add(-1)
	}
}

// InFlight returns the number of requests Admit let in that have not been
// released; it is 0 when there is no cap.
func (s *Service) InFlight() int { return int(s.inFlight.Load()) }
