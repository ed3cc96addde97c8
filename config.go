package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rendezvous-kv/rendezvous/persist"
)

// config is everything the command line and environment can set.
type config struct {
	Addr          string
	Data          string
	MaxKeySize    int
	MaxValueSize  int
	MaxKeys       int
	MaxTTL        time.Duration
	SaveInterval  time.Duration
	Rate          rateSpec
	RateBurst     int
	CostRead      int
	CostWrite     int
	IPv4Prefix    int
	IPv6Prefix    int
	RateClients   int
	TrustedProxy  prefixList
	Insecure      bool
	Fsync         persist.SyncMode
	Repair        bool
	CORSOrigin    string
	IPWriteOrigin originList
	MaxScanLimit  int
	MaxWait       time.Duration
	MaxWatchers   int
	WatchersPerIP int
	WatchersNet   int
	WatchNetV4    int
	WatchNetV6    int
	MetricsAddr   string
	PprofAddr     string
}

// rateSpec is "N/DURATION" (tokens per window) or "off".
type rateSpec struct {
	Tokens int
	Window time.Duration
	Off    bool
}

func (r *rateSpec) String() string {
	if r.Off {
		return "off"
	}
	return strconv.Itoa(r.Tokens) + "/" + shortDuration(r.Window)
}

func (r *rateSpec) Set(s string) error {
	if s == "off" {
		*r = rateSpec{Off: true}
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
	*r = rateSpec{Tokens: tokens, Window: window}
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
		u, err := url.Parse(part)
		if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return fmt.Errorf("%q is not an origin like https://app.example", part)
		}
		*o = append(*o, strings.ToLower(u.Scheme+"://"+u.Host))
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

// parseConfig reads flags from args, with each flag also settable as the
// environment variable RENDEZVOUS_<FLAG> (upper case, dashes as
// underscores). The command line wins over the environment.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	c := config{
		Addr:          "127.0.0.1:8080",
		Data:          "rendezvous.db",
		MaxKeySize:    100,
		MaxValueSize:  1000,
		MaxKeys:       100000,
		MaxTTL:        2 * time.Hour,
		SaveInterval:  time.Minute,
		Rate:          rateSpec{Tokens: 17, Window: time.Minute},
		CostRead:      1,
		CostWrite:     3,
		IPv4Prefix:    32,
		IPv6Prefix:    64,
		RateClients:   100000,
		CORSOrigin:    "*",
		MaxScanLimit:  1000,
		MaxWait:       time.Minute,
		MaxWatchers:   1000,
		WatchersPerIP: 10,
		WatchersNet:   100,
		WatchNetV4:    24,
		WatchNetV6:    48,
	}
	fs := flag.NewFlagSet("rendezvous", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (host:port)")
	fs.StringVar(&c.Data, "data", c.Data, "snapshot file; empty runs in memory only")
	fs.IntVar(&c.MaxKeySize, "max-key-size", c.MaxKeySize, "maximum key length in bytes, as stored (ip/ keys include the address)")
	fs.IntVar(&c.MaxValueSize, "max-value-size", c.MaxValueSize, "maximum bytes of value plus owner secret")
	fs.IntVar(&c.MaxKeys, "max-keys", c.MaxKeys, "maximum number of live keys")
	fs.DurationVar(&c.MaxTTL, "max-ttl", c.MaxTTL, "default and maximum TTL")
	fs.DurationVar(&c.SaveInterval, "save-interval", c.SaveInterval, "time between snapshots")
	fs.Var(&c.Rate, "rate", `per-client token refill as N/DURATION, or "off"`)
	fs.IntVar(&c.RateBurst, "rate-burst", 0, "token bucket size (default: N of --rate)")
	fs.IntVar(&c.CostRead, "cost-read", c.CostRead, "tokens a read costs")
	fs.IntVar(&c.CostWrite, "cost-write", c.CostWrite, "tokens a write costs")
	fs.IntVar(&c.IPv4Prefix, "rate-ipv4-prefix", c.IPv4Prefix, "IPv4 prefix length that shares one bucket")
	fs.IntVar(&c.IPv6Prefix, "rate-ipv6-prefix", c.IPv6Prefix, "IPv6 prefix length that shares one bucket")
	fs.IntVar(&c.RateClients, "rate-clients", c.RateClients, "maximum buckets kept; beyond it new clients share one")
	fs.Var(&c.TrustedProxy, "trusted-proxy", "CIDR of a reverse proxy whose X-Forwarded-For/X-Real-IP is believed (repeatable, comma-separated)")
	fs.BoolVar(&c.Insecure, "insecure", false, "allow plaintext HTTP on a non-loopback address")
	fs.Func("fsync", "when journal records reach the disk: always, everysec or no (default everysec)", func(s string) error {
		m, err := persist.ParseSyncMode(s)
		c.Fsync = m
		return err
	})
	fs.StringVar(&c.CORSOrigin, "cors-origin", c.CORSOrigin, `Access-Control-Allow-Origin for browsers; "" disables CORS`)
	fs.Var(&c.IPWriteOrigin, "ip-write-origins", "web origins (like https://app.example) whose pages may write ip/ keys, besides this server's own (comma-separated)")
	fs.IntVar(&c.MaxScanLimit, "max-scan-limit", c.MaxScanLimit, "most keys one /list page returns")
	fs.DurationVar(&c.MaxWait, "max-wait", c.MaxWait, "longest a long-poll (?wait=) may hold a request")
	fs.IntVar(&c.MaxWatchers, "max-watchers", c.MaxWatchers, "watch streams and long-polls open at once, in all")
	fs.IntVar(&c.WatchersPerIP, "max-watchers-per-ip", c.WatchersPerIP, "watch streams and long-polls open at once per client")
	fs.IntVar(&c.WatchersNet, "max-watchers-per-net", c.WatchersNet, "watch streams and long-polls open at once per network (see --watch-net-ipv4-prefix)")
	fs.IntVar(&c.WatchNetV4, "watch-net-ipv4-prefix", c.WatchNetV4, "IPv4 prefix length of a network for --max-watchers-per-net")
	fs.IntVar(&c.WatchNetV6, "watch-net-ipv6-prefix", c.WatchNetV6, "IPv6 prefix length of a network for --max-watchers-per-net")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve /metrics on this address instead of the main one (e.g. 127.0.0.1:9090)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve net/http/pprof and expvar on this loopback address (off by default)")
	fs.BoolVar(&c.Repair, "repair", false, "start despite a damaged snapshot or journal, or missing journal generations: load what can be read, move the files aside (never delete)")

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

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "RENDEZVOUS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("invalid value %q for %s (flag --%s): %v", v, name, f.Name, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
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

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if getenv("RENDEZVOUS_"+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))) != "" {
			set[f.Name] = true
		}
	})
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
	if set["maxRequests"] || set["resetDuration"] {
		if legacyRequests <= 0 {
			legacyRequests = 1
		}
		if legacyReset <= 0 {
			legacyReset = time.Minute
		}
		c.Rate = rateSpec{Tokens: legacyRequests, Window: legacyReset}
	}
	return c, c.validate()
}

