package auth

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// CertIdentities maps the names of verified client certificates (mTLS) to
// identities with grants. Its file is in the token file's format (see
// Line), with a certificate name where a token file has a token:
//
//	NAME IDENTITY GRANT... [rate=N/DURATION]
//
// A name is compared with a certificate's names byte for byte: its
// subject common name, DNS names and URI names, as the caller lists them
// (tlsconf.ClientNames). Reload reads the file again, so a removed name
// stops working without a restart. It is safe for concurrent use.
type CertIdentities struct {
	path  string
	log   *slog.Logger
	table atomic.Pointer[map[string]*policy.Identity]
}

// errHashedName refuses a sha256: first field. A token file takes the
// hash so that the file need not hold a secret; a certificate's name is
// no secret (the certificate, which the CA signed, is the proof), and a
// hash would only hide from the reader which certificate a line means.
var errHashedName = errors.New("a certificate name is not a secret: write the name itself, not sha256:<hex>")

// OpenCertIdentities reads the identity file at path. A file that cannot
// be read or parsed is an error here, where a server refuses to start;
// log receives Reload's refusals (nil discards them).
func OpenCertIdentities(path string, log *slog.Logger) (*CertIdentities, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &CertIdentities{path: path, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseCertIdentities parses an identity file's content into its table,
// keyed by certificate name; name is used only in errors, which are
// *LineError. Beyond what Parse refuses, it refuses a sha256: name and a
// name listed twice.
func ParseCertIdentities(name string, data []byte) (map[string]*policy.Identity, error) {
	lines, err := Parse(name, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	table := make(map[string]*policy.Identity, len(lines))
	lineOf := make(map[string]int, len(lines))
	for _, l := range lines {
		if strings.HasPrefix(l.Credential, "sha256:") {
			return nil, &LineError{File: name, Line: l.Number, Err: errHashedName}
		}
		if first, dup := lineOf[l.Credential]; dup {
			return nil, &LineError{File: name, Line: l.Number, Err: fmt.Errorf("certificate name %q is listed on line %d too", clip(l.Credential), first)}
		}
		id := l.Identity
		table[l.Credential], lineOf[l.Credential] = &id, l.Number
	}
	return table, nil
}

func (c *CertIdentities) load() error {
	data, err := os.ReadFile(c.path)
	if err != nil {
		return fmt.Errorf("mTLS identity file: %w", err)
	}
	table, err := ParseCertIdentities(c.path, data)
	if err != nil {
		return fmt.Errorf("mTLS identity file %w", err)
	}
	c.table.Store(&table)
	return nil
}

// Reload reads the file again and swaps the new table in whole: requests
// see the old names or the new ones, never a mix. A file that cannot be
// read or parsed keeps the old table; the refusal, with the file and line,
// is logged and returned.
func (c *CertIdentities) Reload() error {
	if err := c.load(); err != nil {
		c.log.Error("mTLS identity file not reloaded; the previous names stay in force", "err", err)
		return err
	}
	c.log.Info("mTLS identity file reloaded", "file", c.path, "names", c.Len())
	return nil
}

// Len returns the number of certificate names in force.
func (c *CertIdentities) Len() int { return len(*c.table.Load()) }

// Identify returns the identity of the first of names that the file
// lists, or nil when it lists none of them. names are a verified
// certificate's, in the order tlsconf.ClientNames gives them: the common
// name, then the DNS names, then the URI names.
func (c *CertIdentities) Identify(names []string) *policy.Identity {
	if len(names) == 0 {
		return nil
	}
	table := *c.table.Load()
	for _, n := range names {
		if id, ok := table[n]; ok {
			return id
		}
	}
	return nil
}
