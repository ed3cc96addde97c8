package main

import (
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/server"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", c.Addr)
	assert.Equal(t, "rendezvous.db", c.Data)
	assert.Equal(t, 100, c.MaxKeySize)
	assert.Equal(t, 1000, c.MaxValueSize)
	assert.Equal(t, 100000, c.MaxKeys)
	assert.Equal(t, 2*time.Hour, c.MaxTTL)
	assert.Equal(t, time.Minute, c.SaveInterval)
	assert.False(t, c.RateOff)
	assert.Equal(t, 17, c.RateTokens)
	assert.Equal(t, time.Minute, c.RateWindow)
	assert.Zero(t, c.RateBurst, "the burst is the token count")
	assert.Equal(t, 1, c.CostRead)
	assert.Equal(t, 3, c.CostWrite)
	assert.False(t, c.PaceGC, "run sets it, not the flags")
	def := server.DefaultConfig()
	assert.Equal(t, def, c, "no flags: the server's defaults")
}

func TestConfigEnvironmentAndFlags(t *testing.T) {
	c, err := parseConfig([]string{"--max-keys", "7", "--trusted-proxy", "10.0.0.0/8,192.0.2.1", "--trusted-proxy", "::ffff:172.16.0.0/108"},
		env(map[string]string{"RENDEZVOUS_MAX_KEYS": "5", "RENDEZVOUS_MAX_TTL": "10m", "RENDEZVOUS_RATE": "off"}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 7, c.MaxKeys, "the command line wins over the environment")
	assert.Equal(t, 10*time.Minute, c.MaxTTL)
	assert.True(t, c.RateOff)
	assert.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.1/32"),
		netip.MustParsePrefix("172.16.0.0/12"),
	}, c.TrustedProxies)
	c, err = parseConfig([]string{"--max-batch-ops", "7"}, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 7, c.MaxBatchOps)

	c, err = parseConfig([]string{"--max-conns", "50", "--max-header-bytes", "8192", "--read-header-timeout", "3s", "--idle-timeout", "20s"},
		env(map[string]string{"RENDEZVOUS_MAX_IN_FLIGHT": "20", "RENDEZVOUS_READ_TIMEOUT": "7s", "RENDEZVOUS_WRITE_TIMEOUT": "9s",
			"RENDEZVOUS_MAX_CONNS": "60"}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 50, c.MaxConns)
	assert.Equal(t, 20, c.MaxInFlight)
	assert.Equal(t, 8192, c.MaxHeaderBytes)
	assert.Equal(t, 3*time.Second, c.ReadHeaderTimeout)
	assert.Equal(t, 7*time.Second, c.ReadTimeout)
	assert.Equal(t, 9*time.Second, c.WriteTimeout)
	assert.Equal(t, 20*time.Second, c.IdleTimeout)

	c, err = parseConfig([]string{"--resp-idle-timeout", "1h"}, env(map[string]string{"RENDEZVOUS_LINE_IDLE_TIMEOUT": "30s"}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, time.Hour, c.RespIdleTimeout)
	assert.Equal(t, 30*time.Second, c.LineIdleTimeout)
}

// A repeatable flag on the command line replaces the environment's list,
// as every other flag's command-line value wins over the environment's;
// without it on the command line the environment's list stands.
func TestConfigListFlagsCommandLineWins(t *testing.T) {
	e := env(map[string]string{"RENDEZVOUS_TRUSTED_PROXY": "10.0.0.0/8", "RENDEZVOUS_IP_WRITE_ORIGINS": "https://a.example"})
	c, err := parseConfig([]string{"--trusted-proxy", "192.0.2.1", "--ip-write-origins", "https://b.example"}, e, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}, c.TrustedProxies)
	assert.Equal(t, []string{"https://b.example"}, c.IPWriteOrigins)

	c, err = parseConfig(nil, e, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, c.TrustedProxies)
	assert.Equal(t, []string{"https://a.example"}, c.IPWriteOrigins)

	_, err = parseConfig(nil, env(map[string]string{"RENDEZVOUS_TRUSTED_PROXY": "nonsense"}), io.Discard)
	require.ErrorContains(t, err, "RENDEZVOUS_TRUSTED_PROXY")
}

