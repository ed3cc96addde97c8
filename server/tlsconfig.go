package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// TLS reports whether the protocol listeners serve TLS, from files or
// from ACME.
func (c *Config) TLS() bool { return c.TLSCertFile != "" || len(c.ACMEDomains) > 0 }

// acmeCache is the ACME cache directory in effect.
func (c *Config) acmeCache() string {
	if c.ACMECache != "" || c.Data == "" {
		return c.ACMECache
	}
	return c.Data + ".acme"
}

var (
	errNeedsTLS = errors.New("needs TLS (TLSCertFile or ACMEDomains)")
	errNeedsCA  = errors.New("needs TLSClientCAFile: only verified client certificates name an identity")
)

// validateTLS checks the TLS and ACME settings.
func (c *Config) validateTLS() error {
	refuse := func(field string, v any, err error) error {
		return &ConfigError{Field: field, Value: v, Err: err}
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		return refuse("TLSCertFile", c.TLSCertFile, errors.New("needs TLSKeyFile, the certificate's private key"))
	case c.TLSKeyFile != "" && c.TLSCertFile == "":
		return refuse("TLSKeyFile", c.TLSKeyFile, errors.New("needs TLSCertFile, the key's certificate"))
	case c.TLSCertFile != "" && len(c.ACMEDomains) > 0:
		return refuse("ACMEDomains", strings.Join(c.ACMEDomains, ","), errors.New("ACME obtains the certificate itself: give either TLSCertFile or ACMEDomains"))
	case c.TLSClientCAFile != "" && !c.TLS():
		return refuse("TLSClientCAFile", c.TLSClientCAFile, errNeedsTLS)
	case c.MTLSIdentityFile != "" && c.TLSClientCAFile == "":
		return refuse("MTLSIdentityFile", c.MTLSIdentityFile, errNeedsCA)
	case c.HTTPAddr != "" && !c.TLS():
		return refuse("HTTPAddr", c.HTTPAddr, errNeedsTLS)
	case c.TLSPollInterval < 0:
		return refuse("TLSPollInterval", c.TLSPollInterval, errNegative)
	}
	for _, f := range []struct{ field, file string }{
		{"TLSCertFile", c.TLSCertFile},
		{"TLSKeyFile", c.TLSKeyFile},
		{"TLSClientCAFile", c.TLSClientCAFile},
		{"MTLSIdentityFile", c.MTLSIdentityFile},
		{"ACMEDirectoryCAFile", c.ACMEDirectoryCAFile},
	} {
		if f.file == "" {
			continue
		}
		if err := readable(f.file); err != nil {
			return refuse(f.field, f.file, err)
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return refuse("HTTPAddr", c.HTTPAddr, err)
		}
	}
	if len(c.ACMEDomains) == 0 {
		for _, f := range []struct{ field, v string }{
			{"ACMEEmail", c.ACMEEmail},
			{"ACMECache", c.ACMECache},
			{"ACMEDirectory", c.ACMEDirectory},
			{"ACMEDirectoryCAFile", c.ACMEDirectoryCAFile},
		} {
			if f.v != "" {
				return refuse(f.field, f.v, errors.New("needs ACMEDomains"))
			}
		}
		return nil
	}
	for _, d := range c.ACMEDomains {
		if err := checkDomain(d); err != nil {
			return refuse("ACMEDomains", d, err)
		}
	}
	if c.ACMEDirectory != "" {
		if u, err := url.Parse(c.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
			return refuse("ACMEDirectory", c.ACMEDirectory, errors.New("not an https:// URL"))
		}
	}
	if c.acmeCache() == "" {
		return refuse("ACMECache", "", errors.New("needed when Data is empty: without it every start would ask the ACME server for new certificates"))
	}
	return nil
}

// readable reports why file cannot be read, if it cannot.
func readable(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return err
	} else if fi.IsDir() {
		return errors.New("is a directory, not a file")
	}
	return nil
}

// checkDomain refuses what an ACME server would never issue for, early and
// with a reason.
func checkDomain(d string) error {
	switch {
	case d == "":
		return errors.New("empty name")
	case strings.ContainsAny(d, ":/ "):
		return errors.New("want a bare DNS name like kv.example.org, without scheme or port")
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return errors.New("an IP address: ACME certificates here are for DNS names")
	}
	if strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return fmt.Errorf("not a DNS name")
	}
	return nil
}
