package kvconnect

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// Tokens issues and verifies data-path tokens: who the caller is (a
// Subject) and an expiry, sealed with AES-256-GCM under a key derived from
// State.Key, so a token is tamper-proof and shows nothing of the identity,
// its grants or the access token's hash to whoever sees it. The key
// outlives a restart (it is kept in a file beside the data), so a token
// Deno holds stays valid until it expires; Deno treats a 401 on the data
// path as fatal.
type Tokens struct {
	key  []byte // for the tokens of version 1, still accepted
	aead cipher.AEAD
	// verified remembers tokens that passed, with their expiry: a client
	// sends the same token on every call for an hour, and opening it each
	// time cost a visible share of a small read.
	mu       sync.Mutex
	verified map[string]verifiedToken
}

// SubjectKind says how a data-path token's caller was established at the
// metadata exchange, and so how each data-path call establishes it again.
type SubjectKind uint8

// The kinds of subject.
const (
	// SubjectAnonymous is the anonymous caller of the request's address,
	// as a curl request without credentials is (no verifier configured).
	SubjectAnonymous SubjectKind = iota
	// SubjectTokenFile is a token of a token file, kept as its SHA-256
	// and looked up in the file's table in force on each call: a token a
	// reload removed stops working at once, and its grants are the
	// file's current ones.
	SubjectTokenFile
	// SubjectIdentity is an identity a verifier proved (a JWT), with its
	// grants and rate as they were then; the token expires no later than
	// the JWT.
	SubjectIdentity
	// SubjectCertificate is the identity of the client certificate; each
	// call's connection must show a certificate of the same identity.
	SubjectCertificate
)

// Subject is who a data-path token stands for.
type Subject struct {
	Kind SubjectKind
	// Identity is the identity proved at the metadata exchange, nil for
	// SubjectAnonymous. A token of SubjectTokenFile does not keep it
	// (Verify returns it nil): the file's table says who the token is.
	Identity *policy.Identity
	// TokenHash is the SHA-256 of the access token, for SubjectTokenFile.
	TokenHash [sha256.Size]byte
}

type verifiedToken struct {
	sub     Subject
	expires int64 // Unix seconds
}

// sealed is a token's content before sealing: short names, since Deno
// sends the token on every call.
type sealed struct {
	Kind    SubjectKind `json:"k"`
	Expires int64       `json:"e"`
	Name    string      `json:"n,omitempty"`
	Grants  []string    `json:"g,omitempty"`
	Rate    string      `json:"r,omitempty"`
	Hash    []byte      `json:"h,omitempty"`
}

// tokenV2 starts the tokens Issue makes; tokens of version 1 (an HMAC of
// an expiry, always anonymous) have no such prefix.
const tokenV2 = "2."

// maxVerified bounds the remembered tokens; past it they are forgotten
// all at once (and verified again), so a flood of tokens costs no memory.
const maxVerified = 4096

// maxToken bounds a token opened at all: a real one is a few hundred
// bytes (that of a JWT identity with many grants a few KiB).
const maxToken = 64 << 10

