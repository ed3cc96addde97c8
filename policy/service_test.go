package policy_test

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/fakeclock"
	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

var t0 = time.Unix(1_700_000_000, 0)

// fakeClock is the shared manual clock: the store and the policy read it,
// so expiry is tested without sleeping.
type fakeClock = fakeclock.Clock

var testConfig = policy.Config{MaxKeySize: 100, MaxValueSize: 1000, MaxTTL: 2 * time.Hour, CostRead: 1, CostWrite: 3}

type fixture struct {
	svc   *policy.Service
	store *ttlstore.Store
	clock *fakeClock
}

func newFixture(t *testing.T, opts ttlstore.Options, lim *limiter.Limiter) *fixture {
	t.Helper()
	clk := fakeclock.New(t0)
	opts.Now = clk.Now
	store := ttlstore.New(opts)
	return &fixture{svc: policy.New(store, lim, testConfig, clk.Now), store: store, clock: clk}
}

var (
	v4     = policy.Caller{IP: netip.MustParseAddr("198.51.100.7")}
	v6     = policy.Caller{IP: netip.MustParseAddr("2001:db8::1")}
	mapped = policy.Caller{IP: netip.MustParseAddr("::ffff:203.0.113.9")}
)

// policyErr asserts err is a *policy.Error of kind and returns it.
func policyErr(t *testing.T, err error, kind policy.Kind) *policy.Error {
	t.Helper()
	var pe *policy.Error
	require.True(t, errors.As(err, &pe), "want *policy.Error, got %T %v", err, err)
	require.Equal(t, kind, pe.Kind, "message: %s", pe.Message)
	assert.NotContains(t, pe.Message, "\n", "messages are one line")
	assert.NotEmpty(t, pe.Message)
	return pe
}