func TestConfigLegacyFlags(t *testing.T) {
	c, err := parseConfig([]string{"-l", "127.0.0.2", "-port", "9000", "-maxKeySize", "50", "-maxValueSize", "2000",
		"-maxNumKV", "10", "-expireDuration", "1h", "-saveDuration", "5m", "-maxRequests", "30", "-resetDuration", "10s",
		"-disableLocalIPWarning"}, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.2:9000", c.Addr)
	assert.Equal(t, 50, c.MaxKeySize)
	assert.Equal(t, 2000, c.MaxValueSize)
	assert.Equal(t, 10, c.MaxKeys)
	assert.Equal(t, time.Hour, c.MaxTTL)
	assert.Equal(t, 5*time.Minute, c.SaveInterval)
	assert.False(t, c.RateOff)
	assert.Equal(t, 30, c.RateTokens)
	assert.Equal(t, 10*time.Second, c.RateWindow)
}

func TestConfigRejects(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--max-ttl", "x"}, want: "max-ttl"},
		{args: []string{"--max-ttl", "-1s"}, want: "max-ttl"},
		{args: []string{"--max-value-size", "0"}, want: "max-value-size"},
		{args: []string{"--rate", "5"}, want: "rate"},
		{args: []string{"--rate", "2/1m"}, want: "rate-burst"},
		{args: []string{"--trusted-proxy", "nope"}, want: "trusted-proxy"},
		{args: []string{"--addr", "0.0.0.0:8080"}, want: "--insecure"},
		{args: []string{"--addr", ":8080"}, want: "--insecure"},
		{args: []string{"stray"}, want: "stray"},
		{args: []string{"--max-watchers-per-net", "0"}, want: "max-watchers-per-net"},
		{args: []string{"--rate-ipv4-prefix", "33"}, want: "invalid value 33 for flag --rate-ipv4-prefix: must be 1..32"},
		{args: []string{"--rate-ipv6-prefix", "129"}, want: "invalid value 129 for flag --rate-ipv6-prefix: must be 1..128"},
		{args: []string{"--watch-net-ipv4-prefix", "33"}, want: "invalid value 33 for flag --watch-net-ipv4-prefix: must be 1..32"},
		{args: []string{"--watch-net-ipv6-prefix", "0"}, want: "watch-net-ipv6-prefix"},
		{args: []string{"--max-batch-ops", "0"}, want: "max-batch-ops"},
		{args: []string{"--max-conns", "0"}, want: "invalid value 0 for flag --max-conns: must be positive"},
		{args: []string{"--max-in-flight", "-1"}, want: "invalid value -1 for flag --max-in-flight: must be positive"},
		{args: []string{"--max-header-bytes", "100"}, want: "invalid value 100 for flag --max-header-bytes: must be at least 1024"},
		{args: []string{"--read-header-timeout", "0s"}, want: "invalid value 0s for flag --read-header-timeout: must be positive"},
		{args: []string{"--read-timeout", "0s"}, want: "read-timeout"},
		{args: []string{"--write-timeout", "0s"}, want: "write-timeout"},
		{args: []string{"--idle-timeout", "0s"}, want: "idle-timeout"},
		{args: []string{"--resp-idle-timeout", "0s"}, want: "invalid value 0s for flag --resp-idle-timeout: must be positive"},
		{env: map[string]string{"RENDEZVOUS_LINE_IDLE_TIMEOUT": "-1s"}, want: "line-idle-timeout: must be positive"},
		{env: map[string]string{"RENDEZVOUS_MAX_KEYS": "many"}, want: "RENDEZVOUS_MAX_KEYS"},
	}
	for _, c := range cases {
		_, err := parseConfig(c.args, env(c.env), io.Discard)
		require.Error(t, err, "%v %v", c.args, c.env)
		assert.Contains(t, err.Error(), c.want)
	}
	_, err := parseConfig([]string{"--addr", "0.0.0.0:8080", "--insecure"}, env(nil), io.Discard)
	assert.NoError(t, err, "--insecure allows a public plaintext address")
	_, err = parseConfig([]string{"--addr", "[::1]:8080"}, env(nil), io.Discard)
	assert.NoError(t, err)
}

