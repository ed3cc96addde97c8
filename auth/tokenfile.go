package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// Line is one entry of a token file, or of a file in the same format that
// maps another credential to an identity (an mTLS identity file, with a
// certificate name where a token file has a token):
//
//	CREDENTIAL IDENTITY GRANT... [rate=N/DURATION]
type Line struct {
	// Credential is the first field as written: a token, sha256:<hex>
	// (the SHA-256 of a token, so the file need not hold the token), or
	// whatever else the file's user keys identities by.
	Credential string
	// Identity is the identity the credential proves, with its grants and
	// its rate (zero when the line gives none).
	Identity policy.Identity
	// Number is the line's number in its file, 1-based, as Parse counts;
	// zero from ParseLine.
	Number int
}

// LineError is a refusal of one line of a file.
type LineError struct {
	File string // as the caller named it; empty when parsing a reader
	Line int    // 1-based
	Err  error
}

// Error names the file and line, then the reason.
func (e *LineError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

// Unwrap returns the reason.
func (e *LineError) Unwrap() error { return e.Err }

// maxLine bounds one line of a token file; a longer one is refused rather
// than read whole.
const maxLine = 64 << 10

// ParseLine parses one line. A blank line, or one holding only a comment,
// gives ok=false and no error. A '#' that starts a field starts a comment
// to the end of the line.
func ParseLine(s string) (l Line, ok bool, err error) {
	if !utf8.ValidString(s) {
		return Line{}, false, errors.New("line is not valid UTF-8")
	}
	fields := strings.Fields(s)
	for i, f := range fields {
		if strings.HasPrefix(f, "#") {
			fields = fields[:i]
			break
		}
	}
	switch len(fields) {
	case 0:
		return Line{}, false, nil
	case 1:
		return Line{}, false, errors.New("want CREDENTIAL IDENTITY GRANT... [rate=N/DURATION]: no identity")
	case 2:
		return Line{}, false, fmt.Errorf("identity %q has no grants (write -: for none)", clip(fields[1]))
	}
	l.Credential, l.Identity.Name = fields[0], fields[1]
	if err := checkName(l.Identity.Name); err != nil {
		return Line{}, false, err
	}
	grants := fields[2:]
	for i, f := range grants {
		spec, isRate := strings.CutPrefix(f, "rate=")
		if !isRate {
			continue
		}
		if i != len(grants)-1 {
			return Line{}, false, errors.New("rate= must come last, after the grants")
		}
		if l.Identity.Rate, err = ParseRate(spec); err != nil {
			return Line{}, false, err
		}
		grants = grants[:i]
	}
	if len(grants) == 0 {
		return Line{}, false, fmt.Errorf("identity %q has no grants (write -: for none)", clip(l.Identity.Name))
	}
	if l.Identity.Grants, err = grantList(grants); err != nil {
		return Line{}, false, err
	}
	return l, true, nil
}

// checkName refuses an identity name that would be unreadable in logs.
func checkName(name string) error {
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errors.New("identity contains a control character")
		}
	}
	if len(name) > 256 {
		return errors.New("identity longer than 256 bytes")
	}
	return nil
}

// ParseRate parses a rate as N/DURATION: N tokens every DURATION (a Go
// duration such as 1m), like the server's --rate.
func ParseRate(s string) (kv.Rate, error) {
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		return kv.Rate{}, fmt.Errorf("rate %q: want N/DURATION, like 100/1m", clip(s))
	}
	tokens, err := strconv.Atoi(n)
	if err != nil || tokens <= 0 {
		return kv.Rate{}, fmt.Errorf("rate %q: the token count must be a positive integer", clip(s))
	}
	window, err := time.ParseDuration(d)
	if err != nil || window <= 0 {
		return kv.Rate{}, fmt.Errorf("rate %q: the window must be a positive duration, like 1m", clip(s))
	}
	if float64(tokens)/window.Seconds() > 1e9 {
		return kv.Rate{}, fmt.Errorf("rate %q is beyond any limit; leave rate= out for the server's default", clip(s))
	}
	return kv.Rate{Tokens: tokens, Window: window}, nil
}

// Parse reads a whole file of lines. name is used only in errors, which
// are *LineError; the first refused line fails the whole file.
func Parse(name string, r io.Reader) ([]Line, error) {
	var lines []Line
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLine)
	n := 0
	for sc.Scan() {
		n++
		l, ok, err := ParseLine(sc.Text())
		if err != nil {
			return nil, &LineError{File: name, Line: n, Err: err}
		}
		if ok {
			l.Number = n
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxLine)
		}
		return nil, &LineError{File: name, Line: n + 1, Err: err}
	}
	return lines, nil
}

