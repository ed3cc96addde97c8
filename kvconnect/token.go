package kvconnect

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tokens issues and verifies data-path tokens: an expiry and the caller's
// identity, signed with HMAC-SHA256. The key outlives a restart (it is
// kept in a file beside the data), so a token Deno holds stays valid
// until it expires; Deno treats a 401 on the data path as fatal.
type Tokens struct {
	key []byte
	// verified remembers tokens that passed, with their expiry: a client
	// sends the same token on every call for an hour, and checking its
	// MAC each time cost a visible share of a small read.
	mu       sync.Mutex
	verified map[string]verifiedToken
}

type verifiedToken struct {
	identity string
	expires  int64 // Unix seconds
}

// maxVerified bounds the remembered tokens; past it they are forgotten
// all at once (and verified again), so a flood of tokens costs no memory.
const maxVerified = 4096

// NewTokens returns Tokens signing with key.
func NewTokens(key []byte) *Tokens {
	return &Tokens{key: key, verified: make(map[string]verifiedToken)}
}

// errToken is the one refusal of a data-path token, whatever is wrong.
var errToken = errors.New("invalid or expired data-path token; open the database again")

// Issue returns a token for identity valid until expires.
func (t *Tokens) Issue(identity string, expires time.Time) string {
	payload := strconv.FormatInt(expires.Unix(), 10) + "|" + identity
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(t.mac(payload))
}

// Verify returns the identity a token was issued to, if it is genuine and
// not expired at now.
func (t *Tokens) Verify(token string, now time.Time) (string, error) {
	t.mu.Lock()
	v, ok := t.verified[token]
	t.mu.Unlock()
	if ok && now.Unix() < v.expires {
		return v.identity, nil
	}
	identity, expires, err := t.verify(token, now)
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	if len(t.verified) >= maxVerified {
		clear(t.verified)
	}
	t.verified[token] = verifiedToken{identity, expires}
	t.mu.Unlock()
	return identity, nil
}

func (t *Tokens) verify(token string, now time.Time) (string, int64, error) {
	p64, m64, ok := strings.Cut(token, ".")
	if !ok {
		return "", 0, errToken
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, t.mac(string(payload))) {
		return "", 0, errToken
	}
	exp, identity, ok := strings.Cut(string(payload), "|")
	secs, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || now.Unix() >= secs {
		return "", 0, errToken
	}
	return identity, secs, nil
}

func (t *Tokens) mac(payload string) []byte {
	h := hmac.New(sha256.New, t.key)
	h.Write([]byte("rendezvous kvconnect token v1\x00"))
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// State is what a KV Connect front end keeps across restarts: the
// database's UUID, which clients check on every call, and the token key.
type State struct {
	DatabaseID string
	Key        []byte
}

// LoadState reads the state kept beside the data file data (in
// data+".kvconnect", mode 0600), creating it on first use. An empty data
// (an in-memory server) gets a fresh state that lives as long as the
// process.
func LoadState(data string) (State, error) {
	if data == "" {
		return newState()
	}
	path := data + ".kvconnect"
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		st, err := newState()
		if err != nil {
			return State{}, err
		}
		tmp := path + ".tmp"
		body := st.DatabaseID + "\n" + hex.EncodeToString(st.Key) + "\n"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			return State{}, fmt.Errorf("kvconnect: writing %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return State{}, fmt.Errorf("kvconnect: %w", err)
		}
		return st, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("kvconnect: %w", err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != 2 || !uuidShape(lines[0]) {
		return State{}, fmt.Errorf("kvconnect: %s is damaged: want a database UUID and a key, one per line", path)
	}
	key, err := hex.DecodeString(lines[1])
	if err != nil || len(key) < 32 {
		return State{}, fmt.Errorf("kvconnect: %s is damaged: the key is not 32 hex-encoded bytes", path)
	}
	return State{DatabaseID: lines[0], Key: key}, nil
}

func newState() (State, error) {
	var id [16]byte
	key := make([]byte, 32)
	if _, err := rand.Read(id[:]); err != nil {
		return State{}, err
	}
	if _, err := rand.Read(key); err != nil {
		return State{}, err
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(id[:])
	return State{DatabaseID: h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], Key: key}, nil
}

// uuidShape reports whether s is a UUID in the lowercase form @deno/kv
// insists on.
func uuidShape(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}
