package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rendezvous-kv/rendezvous/persist"
	"github.com/rendezvous-kv/rendezvous/server"
	"github.com/rendezvous-kv/rendezvous/tlsconf"
)

// rateFlag is --rate: "N/DURATION" (tokens per window) or "off", kept in
// the rate fields of a server.Config.
type rateFlag struct{ c *server.Config }

func (r rateFlag) String() string {
	switch {
	case r.c == nil:
		return ""
	case r.c.RateOff:
		return "off"
	}
	return strconv.Itoa(r.c.RateTokens) + "/" + shortDuration(r.c.RateWindow)
}

func (r rateFlag) Set(s string) error {
	if s == "off" {
		r.c.RateOff = true
		return nil
	}
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		return errors.New(`want N/DURATION (like 17/1m) or "off"`)
	}
	tokens, err := strconv.Atoi(n)
	if err != nil || tokens <= 0 {
		return errors.New("token count must be a positive integer")
	}
	window, err := time.ParseDuration(d)
	if err != nil || window <= 0 {
		return errors.New("window must be a positive duration")
	}
	r.c.RateOff, r.c.RateTokens, r.c.RateWindow = false, tokens, window
	return nil
}

// shortDuration prints 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

// prefixList collects CIDRs or single addresses, repeatable and
// comma-separated.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	parts := make([]string, len(*p))
	for i, x := range *p {
		parts[i] = x.String()
	}
	return strings.Join(parts, ",")
}

func (p *prefixList) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if pfx, err := netip.ParsePrefix(part); err == nil {
			*p = append(*p, unmapPrefix(pfx.Masked()))
			continue
		}
		ip, err := netip.ParseAddr(part)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR or an IP address", part)
		}
		ip = ip.Unmap()
		*p = append(*p, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return nil
}

// originList collects web origins (scheme://host[:port]), repeatable and
// comma-separated, in the lower case browsers send them in.
type originList []string

func (o *originList) String() string { return strings.Join(*o, ",") }

func (o *originList) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		origin, err := server.ParseOrigin(part)
		if err != nil {
			return err
		}
		*o = append(*o, origin)
	}
	return nil
}

// unmapPrefix turns ::ffff:a.b.c.d/N into a.b.c.d/(N-96), because client
// addresses are compared in unmapped form.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// errHelp asks the caller to exit 0 after usage was printed.
var errHelp = errors.New("help requested")