func TestParseTTL(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration // 0: error
	}{
		{"90s", 90 * time.Second},
		{"600", 600 * time.Second},
		{"1", time.Second},
		{"0600", 600 * time.Second},
		{"30m", 30 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"+5s", 5 * time.Second},
		{"1ns", time.Nanosecond},
		{"3h", 3 * time.Hour}, // capped by Write, not by ParseTTL
		{"9223372036", 9223372036 * time.Second},
		{"9223372037", math.MaxInt64}, // saturates
		{"99999999999999999999999", math.MaxInt64},
		{"2562047h", 2562047 * time.Hour},
		{"2562048h", math.MaxInt64}, // past time.Duration's range: saturates too
		{"+2562048h30m", math.MaxInt64},
		{"99999999999999999999999ns", math.MaxInt64},
		{"1.5h9999999999999999999m", math.MaxInt64},
		{"\u00b5s", 0},
		{"3\u00b5s", 3 * time.Microsecond},
		{"2562048h30x", 0},
		{"99999999999999999999999x", 0},
		{"99999999999999999999999 ", 0},
		{"-2562048h", 0},
		{"2562048", 2562048 * time.Second},
		{"h", 0},
		{".h", 0},
		{"+", 0},
		{"0", 0},
		{"00", 0},
		{"0s", 0},
		{"-5s", 0},
		{"-5", 0},
		{"-0", 0},
		{"abc", 0},
		{"10x", 0},
		{"1e3", 0},
		{" 60", 0},
		{"60 ", 0},
		{"0.1ns", 0},
		{"", 0},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := policy.ParseTTL(tc.in)
			if tc.want == 0 {
				pe := policyErr(t, err, policy.KindBadRequest)
				assert.Equal(t, "bad_request", pe.Code())
				assert.Contains(t, pe.Message, "ttl")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// Codes are what clients branch on: each kind has its own, and none may
// change.
func TestKindCodes(t *testing.T) {
	want := map[policy.Kind]string{
		policy.KindBadRequest:      "bad_request",
		policy.KindForbidden:       "forbidden",
		policy.KindNotFound:        "key_not_found",
		policy.KindConflict:        "conflict",
		policy.KindRateLimited:     "rate_limited",
		policy.KindFull:            "store_full",
		policy.KindUnavailable:     "storage_unavailable",
		policy.KindTooLarge:        "too_large",
		policy.KindPrecondition:    "precondition_failed",
		policy.KindNotModified:     "not_modified",
		policy.KindOwned:           "owned",
		policy.KindTooManyWatches:  "too_many_watches",
		policy.KindShuttingDown:    "shutting_down",
		policy.KindWatchDisabled:   "watch_disabled",
		policy.KindCheckFailed:     "check_failed",
		policy.KindUnauthenticated: "unauthenticated",
		policy.KindNoPermission:    "no_permission",
		policy.KindOverloaded:      "overloaded",
	}
	seen := map[string]policy.Kind{}
	k := policy.Kind(1)
	for ; k.Code() != policy.CodeInternal && k != 0; k++ {
		code := k.Code()
		assert.Equal(t, want[k], code, "kind %d", k)
		assert.NotContains(t, seen, code, "kinds %d and %d share a code", seen[code], k)
		seen[code] = k
		e := &policy.Error{Kind: k, Message: "m"}
		assert.Equal(t, code, e.Code())
		assert.Equal(t, "m", e.Error())
	}
	assert.Len(t, seen, len(want), "every kind has a code in the table above")
	assert.Equal(t, policy.CodeInternal, policy.Kind(0).Code())
	assert.Equal(t, policy.CodeInternal, policy.Kind(200).Code())
}

func TestErrorf(t *testing.T) {
	e := policy.Errorf(policy.KindForbidden, "key %q is %d", "k", 7)
	assert.Equal(t, policy.KindForbidden, e.Kind)
	assert.Equal(t, `key "k" is 7`, e.Message)
	assert.Nil(t, e.Current)
	assert.Nil(t, e.Limit)
}

func TestCanonicalIP(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7":          "198.51.100.7",
		"::ffff:203.0.113.9":    "203.0.113.9",
		"2001:0db8:0:0:0:0:0:1": "2001:db8::1",
		"fe80::1%eth0":          "fe80::1",
		"::1":                   "::1",
	} {
		assert.Equal(t, want, policy.CanonicalIP(netip.MustParseAddr(in)).String(), in)
	}
}

func TestWriteAndGet(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	res, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k", Value: []byte("v")})
	require.NoError(t, err)
	assert.Equal(t, "k", res.Key)
	assert.False(t, res.Scoped)
	assert.Equal(t, "v", string(res.Item.Value))
	assert.Equal(t, t0.Add(2*time.Hour).UnixNano(), res.Item.Expires, "default TTL is MaxTTL")

	it, err := f.svc.Get(v6, "k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(it.Value))

	_, err = f.svc.Get(v4, "missing")
	pe := policyErr(t, err, policy.KindNotFound)
	assert.Equal(t, "key_not_found", pe.Code())
}

func TestWriteTTL(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want time.Duration // 0: error
	}{
		{0, 2 * time.Hour},
		{time.Nanosecond, time.Nanosecond},
		{90 * time.Second, 90 * time.Second},
		{2 * time.Hour, 2 * time.Hour},
		{2*time.Hour + 1, 2 * time.Hour},
		{3 * time.Hour, 2 * time.Hour},
		{math.MaxInt64, 2 * time.Hour},
		{-time.Second, 0},
		{math.MinInt64, 0},
	}
	for _, tc := range tests {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			f := newFixture(t, ttlstore.Options{}, nil)
			res, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k", TTL: tc.ttl})
			if tc.want == 0 {
				policyErr(t, err, policy.KindBadRequest)
				assert.Equal(t, 0, f.store.Len())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, t0.Add(tc.want).UnixNano(), res.Item.Expires)
		})
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k", TTL: time.Minute})
	require.NoError(t, err)
	f.clock.Advance(time.Minute - 1)
	_, err = f.svc.Get(v4, "k")
	require.NoError(t, err)
	f.clock.Advance(1)
	_, err = f.svc.Get(v4, "k")
	policyErr(t, err, policy.KindNotFound)
}