func TestConfigPprofOnlyOnLoopback(t *testing.T) {
	_, err := parseConfig([]string{"--pprof-addr", "0.0.0.0:6060"}, env(nil), io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pprof-addr")
	c, err := parseConfig([]string{"--pprof-addr", "127.0.0.1:6060"}, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:6060", c.PprofAddr)
}

func TestConfigMetricsAddrCheckedUpFront(t *testing.T) {
	for _, args := range [][]string{
		{"--metrics-addr", "0.0.0.0:9090"},
		{"--metrics-addr", "[::]:9090"},
		{"--metrics-addr", "9090"},
	} {
		_, err := parseConfig(args, env(nil), io.Discard)
		require.Error(t, err, "%v", args)
		assert.Contains(t, err.Error(), "metrics-addr")
	}
	_, err := parseConfig(nil, env(map[string]string{"RENDEZVOUS_METRICS_ADDR": "0.0.0.0:9090"}), io.Discard)
	require.Error(t, err, "the environment is checked the same way")
	c, err := parseConfig([]string{"--metrics-addr", "0.0.0.0:9090", "--insecure"}, env(nil), io.Discard)
	require.NoError(t, err, "--insecure exposes it on purpose")
	assert.Equal(t, "0.0.0.0:9090", c.MetricsAddr)
	_, err = parseConfig([]string{"--metrics-addr", "localhost:9090"}, env(nil), io.Discard)
	assert.NoError(t, err)
}

func TestConfigIPWriteOrigins(t *testing.T) {
	c, err := parseConfig(nil, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Empty(t, c.IPWriteOrigins, "no other site's pages by default")

	c, err = parseConfig([]string{"--ip-write-origins", "https://App.Example, http://localhost:3000/", "--ip-write-origins", "https://b.example"}, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://app.example", "http://localhost:3000", "https://b.example"}, c.IPWriteOrigins)

	c, err = parseConfig(nil, env(map[string]string{"RENDEZVOUS_IP_WRITE_ORIGINS": "https://a.example,https://b.example"}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"https://a.example", "https://b.example"}, c.IPWriteOrigins)

	for _, bad := range []string{"*", "null", "app.example", "https://app.example/path", "https://app.example?x", "https://u@app.example", "https://"} {
		_, err := parseConfig([]string{"--ip-write-origins", bad}, env(nil), io.Discard)
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "ip-write-origins")
		assert.NotContains(t, err.Error(), "\n")
	}
}

func TestConfigAuthFlags(t *testing.T) {
	c, err := parseConfig([]string{"--jwt-jwks-url", "https://issuer.example/jwks.json", "--jwt-audience", "kv"},
		env(map[string]string{"RENDEZVOUS_JWT_ISSUER": "https://issuer.example", "RENDEZVOUS_ANONYMOUS": "r:pub/",
			"RENDEZVOUS_JWT_JWKS_REFETCH_FLOOR": "30s"}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "https://issuer.example/jwks.json", c.JWTJWKSURL)
	assert.Equal(t, "https://issuer.example", c.JWTIssuer)
	assert.Equal(t, "kv", c.JWTAudience)
	assert.Equal(t, "r:pub/", c.Anonymous)
	assert.Equal(t, 30*time.Second, c.JWKSRefetchFloor)
	c, err = parseConfig(nil, env(map[string]string{"RENDEZVOUS_AUTH_FILE": "/etc/tokens"}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "/etc/tokens", c.AuthFile)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--auth-file", "t", "--jwt-public-key", "k"}, "--auth-file and the --jwt-* keys are exclusive"},
		{[]string{"--jwt-secret-file", "s", "--jwt-jwks-url", "https://x"}, "--jwt-secret-file"},
		{[]string{"--anonymous", "rw:"}, "invalid value \"rw:\" for flag --anonymous"},
		{[]string{"--auth-file", "t", "--anonymous", "rw: x"}, "flag --anonymous"},
		{[]string{"--jwt-audience", "kv"}, "flag --jwt-audience"},
		{[]string{"--jwt-jwks-url", "ftp://x"}, "flag --jwt-jwks-url"},
		{[]string{"--jwt-jwks-url", "https://x", "--jwt-jwks-refetch-floor", "-1s"}, "flag --jwt-jwks-refetch-floor"},
	} {
		_, err := parseConfig(tc.args, env(nil), io.Discard)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want)
	}
}