// parseConfig reads flags from args into a server.Config, with each flag
// also settable as the environment variable RENDEZVOUS_<FLAG> (upper case,
// dashes as underscores). The command line wins over the environment. The
// result is validated, with the refusal worded in flags.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (server.Config, error) {
	c := server.DefaultConfig()
	fs := flag.NewFlagSet("rendezvous", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (host:port)")
	fs.StringVar(&c.Data, "data", c.Data, "snapshot file; empty runs in memory only")
	fs.IntVar(&c.MaxKeySize, "max-key-size", c.MaxKeySize, "maximum key length in bytes, as stored (ip/ keys include the address)")
	fs.IntVar(&c.MaxValueSize, "max-value-size", c.MaxValueSize, "maximum bytes of value plus owner secret")
	fs.IntVar(&c.MaxKeys, "max-keys", c.MaxKeys, "maximum number of live keys")
	fs.DurationVar(&c.MaxTTL, "max-ttl", c.MaxTTL, "default and maximum TTL; 0: no limit, and keys without a TTL never expire")
	fs.DurationVar(&c.SaveInterval, "save-interval", c.SaveInterval, "time between snapshots")
	fs.Var(rateFlag{&c}, "rate", `per-client token refill as N/DURATION, or "off"`)
	fs.IntVar(&c.RateBurst, "rate-burst", c.RateBurst, "token bucket size (default: N of --rate)")
	fs.IntVar(&c.CostRead, "cost-read", c.CostRead, "tokens a read costs")
	fs.IntVar(&c.CostWrite, "cost-write", c.CostWrite, "tokens a write costs")
	fs.IntVar(&c.ClientGrouping.V4, "rate-ipv4-prefix", c.ClientGrouping.V4, "IPv4 prefix length that shares one bucket")
	fs.IntVar(&c.ClientGrouping.V6, "rate-ipv6-prefix", c.ClientGrouping.V6, "IPv6 prefix length that shares one bucket")
	fs.IntVar(&c.RateClients, "rate-clients", c.RateClients, "maximum buckets kept; beyond it new clients share one")
	fs.Var((*prefixList)(&c.TrustedProxies), "trusted-proxy", "CIDR of a reverse proxy whose X-Forwarded-For/X-Real-IP is believed (repeatable, comma-separated)")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow plaintext HTTP on a non-loopback address")
	fs.Func("fsync", "when journal records reach the disk: always, everysec or no (default everysec)", func(s string) error {
		m, err := persist.ParseSyncMode(s)
		c.Fsync = m
		return err
	})
	fs.StringVar(&c.CORSOrigin, "cors-origin", c.CORSOrigin, `Access-Control-Allow-Origin for browsers; "" disables CORS`)
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "the server's URL as clients reach it (like https://kv.example), for the endpoints KV Connect hands out; default: from each request")
	fs.Var((*originList)(&c.IPWriteOrigins), "ip-write-origins", "web origins (like https://app.example) whose pages may write ip/ keys, besides this server's own (comma-separated)")
	fs.IntVar(&c.MaxScanLimit, "max-scan-limit", c.MaxScanLimit, "most keys one /list page returns")
	fs.IntVar(&c.MaxBatchOps, "max-batch-ops", c.MaxBatchOps, "most operations (and most checks) of one /txn transaction")
	fs.DurationVar(&c.MaxWait, "max-wait", c.MaxWait, "longest a long-poll (?wait=) may hold a request")
	fs.IntVar(&c.MaxWatchers, "max-watchers", c.MaxWatchers, "watch streams and long-polls open at once, in all")
	fs.IntVar(&c.MaxWatchersPerIP, "max-watchers-per-ip", c.MaxWatchersPerIP, "watch streams and long-polls open at once per client")
	fs.IntVar(&c.MaxWatchersPerNet, "max-watchers-per-net", c.MaxWatchersPerNet, "watch streams and long-polls open at once per network (see --watch-net-ipv4-prefix)")
	fs.IntVar(&c.NetworkGrouping.V4, "watch-net-ipv4-prefix", c.NetworkGrouping.V4, "IPv4 prefix length of a network for --max-watchers-per-net")
	fs.IntVar(&c.NetworkGrouping.V6, "watch-net-ipv6-prefix", c.NetworkGrouping.V6, "IPv6 prefix length of a network for --max-watchers-per-net")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "connections each listener keeps open at once; more wait until one closes")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", c.MaxInFlight, "requests served at once; more are refused with 503 (health checks, /metrics, watches and long-polls not counted)")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", c.MaxHeaderBytes, "largest request line plus headers, in bytes")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "time a client has to send a request's headers")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "time a client has to send a whole request, headers and body")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "time an answer may take to write (watch streams and long-polls excepted)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "time a kept-alive connection may wait for its next request")
	fs.StringVar(&c.RespAddr, "resp-addr", c.RespAddr, "serve the Redis protocol on this address, e.g. 127.0.0.1:6379 (off by default)")
	fs.StringVar(&c.LineAddr, "line-addr", c.LineAddr, "serve netkv's line protocol (for nc) on this address, e.g. 127.0.0.1:4000 (off by default)")
	fs.DurationVar(&c.RespIdleTimeout, "resp-idle-timeout", c.RespIdleTimeout, "time a Redis protocol connection may send no command (subscribed ones excepted)")
	fs.DurationVar(&c.LineIdleTimeout, "line-idle-timeout", c.LineIdleTimeout, "time a line protocol connection may send no line")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve /metrics on this address instead of the main one (e.g. 127.0.0.1:9090)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", c.PprofAddr, "serve net/http/pprof and expvar on this loopback address (off by default)")
	fs.StringVar(&c.AuthFile, "auth-file", c.AuthFile, "token file: lines of TOKEN IDENTITY GRANT... [rate=N/DURATION], re-read on SIGHUP")
	fs.StringVar(&c.JWTSecretFile, "jwt-secret-file", c.JWTSecretFile, "file holding the shared secret of HS256/384/512 bearer JWTs")
	fs.StringVar(&c.JWTPublicKey, "jwt-public-key", c.JWTPublicKey, "PEM public key (RSA, ECDSA, Ed25519) of RS*/PS*/ES*/EdDSA bearer JWTs")
	fs.StringVar(&c.JWTJWKSURL, "jwt-jwks-url", c.JWTJWKSURL, "URL of the JWKS holding the keys of bearer JWTs")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", c.JWTIssuer, "iss every JWT must carry")
	fs.StringVar(&c.JWTAudience, "jwt-audience", c.JWTAudience, "aud every JWT must carry")
	fs.DurationVar(&c.JWKSRefetchFloor, "jwt-jwks-refetch-floor", c.JWKSRefetchFloor, "least time between two JWKS fetches for an unknown kid (default 1m)")
	fs.StringVar(&c.Anonymous, "anonymous", c.Anonymous, `grants of callers without a token or a listed client certificate when auth is on, e.g. "rw: -:team/" (default: none)`)
	fs.StringVar(&c.TLSCertFile, "tls-cert", c.TLSCertFile, "serve TLS with this PEM certificate chain (with --tls-key); reloaded on SIGHUP and when the file changes")
	fs.StringVar(&c.TLSKeyFile, "tls-key", c.TLSKeyFile, "PEM private key of --tls-cert")
	fs.StringVar(&c.TLSClientCAFile, "tls-client-ca", c.TLSClientCAFile, "verify client certificates against these PEM CA certificates (mTLS)")
	fs.Func("tls-client-auth", "with --tls-client-ca: require a client certificate, or verify one only when sent: require or optional (default require)", func(s string) error {
		a, err := tlsconf.ParseClientAuth(s)
		c.TLSClientAuth = a
		return err
	})
	fs.StringVar(&c.MTLSIdentityFile, "mtls-identity-file", c.MTLSIdentityFile, "map client certificate names to identities with grants (token-file format, a name in place of the token)")
	fs.Var((*domainList)(&c.ACMEDomains), "acme-domain", "obtain and renew the certificate for this name by ACME (repeatable, comma-separated)")
	fs.StringVar(&c.ACMEEmail, "acme-email", c.ACMEEmail, "contact address for the ACME account")
	fs.StringVar(&c.ACMECache, "acme-cache", c.ACMECache, "directory for the ACME account and certificates (default: --data followed by .acme)")
	fs.StringVar(&c.ACMEDirectory, "acme-directory", c.ACMEDirectory, "ACME directory URL (default: Let's Encrypt production)")
	fs.StringVar(&c.ACMEDirectoryCAFile, "acme-directory-ca", c.ACMEDirectoryCAFile, "PEM CA certificates to trust for the ACME server's HTTPS, besides the system's")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "serve ACME HTTP-01 challenges and a redirect to https on this plaintext address (e.g. :80)")
	fs.BoolVar(&c.Repair, "repair", c.Repair, "start despite a damaged snapshot or journal, or missing journal generations: load what can be read, move the files aside (never delete)")

	// The original server's flags, so existing units keep working.
	var legacyListen, legacyPort string
	var legacyRequests int
	var legacyReset time.Duration
	var quiet bool
	fs.StringVar(&legacyListen, "l", "", "legacy: interface to listen on (with -port)")
	fs.StringVar(&legacyPort, "port", "", "legacy: port to listen on (with -l)")
	fs.IntVar(&c.MaxKeySize, "maxKeySize", c.MaxKeySize, "legacy: --max-key-size")
	fs.IntVar(&c.MaxValueSize, "maxValueSize", c.MaxValueSize, "legacy: --max-value-size")
	fs.IntVar(&c.MaxKeys, "maxNumKV", c.MaxKeys, "legacy: --max-keys")
	fs.DurationVar(&c.MaxTTL, "expireDuration", c.MaxTTL, "legacy: --max-ttl")
	fs.DurationVar(&c.SaveInterval, "saveDuration", c.SaveInterval, "legacy: --save-interval")
	fs.IntVar(&legacyRequests, "maxRequests", 0, "legacy: tokens per -resetDuration")
	fs.DurationVar(&legacyReset, "resetDuration", 0, "legacy: window of -maxRequests")
	fs.BoolVar(&quiet, "disableLocalIPWarning", false, "legacy: accepted and ignored")
	fs.BoolVar(&quiet, "disableLocalIPWaring", false, "legacy: accepted and ignored")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(usage, "Usage: rendezvous [flags]\n\nEach flag is also read from RENDEZVOUS_<FLAG> (e.g. RENDEZVOUS_ADDR).")
			fs.SetOutput(usage)
			fs.PrintDefaults()
			return c, errHelp
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	// The environment fills in what the command line left unset, after
	// it: a repeatable flag given on the command line then replaces the
	// environment's list rather than adding to it.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "RENDEZVOUS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(name)
		if v == "" || set[f.Name] || envErr != nil {
			return
		}
		if err := f.Value.Set(v); err != nil {
			envErr = fmt.Errorf("invalid value %q for %s (flag --%s): %v", v, name, f.Name, err)
		}
		set[f.Name] = true
	})
	if envErr != nil {
		return c, envErr
	}
	if set["l"] || set["port"] {
		host, port, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return c, fmt.Errorf("invalid value %q for flag --addr: %v", c.Addr, err)
		}
		if set["l"] {
			host = legacyListen
		}
		if set["port"] {
			port = legacyPort
		}
		c.Addr = net.JoinHostPort(host, port)
	}
	if set["tls-client-auth"] && c.TLSClientCAFile == "" {
		return c, errors.New("--tls-client-auth needs --tls-client-ca, the CA that client certificates are verified against")
	}
	if set["maxRequests"] || set["resetDuration"] {
		if legacyRequests <= 0 {
			legacyRequests = 1
		}
		if legacyReset <= 0 {
			legacyReset = time.Minute
		}
		c.RateOff, c.RateTokens, c.RateWindow = false, legacyRequests, legacyReset
	}
	return c, flagError(c.Validate())
}