func TestIPScoping(t *testing.T) {
	tests := []struct {
		name   string
		caller policy.Caller
		key    string
		stored string
	}{
		{"v4", v4, "ip/ssh", "ip/198.51.100.7/ssh"},
		{"v6", v6, "ip/ssh", "ip/2001:db8::1/ssh"},
		{"mapped", mapped, "ip/ssh", "ip/203.0.113.9/ssh"},
		{"zone", policy.Caller{IP: netip.MustParseAddr("fe80::1%eth0")}, "ip/x", "ip/fe80::1/x"},
		{"nested", v4, "ip/a/b/c", "ip/198.51.100.7/a/b/c"},
		{"others' key nests", v4, "ip/203.0.113.9/ssh", "ip/198.51.100.7/203.0.113.9/ssh"},
		{"not a prefix", v4, "ipx/ssh", "ipx/ssh"},
		{"bare ip", v4, "ip", "ip"},
		{"case sensitive", v4, "IP/ssh", "IP/ssh"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, op := range []policy.WriteOp{policy.OpSet, policy.OpLoadOrStore, policy.OpCASOrCreate} {
				f := newFixture(t, ttlstore.Options{}, nil)
				res, err := f.svc.Write(tc.caller, op, policy.WriteRequest{Key: tc.key, Value: []byte("v")})
				require.NoError(t, err)
				assert.Equal(t, tc.stored, res.Key)
				assert.Equal(t, tc.stored != tc.key, res.Scoped)
				assert.Equal(t, tc.stored, res.Item.Key)
				_, ok := f.store.Get(tc.stored)
				assert.True(t, ok)

				// Reads are literal.
				it, err := f.svc.Get(v6, tc.stored)
				require.NoError(t, err)
				assert.Equal(t, "v", string(it.Value))
				if tc.stored != tc.key {
					_, err = f.svc.Get(tc.caller, tc.key)
					policyErr(t, err, policy.KindNotFound)
				}
			}
		})
	}
}

func TestIPScopingCAS(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	_, err := f.svc.Write(v6, policy.OpCAS, policy.WriteRequest{Key: "ip/x", Value: []byte("b"), Expected: []byte("a")})
	policyErr(t, err, policy.KindNotFound)
	_, err = f.svc.Write(v6, policy.OpSet, policy.WriteRequest{Key: "ip/x", Value: []byte("a")})
	require.NoError(t, err)
	res, err := f.svc.Write(v6, policy.OpCAS, policy.WriteRequest{Key: "ip/x", Value: []byte("b"), Expected: []byte("a")})
	require.NoError(t, err)
	assert.Equal(t, "ip/2001:db8::1/x", res.Key)
	assert.True(t, res.Scoped)
}

func TestIPScopingErrors(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "ip/"})
	pe := policyErr(t, err, policy.KindBadRequest)
	assert.Contains(t, pe.Message, "ip/")

	_, err = f.svc.Write(policy.Caller{}, policy.OpSet, policy.WriteRequest{Key: "ip/x"})
	policyErr(t, err, policy.KindBadRequest)

	// Without an address, ordinary keys still work.
	_, err = f.svc.Write(policy.Caller{}, policy.OpSet, policy.WriteRequest{Key: "x"})
	require.NoError(t, err)
	assert.Equal(t, 1, f.store.Len())
}

// A cross-site caller (a web page of another site, acting from its
// visitor's address) may read anything and write ordinary keys, but may
// neither write nor delete ip/ keys, with any operation.
func TestIPScopingRefusesCrossSite(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "ip/ssh", Value: []byte("mine")})
	require.NoError(t, err)
	page := v4
	page.CrossSite = true
	for _, op := range []policy.WriteOp{policy.OpSet, policy.OpLoadOrStore, policy.OpCAS, policy.OpCASOrCreate} {
		for _, key := range []string{"ip/ssh", "ip/new"} {
			_, err := f.svc.Write(page, op, policy.WriteRequest{Key: key, Value: []byte("evil"), Expected: []byte("mine")})
			pe := policyErr(t, err, policy.KindForbidden)
			assert.Equal(t, "forbidden", pe.Code())
			assert.Contains(t, pe.Message, "ip/")
		}
	}
	_, err = f.svc.Delete(page, "ip/ssh", "")
	policyErr(t, err, policy.KindForbidden)
	policyErr(t, policy.WriteAllowed(page, "ip/ssh"), policy.KindForbidden)
	require.NoError(t, policy.WriteAllowed(page, "room/a"))
	require.NoError(t, policy.WriteAllowed(v4, "ip/ssh"))

	it, err := f.svc.Get(page, "ip/198.51.100.7/ssh")
	require.NoError(t, err)
	assert.Equal(t, "mine", string(it.Value), "nothing was overwritten")
	assert.Equal(t, 1, f.store.Len(), "nothing was created")

	_, err = f.svc.Write(page, policy.OpSet, policy.WriteRequest{Key: "room/a", Value: []byte("v")})
	require.NoError(t, err)
	_, err = f.svc.Delete(page, "room/a", "")
	require.NoError(t, err)
}