// NewTokens returns Tokens sealing with a key derived from key.
func NewTokens(key []byte) *Tokens {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("rendezvous kvconnect token v2 aead"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Tokens{key: key, aead: aead, verified: make(map[string]verifiedToken)}
}

// errToken is the one refusal of a data-path token, whatever is wrong.
var errToken = errors.New("invalid or expired data-path token; open the database again")

// Issue returns a token for sub valid until expires.
func (t *Tokens) Issue(sub Subject, expires time.Time) string {
	p := sealed{Kind: sub.Kind, Expires: expires.Unix()}
	// A token-file token is looked up by its hash on each use, so its
	// identity need not (and should not, for a line of many grants) ride
	// along.
	if id := sub.Identity; id != nil && sub.Kind != SubjectTokenFile {
		p.Name = id.Name
		for _, g := range id.Grants.List() {
			p.Grants = append(p.Grants, g.String())
		}
		if id.Rate.Tokens > 0 {
			p.Rate = strconv.Itoa(id.Rate.Tokens) + "/" + id.Rate.Window.String()
		}
	}
	if sub.Kind == SubjectTokenFile {
		p.Hash = sub.TokenHash[:]
	}
	plain, _ := json.Marshal(p)
	nonce := make([]byte, t.aead.NonceSize(), t.aead.NonceSize()+len(plain)+t.aead.Overhead())
	rand.Read(nonce)
	return tokenV2 + base64.RawURLEncoding.EncodeToString(t.aead.Seal(nonce, nonce, plain, []byte(tokenV2)))
}

// Verify returns whom a token was issued to, if it is genuine and not
// expired at now.
func (t *Tokens) Verify(token string, now time.Time) (Subject, error) {
	t.mu.Lock()
	v, ok := t.verified[token]
	t.mu.Unlock()
	if ok && now.Unix() < v.expires {
		return v.sub, nil
	}
	sub, expires, err := t.open(token, now)
	if err != nil {
		return Subject{}, err
	}
	t.mu.Lock()
	if len(t.verified) >= maxVerified {
		clear(t.verified)
	}
	t.verified[token] = verifiedToken{sub, expires}
	t.mu.Unlock()
	return sub, nil
}

// open checks and unseals a token.
func (t *Tokens) open(token string, now time.Time) (Subject, int64, error) {
	if len(token) > maxToken {
		return Subject{}, 0, errToken
	}
	body, ok := strings.CutPrefix(token, tokenV2)
	if !ok {
		secs, err := t.verifyV1(token, now)
		return Subject{Kind: SubjectAnonymous}, secs, err
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	n := t.aead.NonceSize()
	if err != nil || len(raw) < n {
		return Subject{}, 0, errToken
	}
	plain, err := t.aead.Open(nil, raw[:n], raw[n:], []byte(tokenV2))
	if err != nil {
		return Subject{}, 0, errToken
	}
	var p sealed
	if err := json.Unmarshal(plain, &p); err != nil || now.Unix() >= p.Expires || p.Kind > SubjectCertificate {
		return Subject{}, 0, errToken
	}
	sub := Subject{Kind: p.Kind}
	if p.Kind == SubjectIdentity || p.Kind == SubjectCertificate {
		// Sealed by this server, so the grants parsed when it issued the
		// token; a failure here is a key shared with a stranger.
		id := &policy.Identity{Name: p.Name}
		gs := make([]policy.Grant, 0, len(p.Grants))
		for _, s := range p.Grants {
			g, err := auth.ParseGrant(s)
			if err != nil {
				return Subject{}, 0, errToken
			}
			gs = append(gs, g)
		}
		id.Grants = policy.NewGrants(gs...)
		if p.Rate != "" {
			if id.Rate, err = auth.ParseRate(p.Rate); err != nil {
				return Subject{}, 0, errToken
			}
		}
		sub.Identity = id
	}
	if p.Kind == SubjectTokenFile {
		if len(p.Hash) != sha256.Size {
			return Subject{}, 0, errToken
		}
		copy(sub.TokenHash[:], p.Hash)
	}
	return sub, p.Expires, nil
}

// verifyV1 checks a token of version 1: an expiry and an (always empty)
// identity, signed with HMAC-SHA256 under State.Key. Servers issued them
// before authentication reached KV Connect; they stand for the anonymous
// caller until they expire.
func (t *Tokens) verifyV1(token string, now time.Time) (int64, error) {
	p64, m64, ok := strings.Cut(token, ".")
	if !ok {
		return 0, errToken
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, t.macV1(string(payload))) {
		return 0, errToken
	}
	exp, identity, ok := strings.Cut(string(payload), "|")
	secs, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || identity != "" || now.Unix() >= secs {
		return 0, errToken
	}
	return secs, nil
}

func (t *Tokens) macV1(payload string) []byte {
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
