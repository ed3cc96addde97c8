package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// maxJWKS bounds the JWKS document read; real sets are a few KiB.
const maxJWKS = 1 << 20

// jwks keeps the keys of a JSON Web Key Set URL. keyfunc (github.com/
// MicahParks/keyfunc) was the recommended way; it is not used because its
// refetch for an unknown kid makes the caller wait on a rate limiter, with
// the same context bounding the wait and the fetch: a flood of made-up
// kids either queues requests or starves the fetch. Here a token with an
// unknown kid is refused at once unless a fetch is allowed, and at most
// one fetch runs per RefetchFloor. jwkset, keyfunc's own parser, turns
// the set's keys into Go keys.
type jwks struct {
	url     string
	client  *http.Client
	floor   time.Duration
	refresh time.Duration
	log     *slog.Logger

	keys atomic.Pointer[map[string]jwk]
	// last is when the last fetch began, in Unix nanoseconds; zero before
	// the first.
	last atomic.Int64
	// fetchMu holds one fetch at a time; refreshing marks a background
	// refresh under way.
	fetchMu    sync.Mutex
	refreshing atomic.Bool
}

// jwk is one usable key of a set.
type jwk struct {
	key  any
	algs []string // the algorithms it may verify
}

func newJWKS(cfg JWTConfig) *jwks {
	k := &jwks{url: cfg.JWKSURL, floor: cfg.RefetchFloor, refresh: cfg.RefreshInterval, log: cfg.Log}
	if k.floor <= 0 {
		k.floor = DefaultRefetchFloor
	}
	if k.refresh <= 0 {
		k.refresh = DefaultRefreshInterval
	}
	timeout := cfg.HTTPTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	k.client = &http.Client{Timeout: timeout}
	empty := map[string]jwk{}
	k.keys.Store(&empty)
	return k
}

// keyfunc finds the key of a token by its kid (a set of one key serves a
// token without a kid) and checks that the key may verify the token's
// algorithm.
func (k *jwks) keyfunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	key, ok := k.lookup(kid)
	if !ok {
		return nil, errors.New("jwt: unknown kid")
	}
	if !slices.Contains(key.algs, t.Method.Alg()) {
		return nil, errWrongAlg
	}
	return key.key, nil
}

// lookup returns the key kid names, fetching the set again when it holds
// no such key and the last fetch is at least the floor ago.
func (k *jwks) lookup(kid string) (jwk, bool) {
	if key, ok := k.find(kid); ok {
		return key, true
	}
	if !k.mayFetch(time.Now()) {
		return jwk{}, false
	}
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	// A fetch that ran while this one waited may have brought the key.
	if key, ok := k.find(kid); ok {
		return key, true
	}
	if !k.mayFetch(time.Now()) {
		return jwk{}, false
	}
	if err := k.fetchLocked(); err != nil {
		k.log.Warn("JWKS fetch for an unknown kid failed; keeping the keys held", "url", k.url, "err", err)
	}
	return k.find(kid)
}

func (k *jwks) find(kid string) (jwk, bool) {
	keys := *k.keys.Load()
	if kid == "" && len(keys) == 1 {
		for _, key := range keys {
			return key, true
		}
	}
	key, ok := keys[kid]
	return key, ok
}

// mayFetch reports whether the floor since the last fetch has passed.
func (k *jwks) mayFetch(now time.Time) bool {
	last := k.last.Load()
	return last == 0 || now.Sub(time.Unix(0, last)) >= k.floor
}

// refreshIfOld starts a background fetch when the set is older than the
// refresh interval, so keys the issuer retired stop verifying.
func (k *jwks) refreshIfOld(now time.Time) {
	last := k.last.Load()
	if last == 0 || now.Sub(time.Unix(0, last)) < k.refresh || !k.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer k.refreshing.Store(false)
		if err := k.fetch(); err != nil {
			k.log.Warn("JWKS refresh failed; keeping the keys held", "url", k.url, "err", err)
		}
	}()
}

// fetch reads the set, one fetch at a time.
func (k *jwks) fetch() error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	return k.fetchLocked()
}

// fetchLocked reads the set and swaps it in. Keys it cannot use are left
// out and logged; a set that cannot be read keeps the keys held.
func (k *jwks) fetchLocked() error {
	k.last.Store(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), k.client.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1))
	if err != nil {
		return err
	}
	if len(body) > maxJWKS {
		return fmt.Errorf("larger than %d bytes", maxJWKS)
	}
	keys, err := parseJWKS(body, k.log)
	if err != nil {
		return err
	}
	k.keys.Store(&keys)
	return nil
}

// parseJWKS returns the usable signing keys of a JWKS document by kid.
func parseJWKS(body []byte, log *slog.Logger) (map[string]jwk, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	keys := make(map[string]jwk, len(set.Keys))
	for i, m := range set.Keys {
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue // an encryption key
		}
		parsed, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			log.Warn("JWKS key left out", "index", i, "kid", m.KID, "err", err)
			continue
		}
		if _, secret := parsed.Key().([]byte); secret {
			// A set of public keys has no business with a shared secret,
			// and HS* is never accepted from it.
			log.Warn("JWKS key left out", "index", i, "kid", m.KID, "err", "a symmetric key")
			continue
		}
		algs := algsOf(parsed.Key())
		if a := m.ALG.String(); a != "" {
			// The key names its algorithm: only that one, if the key
			// may verify it at all.
			if !slices.Contains(algs, a) {
				log.Warn("JWKS key left out", "index", i, "kid", m.KID, "err", "alg "+a+" does not fit the key")
				continue
			}
			algs = []string{a}
		}
		if algs == nil {
			log.Warn("JWKS key left out", "index", i, "kid", m.KID, "err", fmt.Sprintf("a %T verifies no JWT", parsed.Key()))
			continue
		}
		keys[m.KID] = jwk{key: parsed.Key(), algs: algs}
	}
	return keys, nil
}