func TestKeyChecks(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"simple", "a", true},
		{"max", strings.Repeat("k", 100), true},
		{"max+1", strings.Repeat("k", 101), false},
		{"utf-8 max bytes", strings.Repeat("ü", 50), true},
		{"utf-8 max+1 bytes", strings.Repeat("ü", 50) + "x", false},
		{"utf-8", "ключ/ü🎉", true},
		{"space and symbols", "a b/?#%+", true},
		{"empty", "", false},
		{"NUL", "a\x00b", false},
		{"0x1f", "\x1f", false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"DEL", "a\x7f", false},
		{"0x80 alone", "a\x80", false},
		{"0xff", "\xff", false},
		{"truncated", "\xc3", false},
		{"surrogate", "\xed\xa0\x80", false},
		{"C1 control as UTF-8 allowed", "\u0085", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, ttlstore.Options{}, nil)
			_, werr := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: tc.key, Value: []byte("v")})
			_, gerr := f.svc.Get(v4, tc.key)
			if tc.ok {
				require.NoError(t, werr)
				require.NoError(t, gerr)
				return
			}
			policyErr(t, werr, policy.KindBadRequest)
			policyErr(t, gerr, policy.KindBadRequest)
			assert.Equal(t, 0, f.store.Len())
		})
	}
}

func TestScopedKeySize(t *testing.T) {
	// "ip/198.51.100.7/" is 16 bytes, "ip/2001:db8::1/" is 15.
	tests := []struct {
		caller policy.Caller
		name   int
		ok     bool
	}{
		{v4, 84, true},
		{v4, 85, false},
		{v6, 85, true},
		{v6, 86, false},
		{mapped, 85, true}, // "ip/203.0.113.9/" is 15 bytes once unmapped
		{mapped, 86, false},
	}
	for _, tc := range tests {
		f := newFixture(t, ttlstore.Options{}, nil)
		res, err := f.svc.Write(tc.caller, policy.OpSet, policy.WriteRequest{Key: "ip/" + strings.Repeat("n", tc.name)})
		if tc.ok {
			require.NoError(t, err, "%v %d", tc.caller.IP, tc.name)
			assert.Len(t, res.Key, 100)
			_, err = f.svc.Get(v4, res.Key)
			require.NoError(t, err)
		} else {
			pe := policyErr(t, err, policy.KindBadRequest)
			assert.Contains(t, pe.Message, "too long")
		}
	}
}

func TestValueSize(t *testing.T) {
	tests := []struct {
		value, secret int
		ok            bool
	}{
		{1000, 0, true},
		{1001, 0, false},
		{990, 10, true},
		{991, 10, false},
		{0, 1000, true},
		{0, 1001, false},
		{0, 0, true},
	}
	for _, tc := range tests {
		for _, op := range []policy.WriteOp{policy.OpSet, policy.OpLoadOrStore, policy.OpCAS, policy.OpCASOrCreate} {
			f := newFixture(t, ttlstore.Options{}, nil)
			_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k"})
			require.NoError(t, err)
			if op == policy.OpLoadOrStore {
				f = newFixture(t, ttlstore.Options{}, nil)
			}
			_, err = f.svc.Write(v4, op, policy.WriteRequest{
				Key: "k", Value: make([]byte, tc.value), Secret: strings.Repeat("s", tc.secret), Expected: []byte{},
			})
			if tc.ok {
				require.NoError(t, err, "op %d value %d secret %d", op, tc.value, tc.secret)
			} else {
				pe := policyErr(t, err, policy.KindTooLarge)
				assert.Equal(t, "value too large: value plus owner secret may be at most 1000 bytes", pe.Message)
			}
		}
	}
}

