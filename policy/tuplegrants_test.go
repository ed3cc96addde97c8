package policy

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// str encodes a tuple of string parts.
func str(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, escapeString(p)...)
		b = append(b, 0)
	}
	return b
}

// grantFixture is a store of shared string keys and tuple keys whose
// first parts sit on both sides of every boundary the grants below draw.
func grantFixture(t testing.TB) (*Service, [][]byte) {
	store := ttlstore.New(ttlstore.Options{})
	s := New(store, nil, Config{MaxKeySize: 100, MaxValueSize: 1000, MaxTTL: time.Hour, CostRead: 1, CostWrite: 1}, nil)
	var all [][]byte
	firsts := []string{"", "a", "a/", "a/x", "a-", "a\x00b", "ab", "other", "team", "team-x", "team/", "team/x", "team/x/y", "teams", "z"}
	for _, k := range firsts {
		if k != "" && !strings.Contains(k, "\x00") {
			if _, err := store.Set(k, kv.Write{Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
			all = append(all, tupleOf(k))
		}
		for _, tuple := range [][]byte{str(k, "1"), append(str(k), 0x15, 0x01), str(k, "2", "3")} {
			all = append(all, tuple)
		}
	}
	for _, tuple := range [][]byte{{0x01, 0x00}, {0x01, 0x05, 0x00, 0x02, 'a', 0x00}, {0x14}, {0x21, 0x80, 0, 0, 0, 0, 0, 0, 0}, {0x26}, {0x27}} {
		all = append(all, tuple)
	}
	for _, tuple := range all {
		if _, shared := s.sharedKey(tuple); shared {
			continue
		}
		if _, err := store.Set(TupleSpace+string(tuple), kv.Write{Value: []byte{byte(EncodingBytes), 'v'}}); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(all, bytes.Compare)
	return s, all
}

// modelReadable decides a key as README states the rule, without the
// shortcuts of the code: a shared string key as that string key, any
// other key by its first string part s, covered by p when s or s+"/"
// starts with p (only the empty prefix covers a key whose first part is
// no string); the longest covering prefix wins.
func modelReadable(s *Service, gs []Grant, tuple []byte) bool {
	covers := func(p string) bool { return p == "" }
	if key, shared := s.sharedKey(tuple); shared {
		covers = func(p string) bool { return strings.HasPrefix(key, p) }
	} else if first, _, ok := firstString(tuple); ok {
		covers = func(p string) bool { return strings.HasPrefix(first, p) || strings.HasPrefix(first+"/", p) }
	}
	best, access := -1, AccessNone
	for _, g := range gs {
		if covers(g.Prefix) && len(g.Prefix) > best {
			best, access = len(g.Prefix), g.Access
		}
	}
	return access&AccessRead != 0
}

var grantSets = [][]Grant{
	{{"team/", AccessReadWrite}},
	{{"team/", AccessRead}, {"team/x/", AccessNone}},
	{{"", AccessRead}, {"team/", AccessNone}, {"team/x", AccessRead}},
	{{"a", AccessRead}, {"a/", AccessNone}, {"ab", AccessNone}},
	{{"", AccessNone}, {"a/", AccessRead}, {"z", AccessRead}},
	{{"", AccessRead}, {"a-", AccessNone}, {"other", AccessNone}, {"team/", AccessWrite}},
	{{"te", AccessRead}, {"team", AccessNone}, {"teams", AccessRead}},
	{},
}

// A read under grants returns exactly the readable keys of its range,
// in order, however it skips the unreadable runs, both ways.
func TestTupleRangesUnderGrantsMatchTheModel(t *testing.T) {
	s, all := grantFixture(t)
	bounds := [][]byte{{}, {0x00}, {0x02}, {0x03}, {0xff}, str("a"), str("team")}
	for _, k := range all {
		bounds = append(bounds, k, append(slices.Clone(k), 0x00), append(slices.Clone(k), 0xff))
	}
	r := rand.New(rand.NewPCG(5, 6))
	for gi, gs := range grantSets {
		g := NewGrants(gs...)
		for range 1500 {
			start, end := bounds[r.IntN(len(bounds))], bounds[r.IntN(len(bounds))]
			limit, reverse := 1+r.IntN(30), r.IntN(2) == 0
			var want [][]byte
			for _, k := range all {
				if bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0 && modelReadable(s, gs, k) {
					want = append(want, k)
				}
			}
			if reverse {
				slices.Reverse(want)
			}
			want = want[:min(len(want), limit)]
			es, err := s.readRange(TupleRange{Start: start, End: end, Limit: limit, Reverse: reverse}, &g)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			for _, e := range es {
				got = append(got, e.Key)
			}
			if !slices.EqualFunc(got, want, bytes.Equal) {
				t.Fatalf("grants %d %v, range [%q, %q) limit %d reverse %v:\ngot  %q\nwant %q", gi, gs, start, end, limit, reverse, got, want)
			}
		}
	}
}

// FuzzTupleRangeUnderGrants reads arbitrary ranges under each grant set:
// never a panic, always the model.
func FuzzTupleRangeUnderGrants(f *testing.F) {
	f.Add([]byte{0x02, 't'}, []byte{0xff}, uint8(5), false, uint8(0))
	f.Add([]byte{}, []byte{0xff}, uint8(30), true, uint8(2))
	f.Add(str("team"), append(str("team"), 0xff), uint8(3), true, uint8(6))
	s, all := grantFixture(f)
	f.Fuzz(func(t *testing.T, start, end []byte, limit uint8, reverse bool, set uint8) {
		gs := grantSets[int(set)%len(grantSets)]
		g := NewGrants(gs...)
		var want [][]byte
		for _, k := range all {
			if bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0 && modelReadable(s, gs, k) {
				want = append(want, k)
			}
		}
		if reverse {
			slices.Reverse(want)
		}
		want = want[:min(len(want), int(limit)+1)]
		es, err := s.readRange(TupleRange{Start: start, End: end, Limit: int(limit) + 1, Reverse: reverse}, &g)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		for _, e := range es {
			got = append(got, e.Key)
		}
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("grants %v, range [%q, %q) limit %d reverse %v:\ngot  %q\nwant %q", gs, start, end, limit+1, reverse, got, want)
		}
	})
}

// A read is refused only when no key it can return is readable: a get of
// an unreadable key, or a range within one first part the caller may not
// read; others return the readable keys. Writes need write on each key,
// checks and watches read.
func TestTupleRefusals(t *testing.T) {
	s, _ := grantFixture(t)
	c := s.Authenticated(netip.MustParseAddr("192.0.2.1"), false, &Identity{Name: "team", Grants: NewGrants(Grant{"team/", AccessReadWrite}, Grant{"pub", AccessRead})})
	get := func(k []byte) TupleRange { return TupleRange{Start: k, End: append(slices.Clone(k), 0), Limit: 1} }
	prefix := func(k []byte) TupleRange {
		return TupleRange{Start: append(slices.Clone(k), 0), End: append(slices.Clone(k), 0xff), Limit: 10}
	}
	nodePrefix := func(k []byte) TupleRange { return TupleRange{Start: k, End: append(slices.Clone(k), 0xff), Limit: 10} }
	for _, tc := range []struct {
		name    string
		r       TupleRange
		refused bool
	}{
		{"get [team, 1]", get(str("team", "1")), false},
		{"get [team/x]", get(str("team/x")), false},
		{"get [team]", get(str("team")), true},
		{"get [other, 1]", get(str("other", "1")), true},
		{"get [1n]", get([]byte{0x15, 0x01}), true},
		{"list [team]", prefix(str("team")), false},
		{"list [other]", prefix(str("other")), true},
		{"@deno/kv list [other]", nodePrefix(str("other")), true},
		{"@deno/kv list [team]: the key [team] is not readable, its children are", nodePrefix(str("team")), false},
		{"@deno/kv list [pub]: the string key pub is readable", nodePrefix(str("pub")), false},
		{"@deno/kv get [other, 1]: a range to the end", TupleRange{Start: str("other", "1"), End: []byte{0xff}, Limit: 1}, false},
		{"everything", TupleRange{Start: []byte{0}, End: []byte{0xff}, Limit: 10}, false},
	} {
		_, err := s.TupleRead(c, []TupleRange{tc.r})
		if tc.refused {
			var pe *Error
			if !errors.As(err, &pe) || pe.Kind != KindNoPermission || pe.Message != "ranges[0]: no permission to read this key" {
				t.Errorf("%s: want a refusal, got %v", tc.name, err)
			}
		} else if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	set := func(k []byte) TupleMutation {
		return TupleMutation{Kind: MutationSet, Key: k, Value: []byte("v"), Encoding: EncodingBytes}
	}
	before := s.store.(interface{ Version() uint64 }).Version()
	for _, w := range []TupleWrite{
		{Mutations: []TupleMutation{set(str("other", "1"))}},
		{Mutations: []TupleMutation{set(str("team", "9")), set(str("team"))}},
		{Mutations: []TupleMutation{set(str("pub", "1"))}},
		{Checks: []TupleCheck{{Key: str("other"), Absent: true}}, Mutations: []TupleMutation{set(str("team", "9"))}},
		{Mutations: []TupleMutation{{Kind: MutationSetSuffixVersionstamp, Key: str("other"), Value: []byte("v"), Encoding: EncodingBytes}}},
	} {
		if _, err := s.TupleCommit(c, w); err == nil {
			t.Errorf("%+v: committed", w)
		}
	}
	if after := s.store.(interface{ Version() uint64 }).Version(); after != before {
		t.Errorf("refused writes moved the version from %d to %d", before, after)
	}
	if _, err := s.TupleCommit(c, TupleWrite{Checks: []TupleCheck{{Key: str("team", "9"), Absent: true}},
		Mutations: []TupleMutation{set(str("team", "9")), set(str("team/x", "1")),
			{Kind: MutationSetSuffixVersionstamp, Key: str("team"), Value: []byte("v"), Encoding: EncodingBytes}}}); err != nil {
		t.Errorf("the team's own keys: %v", err)
	}
	if _, err := s.TupleWatch(c, [][]byte{str("team", "1"), str("other", "1")}); err == nil || err.Error() != "keys[1]: no permission to read this key" {
		t.Errorf("watch of [other, 1]: %v", err)
	}
}
