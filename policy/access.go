package policy

import (
	"cmp"
	"slices"
	"strings"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Access is what a grant lets its holder do with the keys it covers.
type Access uint8

// The rights a grant gives. AccessNone is a grant too: it takes a longer
// prefix out of a shorter one that gives more ("rw:" and "-:team/").
const (
	AccessNone      Access = 0
	AccessRead      Access = 1
	AccessWrite     Access = 2
	AccessReadWrite Access = AccessRead | AccessWrite
)

// Grant gives Access to every key that starts with Prefix; the empty
// Prefix covers every key.
type Grant struct {
	Prefix string
	Access Access
}

// String writes g as a grant is written in a token file: r:, w:, rw: or
// -: and the prefix.
func (g Grant) String() string {
	tag := "-:"
	switch g.Access {
	case AccessRead:
		tag = "r:"
	case AccessWrite:
		tag = "w:"
	case AccessReadWrite:
		tag = "rw:"
	}
	return tag + g.Prefix
}

// Grants decide a caller's access key by key: the grant with the longest
// prefix the key starts with wins, and a key no grant covers is out of
// reach. The zero Grants grants nothing.
type Grants struct {
	// list is ordered by decreasing prefix length, so the first grant
	// that matches a key is the one that decides it.
	list []Grant
}

// NewGrants returns the grants gs. Of two grants with one prefix the
// later wins, as a later line of a configuration overrides an earlier one.
func NewGrants(gs ...Grant) Grants {
	list := make([]Grant, 0, len(gs))
	seen := make(map[string]bool, len(gs))
	for i := len(gs) - 1; i >= 0; i-- {
		if !seen[gs[i].Prefix] {
			seen[gs[i].Prefix] = true
			list = append(list, gs[i])
		}
	}
	slices.SortStableFunc(list, func(a, b Grant) int {
		if c := cmp.Compare(len(b.Prefix), len(a.Prefix)); c != 0 {
			return c
		}
		return strings.Compare(a.Prefix, b.Prefix)
	})
	return Grants{list: list}
}

// List returns the grants, longest prefix first.
func (g Grants) List() []Grant { return slices.Clone(g.list) }

// String writes the grants as a token file line holds them, separated by
// spaces.
func (g Grants) String() string {
	parts := make([]string, len(g.list))
	for i, gr := range g.list {
		parts[i] = gr.String()
	}
	return strings.Join(parts, " ")
}

// decide returns the index of the grant that decides key, or -1.
func (g *Grants) decide(key string) int {
	for i := range g.list {
		if strings.HasPrefix(key, g.list[i].Prefix) {
			return i
		}
	}
	return -1
}

// Access returns what the grants allow on key.
func (g *Grants) Access(key string) Access {
	if i := g.decide(key); i >= 0 {
		return g.list[i].Access
	}
	return AccessNone
}

// Allows reports whether the grants give every right of need on key.
func (g *Grants) Allows(key string, need Access) bool {
	return g.Access(key)&need == need
}

// readableUnder reports whether some key starting with prefix may be
// read: the grant deciding prefix itself allows reads, or a longer one
// under it does.
func (g *Grants) readableUnder(prefix string) bool {
	if g.Allows(prefix, AccessRead) {
		return true
	}
	for _, gr := range g.list {
		if len(gr.Prefix) > len(prefix) && strings.HasPrefix(gr.Prefix, prefix) && gr.Access&AccessRead != 0 {
			return true
		}
	}
	return false
}

// skip returns the first key after key that a grant other than the one
// deciding key may decide, for a listing that met an unreadable key and
// would otherwise read every key after it that is just as unreadable; ""
// when there is none. Keys with one prefix are one run in byte order, so
// between key and the next longer grant's prefix (or the end of the
// deciding prefix) every key is decided as key is.
func (g *Grants) skip(key string) string {
	i := g.decide(key)
	if i < 0 {
		// No grant: the next key a grant may decide is the first grant
		// prefix after key.
		next := ""
		for _, gr := range g.list {
			if gr.Prefix > key && (next == "" || gr.Prefix < next) {
				next = gr.Prefix
			}
		}
		return next
	}
	p := g.list[i].Prefix
	next := kv.PrefixEnd(p)
	for _, gr := range g.list[:i] {
		if len(gr.Prefix) > len(p) && strings.HasPrefix(gr.Prefix, p) && gr.Prefix > key && (next == "" || gr.Prefix < next) {
			next = gr.Prefix
		}
	}
	return next
}

// Identity is who an authenticated caller proved to be, with what it may
// do. A verifier (package auth: a token file, JWTs) makes one per
// identity; a front end passes it to Service.Authenticated.
type Identity struct {
	// Name is the caller's name, the same from every address: its rate
	// budget and watcher places are kept under it.
	Name string
	// Grants decide which keys it may read and write.
	Grants Grants
	// Rate is its own refill of tokens; the zero Rate means the server's
	// default.
	Rate kv.Rate
}

// The refusals of a missing grant. An anonymous caller is asked for a
// token (401 on HTTP); an identified one is told it lacks the right (403).
var (
	errNeedToken = &Error{Kind: KindUnauthenticated, Message: "authentication required: this key needs a token (Authorization: Bearer TOKEN)"}
	errNoRead    = &Error{Kind: KindNoPermission, Message: "no permission to read this key"}
	errNoWrite   = &Error{Kind: KindNoPermission, Message: "no permission to write this key"}
)

// grants returns the grants c's access is decided by, or nil when access
// control is off for c: no identity and no Config.Anonymous.
func (s *Service) grants(c Caller) *Grants {
	if c.Identity != nil {
		return &c.Identity.Grants
	}
	return s.cfg.Anonymous
}

// allow returns nil when c may do need on key (the key as stored), or
// the refusal.
func (s *Service) allow(c Caller, key string, need Access) error {
	g := s.grants(c)
	if g == nil || g.Allows(key, need) {
		return nil
	}
	return s.denied(c, need)
}

// denied is the refusal of c's missing right need.
func (s *Service) denied(c Caller, need Access) error {
	switch {
	case c.Identity == nil:
		return errNeedToken
	case need&AccessWrite != 0:
		return errNoWrite
	}
	return errNoRead
}

// mayRead reports whether c may read key, for answers that would show a
// stored item to a caller that may only write it.
func (s *Service) mayRead(c Caller, key string) bool {
	g := s.grants(c)
	return g == nil || g.Allows(key, AccessRead)
}

// allowUnder returns nil when c may read some key under prefix, or the
// refusal of a listing or watch that could never show a key.
func (s *Service) allowUnder(c Caller, prefix string) error {
	g := s.grants(c)
	if g == nil || g.readableUnder(prefix) {
		return nil
	}
	return s.denied(c, AccessRead)
}