// ValueLimit states the rule Write applies, so that a front end reading a
// body stops where Write would refuse, with Write's own refusal.
func TestValueLimit(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	for _, secret := range []string{"", "s3cret", strings.Repeat("s", 1000), strings.Repeat("s", 1001)} {
		limit, tooLarge := f.svc.ValueLimit(secret)
		assert.Equal(t, max(1000-len(secret), 0), limit, "secret of %d bytes", len(secret))
		if len(secret) <= 1000 {
			_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k", Value: make([]byte, limit), Secret: secret})
			require.NoError(t, err, "a value of exactly the limit is accepted")
			f = newFixture(t, ttlstore.Options{}, nil)
		}
		_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k", Value: make([]byte, limit+1), Secret: secret})
		assert.Equal(t, tooLarge, err, "one byte more gets the same refusal")
		policyErr(t, tooLarge, policy.KindTooLarge)
	}
}

func TestConflictsCarryCurrent(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	first, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k", Value: []byte("cur"), TTL: time.Minute})
	require.NoError(t, err)

	_, err = f.svc.Write(v4, policy.OpLoadOrStore, policy.WriteRequest{Key: "k", Value: []byte("new")})
	pe := policyErr(t, err, policy.KindConflict)
	require.NotNil(t, pe.Current)
	assert.Equal(t, "cur", string(pe.Current.Value))
	assert.Equal(t, first.Item.Expires, pe.Current.Expires)
	assert.Equal(t, "conflict", pe.Code())

	for _, op := range []policy.WriteOp{policy.OpCAS, policy.OpCASOrCreate} {
		_, err = f.svc.Write(v4, op, policy.WriteRequest{Key: "k", Value: []byte("new"), Expected: []byte("other")})
		pe = policyErr(t, err, policy.KindConflict)
		require.NotNil(t, pe.Current)
		assert.Equal(t, "cur", string(pe.Current.Value))
		assert.Equal(t, first.Item.Version, pe.Current.Version)
	}

	// Two conflicts do not share one Current.
	_, err1 := f.svc.Write(v4, policy.OpLoadOrStore, policy.WriteRequest{Key: "k"})
	_, err = f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k", Value: []byte("changed")})
	require.NoError(t, err)
	_, err2 := f.svc.Write(v4, policy.OpLoadOrStore, policy.WriteRequest{Key: "k"})
	assert.Equal(t, "cur", string(policyErr(t, err1, policy.KindConflict).Current.Value))
	assert.Equal(t, "changed", string(policyErr(t, err2, policy.KindConflict).Current.Value))

	it, err := f.svc.Get(v4, "k")
	require.NoError(t, err)
	assert.Equal(t, "changed", string(it.Value))
}

func TestCASOutcomes(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	_, err := f.svc.Write(v4, policy.OpCAS, policy.WriteRequest{Key: "k", Value: []byte("x"), Expected: []byte("a")})
	policyErr(t, err, policy.KindNotFound)

	res, err := f.svc.Write(v4, policy.OpCASOrCreate, policy.WriteRequest{Key: "k", Value: []byte("a"), Expected: []byte("zzz")})
	require.NoError(t, err)
	assert.Equal(t, "a", string(res.Item.Value))

	res, err = f.svc.Write(v4, policy.OpCAS, policy.WriteRequest{Key: "k", Value: []byte("b"), Expected: []byte("a")})
	require.NoError(t, err)
	assert.Equal(t, "b", string(res.Item.Value))

	res, err = f.svc.Write(v4, policy.OpCASOrCreate, policy.WriteRequest{Key: "k", Value: []byte("c"), Expected: []byte("b")})
	require.NoError(t, err)
	assert.Equal(t, "c", string(res.Item.Value))
}

func TestOwnerRules(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	w := func(op policy.WriteOp, secret, value, expected string) error {
		_, err := f.svc.Write(v4, op, policy.WriteRequest{Key: "k", Value: []byte(value), Secret: secret, Expected: []byte(expected)})
		return err
	}
	require.NoError(t, w(policy.OpSet, "", "a", ""))
	require.NoError(t, w(policy.OpSet, "s", "b", "")) // claims
	for _, op := range []policy.WriteOp{policy.OpSet, policy.OpCAS, policy.OpCASOrCreate} {
		pe := policyErr(t, w(op, "", "x", "b"), policy.KindOwned)
		assert.Equal(t, "owned", pe.Code())
		policyErr(t, w(op, "S", "x", "b"), policy.KindOwned)
	}
	require.NoError(t, w(policy.OpCAS, "s", "c", "b"))
	require.NoError(t, w(policy.OpCASOrCreate, "s", "d", "c"))
	require.NoError(t, w(policy.OpSet, "s", "e", ""))
	it, err := f.svc.Get(v6, "k")
	require.NoError(t, err)
	assert.Equal(t, "e", string(it.Value))
	assert.Equal(t, ttlstore.HashSecret("s"), it.Owner, "the store keeps only the hash")
	assert.NotContains(t, string(it.Owner), "s")
}