// flagNames names the flag that sets each server.Config field.
var flagNames = map[string]string{
	"Addr": "addr", "Data": "data", "MaxKeySize": "max-key-size", "MaxValueSize": "max-value-size",
	"MaxKeys": "max-keys", "MaxTTL": "max-ttl", "SaveInterval": "save-interval",
	"RateTokens": "rate", "RateWindow": "rate", "RateBurst": "rate-burst",
	"CostRead": "cost-read", "CostWrite": "cost-write",
	"ClientGrouping.V4": "rate-ipv4-prefix", "ClientGrouping.V6": "rate-ipv6-prefix", "RateClients": "rate-clients",
	"TrustedProxies": "trusted-proxy", "Fsync": "fsync", "CORSOrigin": "cors-origin",
	"IPWriteOrigins": "ip-write-origins", "PublicURL": "public-url", "MaxScanLimit": "max-scan-limit", "MaxWait": "max-wait", "MaxBatchOps": "max-batch-ops",
	"MaxWatchers": "max-watchers", "MaxWatchersPerIP": "max-watchers-per-ip", "MaxWatchersPerNet": "max-watchers-per-net",
	"NetworkGrouping.V4": "watch-net-ipv4-prefix", "NetworkGrouping.V6": "watch-net-ipv6-prefix",
	"MetricsAddr": "metrics-addr", "RespAddr": "resp-addr", "LineAddr": "line-addr", "PprofAddr": "pprof-addr",
	"MaxConns": "max-conns", "MaxInFlight": "max-in-flight", "MaxHeaderBytes": "max-header-bytes",
	"ReadHeaderTimeout": "read-header-timeout", "ReadTimeout": "read-timeout", "WriteTimeout": "write-timeout",
	"IdleTimeout": "idle-timeout", "AuthFile": "auth-file",
	"RespIdleTimeout": "resp-idle-timeout", "LineIdleTimeout": "line-idle-timeout",
	"JWTSecretFile": "jwt-secret-file", "JWTPublicKey": "jwt-public-key", "JWTJWKSURL": "jwt-jwks-url",
	"JWTIssuer": "jwt-issuer", "JWTAudience": "jwt-audience", "Anonymous": "anonymous", "JWKSRefetchFloor": "jwt-jwks-refetch-floor",
	"TLSCertFile": "tls-cert", "TLSKeyFile": "tls-key", "TLSClientCAFile": "tls-client-ca",
	"MTLSIdentityFile": "mtls-identity-file", "ACMEDomains": "acme-domain", "ACMEEmail": "acme-email",
	"ACMECache": "acme-cache", "ACMEDirectory": "acme-directory", "ACMEDirectoryCAFile": "acme-directory-ca",
	"HTTPAddr": "http-addr",
}