func (c *config) validate() error {
	positive := []struct {
		name string
		v    int
	}{
		{"max-key-size", c.MaxKeySize},
		{"max-value-size", c.MaxValueSize},
		{"max-keys", c.MaxKeys},
		{"cost-read", c.CostRead},
		{"cost-write", c.CostWrite},
		{"rate-clients", c.RateClients},
		{"max-scan-limit", c.MaxScanLimit},
		{"max-watchers", c.MaxWatchers},
		{"max-watchers-per-ip", c.WatchersPerIP},
		{"max-watchers-per-net", c.WatchersNet},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("invalid value %d for flag --%s: must be positive", p.v, p.name)
		}
	}
	if c.MaxTTL <= 0 {
		return fmt.Errorf("invalid value %s for flag --max-ttl: must be positive", c.MaxTTL)
	}
	if c.MaxWait <= 0 {
		return fmt.Errorf("invalid value %s for flag --max-wait: must be positive", c.MaxWait)
	}
	if c.SaveInterval <= 0 {
		return fmt.Errorf("invalid value %s for flag --save-interval: must be positive", c.SaveInterval)
	}
	if c.RateBurst < 0 {
		return fmt.Errorf("invalid value %d for flag --rate-burst: must not be negative", c.RateBurst)
	}
	if c.IPv4Prefix < 1 || c.IPv4Prefix > 32 {
		return fmt.Errorf("invalid value %d for flag --rate-ipv4-prefix: must be 1..32", c.IPv4Prefix)
	}
	if c.IPv6Prefix < 1 || c.IPv6Prefix > 128 {
		return fmt.Errorf("invalid value %d for flag --rate-ipv6-prefix: must be 1..128", c.IPv6Prefix)
	}
	if c.WatchNetV4 < 1 || c.WatchNetV4 > 32 {
		return fmt.Errorf("invalid value %d for flag --watch-net-ipv4-prefix: must be 1..32", c.WatchNetV4)
	}
	if c.WatchNetV6 < 1 || c.WatchNetV6 > 128 {
		return fmt.Errorf("invalid value %d for flag --watch-net-ipv6-prefix: must be 1..128", c.WatchNetV6)
	}
	if !c.Rate.Off {
		burst := c.burst()
		if c.CostWrite > burst || c.CostRead > burst {
			return fmt.Errorf("invalid value %d for flag --rate-burst: smaller than a request's cost", burst)
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("invalid value %q for flag --addr: %v", c.Addr, err)
	}
	if c.PprofAddr != "" && !loopbackAddr(c.PprofAddr) {
		return fmt.Errorf("invalid value %q for flag --pprof-addr: profiling is only served on a loopback address", c.PprofAddr)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("invalid value %q for flag --metrics-addr: %v", c.MetricsAddr, err)
		}
		if !c.Insecure && !loopbackAddr(c.MetricsAddr) {
			return fmt.Errorf("invalid value %q for flag --metrics-addr: /metrics would be served in plaintext on an address that is not loopback; listen on 127.0.0.1, or pass --insecure to expose it", c.MetricsAddr)
		}
	}
	if !c.Insecure && !loopbackAddr(c.Addr) {
		return fmt.Errorf("refusing to serve plaintext HTTP on %s, which is not a loopback address: put a TLS proxy in front and pass --insecure (with --trusted-proxy), or listen on 127.0.0.1", c.Addr)
	}
	return nil
}

func (c *config) burst() int {
	if c.RateBurst > 0 {
		return c.RateBurst
	}
	return c.Rate.Tokens
}

// loopbackAddr reports whether addr only listens on a loopback interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
