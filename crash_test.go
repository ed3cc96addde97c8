package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// expected is what the clients know about one key from acknowledged
// answers. A key whose last request got no answer (the server died under
// it) is uncertain: either outcome is correct, so it is not checked.
type expected struct {
	value     string
	expiresAt string
	secret    string // owner secret, "" when unowned
	deleted   bool
	uncertain bool
}

// crashClient drives one client's own keys, so the model of what was
// acknowledged is exact.
type crashClient struct {
	id    int
	base  string
	http  *http.Client
	rng   *rand.Rand
	keys  map[string]*expected
	acked int
}

func (c *crashClient) send(method, path, body string, hdr ...string) (int, http.Header, string, bool) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, "", false
	}
	return resp.StatusCode, resp.Header, string(b), true
}

// step performs one random operation on one of the client's keys. It
// returns false once a request got no answer: the server is gone.
func (c *crashClient) step(t *testing.T, n int) bool {
	key := fmt.Sprintf("c%d/k%d", c.id, c.rng.IntN(40))
	cur := c.keys[key]
	if cur == nil {
		cur = &expected{deleted: true}
		c.keys[key] = cur
	}
	if cur.uncertain {
		return true // the model no longer knows this key; leave it alone
	}
	value := fmt.Sprintf("v%d-%d", c.id, n)
	var status int
	var hdr http.Header
	var ok bool
	switch op := c.rng.IntN(10); {
	case op < 4: // set, keeping the owner's secret when there is one
		status, hdr, _, ok = c.send("POST", "/set/"+key+"?ttl=1h", value, "X-Owner-Secret", cur.secret)
		if ok && status == 200 {
			*cur = expected{value: value, expiresAt: hdr.Get("X-Expires-At"), secret: cur.secret}
		}
	case op < 5: // claim an unowned key
		if cur.secret != "" {
			return true
		}
		secret := fmt.Sprintf("s%d-%d", c.id, n)
		status, hdr, _, ok = c.send("POST", "/set/"+key+"?ttl=1h", value, "X-Owner-Secret", secret)
		if ok && status == 200 {
			*cur = expected{value: value, expiresAt: hdr.Get("X-Expires-At"), secret: secret}
		}
	case op < 7: // compare-and-swap against the known value
		if cur.deleted {
			return true
		}
		status, hdr, _, ok = c.send("POST", "/cas/"+key+"?ttl=1h", value, "X-Expected-Value", cur.value, "X-Owner-Secret", cur.secret)
		if ok && status == 200 {
			*cur = expected{value: value, expiresAt: hdr.Get("X-Expires-At"), secret: cur.secret}
		}
	default: // delete
		if cur.deleted {
			return true
		}
		status, _, _, ok = c.send("POST", "/del/"+key, "", "X-Owner-Secret", cur.secret)
		if ok && status == 200 {
			*cur = expected{deleted: true}
		}
	}
	switch {
	case !ok:
		cur.uncertain = true
		return false
	case status == 200:
		c.acked++
	default:
		// Every operation above is valid for the model's state, so any
		// other answer is a bug, not a crash effect.
		t.Errorf("unexpected status %d for %s", status, key)
	}
	return true
}

// crashRound runs clients against a server with the given fsync mode,
// SIGKILLs it after killAfter, restarts it on the same data and returns how
// many acknowledged states were not found again.
func crashRound(t *testing.T, dir, fsync string, killAfter time.Duration, seed uint64) (lost, checked, acked int) {
	data := filepath.Join(dir, "rendezvous.db")
	s := startServer(t, "--data", data, "--fsync", fsync, "--rate", "off", "--save-interval", "700ms")
	clients := make([]*crashClient, 6)
	var wg sync.WaitGroup
	for i := range clients {
		c := &crashClient{
			id: i, base: s.base,
			http: &http.Client{Timeout: 5 * time.Second},
			rng:  rand.New(rand.NewPCG(seed, uint64(i))),
			keys: map[string]*expected{},
		}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; c.step(t, n); n++ {
			}
		}()
	}
	time.Sleep(killAfter)
	require.NoError(t, s.cmd.Process.Kill())
	<-s.done
	wg.Wait()

	s2 := startServer(t, "--data", data, "--rate", "off")
	defer s2.stop(t)
	check := &crashClient{base: s2.base, http: &http.Client{Timeout: 5 * time.Second}}
	for _, c := range clients {
		acked += c.acked
		for key, want := range c.keys {
			if want.uncertain {
				continue
			}
			checked++
			status, hdr, body, ok := check.send("GET", "/get/"+key, "")
			require.True(t, ok)
			if want.deleted {
				if !assert.Equal(t, 404, status, "acknowledged delete of %s is back", key) {
					lost++
				}
				continue
			}
			if !assert.Equal(t, 200, status, "acknowledged write of %s is missing", key) {
				lost++
				continue
			}
			assert.Equal(t, want.value, body, key)
			assert.Equal(t, want.expiresAt, hdr.Get("X-Expires-At"), "expiry of %s", key)
			if want.secret != "" {
				// A write without the secret must still be refused, and
				// one with it accepted (which also proves the owner kept).
				st, _, _, _ := check.send("POST", "/cas/"+key, "x", "X-Expected-Value", "no match")
				assert.Equal(t, 403, st, "owner of %s survived", key)
			}
		}
	}
	return lost, checked, acked
}

func TestCrashAlwaysLosesNoAcknowledgedWrite(t *testing.T) {
	for round, base := range []time.Duration{300 * time.Millisecond, 900 * time.Millisecond, 1700 * time.Millisecond} {
		kill := base + rand.N(300*time.Millisecond)
		t.Run(base.String(), func(t *testing.T) {
			lost, checked, acked := crashRound(t, t.TempDir(), "always", kill, uint64(round+1))
			t.Logf("fsync=always kill after %s: %d acknowledged writes, %d keys checked, %d lost", kill, acked, checked, lost)
			assert.Zero(t, lost)
			assert.Positive(t, checked)
		})
	}
}

// A process crash leaves the page cache intact, so everysec loses nothing
// either; only a power cut could cost up to the last second.
func TestCrashEverySecLosesNoAcknowledgedWrite(t *testing.T) {
	for round, base := range []time.Duration{500 * time.Millisecond, 1300 * time.Millisecond} {
		kill := base + rand.N(300*time.Millisecond)
		t.Run(base.String(), func(t *testing.T) {
			lost, checked, acked := crashRound(t, t.TempDir(), "everysec", kill, uint64(round+10))
			t.Logf("fsync=everysec kill after %s: %d acknowledged writes, %d keys checked, %d lost", kill, acked, checked, lost)
			assert.Zero(t, lost)
			assert.Positive(t, checked)
		})
	}
}