// fieldName finds the Config field names that a refusal's reason names,
// to be worded as flags.
var fieldName = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*\b`)

// flagError words a *server.ConfigError for the command line: by the flag
// that set the refused value, and with the flag that lifts a refusal.
func flagError(err error) error {
	var ce *server.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	name, ok := flagNames[ce.Field]
	if !ok {
		return err
	}
	value := fmt.Sprint(ce.Value)
	if s, ok := ce.Value.(string); ok {
		value = strconv.Quote(s)
	}
	switch {
	case errors.Is(ce.Err, server.ErrPlaintext) && ce.Field == "Addr":
		return fmt.Errorf("refusing to serve plaintext HTTP on %s, which is not a loopback address: serve TLS (--tls-cert and --tls-key, or --acme-domain), or put a TLS proxy in front and pass --insecure (with --trusted-proxy), or listen on 127.0.0.1", ce.Value)
	case errors.Is(ce.Err, server.ErrAuthExclusive):
		return errors.New("--auth-file and the --jwt-* keys are exclusive: authenticate with a token file or with JWTs, not both")
	case errors.Is(ce.Err, server.ErrPlaintext) && (ce.Field == "RespAddr" || ce.Field == "LineAddr"):
		return fmt.Errorf("invalid value %s for flag --%s: the protocol would be served in plaintext on an address that is not loopback; listen on 127.0.0.1, or pass --insecure", value, name)
	case errors.Is(ce.Err, server.ErrPlaintext):
		return fmt.Errorf("invalid value %s for flag --%s: /metrics would be served in plaintext on an address that is not loopback; listen on 127.0.0.1, or pass --insecure to expose it", value, name)
	}
	// The reason may name other fields ("needs TLSKeyFile"): by their
	// flags here.
	reason := fieldName.ReplaceAllStringFunc(ce.Err.Error(), func(w string) string {
		if f, ok := flagNames[w]; ok {
			return "--" + f
		}
		return w
	})
	return fmt.Errorf("invalid value %s for flag --%s: %s", value, name, reason)
}

// domainList collects DNS names, repeatable and comma-separated.
type domainList []string

func (d *domainList) String() string { return strings.Join(*d, ",") }

func (d *domainList) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*d = append(*d, strings.ToLower(part))
		}
	}
	return nil
}