// tokenKey is how a token file's table is keyed: the SHA-256 of the
// token, so a line may give the hash instead of the token, and a lookup
// compares hashes, whose timing says nothing useful about the token.
type tokenKey [sha256.Size]byte

// hashToken returns the table key of a token as a client presents it.
// A token of a usual length is copied to the stack for hashing, so a
// request does not allocate for it.
func hashToken(token string) tokenKey {
	var buf [256]byte
	if len(token) <= len(buf) {
		return sha256.Sum256(append(buf[:0], token...))
	}
	return sha256.Sum256([]byte(token))
}

// parseTokens reads a token file into its table.
func parseTokens(name string, data []byte) (map[tokenKey]*policy.Identity, error) {
	lines, err := Parse(name, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	table := make(map[tokenKey]*policy.Identity, len(lines))
	lineOf := make(map[tokenKey]int, len(lines))
	for _, l := range lines {
		key, err := credentialKey(l.Credential)
		if err != nil {
			return nil, &LineError{File: name, Line: l.Number, Err: err}
		}
		if first, dup := lineOf[key]; dup {
			return nil, &LineError{File: name, Line: l.Number, Err: fmt.Errorf("the same token as line %d", first)}
		}
		id := l.Identity
		table[key], lineOf[key] = &id, l.Number
	}
	return table, nil
}

// credentialKey returns the table key of a token as a line writes it.
func credentialKey(cred string) (tokenKey, error) {
	var key tokenKey
	h, hashed := strings.CutPrefix(cred, "sha256:")
	if !hashed {
		return sha256.Sum256([]byte(cred)), nil
	}
	if len(h) != 2*sha256.Size {
		return key, fmt.Errorf("sha256: wants %d hex digits, got %d", 2*sha256.Size, len(h))
	}
	if _, err := hex.Decode(key[:], []byte(h)); err != nil {
		return key, errors.New("sha256: wants hex digits only")
	}
	return key, nil
}

// TokenFile verifies tokens against a file of lines (see Line): TOKEN
// IDENTITY GRANT... [rate=N/DURATION]. Reload reads the file again, so a
// removed token stops working without a restart. It is safe for
// concurrent use.
type TokenFile struct {
	path  string
	log   *slog.Logger
	table atomic.Pointer[map[tokenKey]*policy.Identity]
}

// OpenTokenFile reads the token file at path. A file that cannot be read
// or parsed is an error here, where a server refuses to start; log
// receives Reload's refusals (nil discards them).
func OpenTokenFile(path string, log *slog.Logger) (*TokenFile, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &TokenFile{path: path, log: log}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *TokenFile) load() error {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	table, err := parseTokens(f.path, data)
	if err != nil {
		return fmt.Errorf("token file %w", err)
	}
	f.table.Store(&table)
	return nil
}

// Reload reads the file again and swaps the new table in whole: requests
// see the old tokens or the new ones, never a mix. A file that cannot be
// read or parsed keeps the old table; the refusal, with the file and line,
// is logged and returned.
func (f *TokenFile) Reload() error {
	if err := f.load(); err != nil {
		f.log.Error("token file not reloaded; the previous tokens stay in force", "err", err)
		return err
	}
	f.log.Info("token file reloaded", "file", f.path, "tokens", f.Len())
	return nil
}

// Len returns the number of tokens in force.
func (f *TokenFile) Len() int { return len(*f.table.Load()) }

// Verify returns the identity of token, or ErrInvalidToken.
func (f *TokenFile) Verify(token string) (*policy.Identity, error) {
	if token == "" {
		return nil, ErrInvalidToken
	}
	id, ok := (*f.table.Load())[hashToken(token)]
	if !ok {
		return nil, ErrInvalidToken
	}
	return id, nil
}

// VerifyHash returns the identity of the token whose SHA-256 is sum, as
// the table in force holds it, or ErrInvalidToken. It lets a front end
// that keeps only a hash of a token, not the token (KV Connect's
// data-path tokens, which outlive the request that showed the access
// token), learn whether the token is still in force after a Reload and
// what it grants now.
func (f *TokenFile) VerifyHash(sum [sha256.Size]byte) (*policy.Identity, error) {
	id, ok := (*f.table.Load())[tokenKey(sum)]
	if !ok {
		return nil, ErrInvalidToken
	}
	return id, nil
}