func TestStoreFull(t *testing.T) {
	f := newFixture(t, ttlstore.Options{MaxKeys: 1}, nil)
	_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "a"})
	require.NoError(t, err)
	_, err = f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "b"})
	pe := policyErr(t, err, policy.KindFull)
	assert.Equal(t, "store_full", pe.Code())
	_, err = f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "a", Value: []byte("again")})
	require.NoError(t, err)
}

func TestStorageFailure(t *testing.T) {
	f := newFixture(t, ttlstore.Options{OnChange: func(ttlstore.Change) error { return errors.New("journal: disk full") }}, nil)
	_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "a"})
	pe := policyErr(t, err, policy.KindUnavailable)
	assert.Equal(t, "storage_unavailable", pe.Code())
	assert.Contains(t, pe.Message, "disk full")
}

func TestUnknownWriteOp(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	_, err := f.svc.Write(v4, policy.WriteOp(99), policy.WriteRequest{Key: "a"})
	policyErr(t, err, policy.KindBadRequest)
	assert.Equal(t, 0, f.store.Len())
}

func TestRateLimited(t *testing.T) {
	lim, err := limiter.New(limiter.Config{Tokens: 17, Window: time.Minute})
	require.NoError(t, err)
	f := newFixture(t, ttlstore.Options{}, lim)
	for range 5 {
		_, err := f.svc.Write(v6, policy.OpSet, policy.WriteRequest{Key: "k"})
		require.NoError(t, err)
	}
	_, err = f.svc.Write(v6, policy.OpSet, policy.WriteRequest{Key: "k2"})
	pe := policyErr(t, err, policy.KindRateLimited)
	assert.Equal(t, "rate_limited", pe.Code())
	require.NotNil(t, pe.Limit)
	assert.False(t, pe.Limit.Allowed)
	assert.Equal(t, 17, pe.Limit.Limit)
	assert.Equal(t, 2, pe.Limit.Remaining)
	assert.GreaterOrEqual(t, pe.Limit.RetryAfter, time.Second)
	assert.Contains(t, pe.Message, "rate limit")
	_, ok := f.store.Get("k2")
	assert.False(t, ok)

	// Nothing was spent by the refusal: two reads fit, a third does not.
	for range 2 {
		_, err = f.svc.Get(v6, "k")
		require.NoError(t, err)
	}
	_, err = f.svc.Get(v6, "k")
	pe = policyErr(t, err, policy.KindRateLimited)
	assert.Equal(t, 0, pe.Limit.Remaining)

	// The same /64 shares the budget; the mapped form of an IPv4 address
	// shares with the plain one.
	_, err = f.svc.Get(policy.Caller{IP: netip.MustParseAddr("2001:db8::ffff")}, "k")
	policyErr(t, err, policy.KindRateLimited)
	_, err = f.svc.Get(policy.Caller{IP: netip.MustParseAddr("2001:db8:0:1::1")}, "k")
	require.NoError(t, err)
}

func TestNilLimiterNeverLimits(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	for range 100 {
		_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k"})
		require.NoError(t, err)
	}
}

func TestConfig(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	assert.Equal(t, testConfig, f.svc.Config())
}

func TestNilNowUsesWallClock(t *testing.T) {
	svc := policy.New(ttlstore.New(ttlstore.Options{}), nil, testConfig, nil)
	before := time.Now()
	res, err := svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k", TTL: time.Minute})
	require.NoError(t, err)
	exp := time.Unix(0, res.Item.Expires)
	assert.False(t, exp.Before(before.Add(time.Minute)))
	assert.False(t, exp.After(time.Now().Add(time.Minute)))
}
