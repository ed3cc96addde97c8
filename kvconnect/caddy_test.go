package kvconnect_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
	"github.com/rendezvous-kv/rendezvous/server"
)

// Both clients over TLS, through Caddy: Deno speaks HTTP/2 (by ALPN) to
// Caddy and trusts Caddy's local CA through DENO_CERT, Node through
// NODE_EXTRA_CA_CERTS; Caddy proxies to the server, which builds the
// endpoint URL from the forwarded scheme and host of its trusted proxy.
func TestClientsOverTLSThroughCaddy(t *testing.T) {
	caddy := apt.Installed(t, "caddy", "caddy")
	clients(t)
	ts := startServer(t, func(c *server.Config) { c.TrustedProxies = mustPrefixes("127.0.0.1/32") })
	_, srvPort, err := net.SplitHostPort(ts.srv.Addr().String())
	require.NoError(t, err)
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		return port
	}
	port, admin := free(), free()
	dir := t.TempDir()
	conf := fmt.Sprintf(`{
	admin 127.0.0.1:%s
	local_certs
	skip_install_trust
	auto_https disable_redirects
}
https://localhost:%s {
	tls internal
	reverse_proxy 127.0.0.1:%s {
		flush_interval -1
	}
}
`, admin, port, srvPort)
	path := filepath.Join(dir, "Caddyfile")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	run := exec.CommandContext(ctx, caddy, "run", "--config", path, "--adapter", "caddyfile")
	run.Env = []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	var logMu sync.Mutex
	var caddyLog bytes.Buffer
	run.Stdout = &syncWriter{w: &caddyLog, mu: &logMu}
	run.Stderr = run.Stdout
	require.NoError(t, run.Start())
	t.Cleanup(func() {
		cancel()
		run.Wait()
	})
	root := filepath.Join(dir, "caddy", "pki", "authorities", "local", "root.crt")
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		_, statErr := os.Stat(root)
		if err == nil {
			c.Close()
		}
		if err == nil && statErr == nil {
			break
		}
		if time.Now().After(deadline) {
			logMu.Lock()
			defer logMu.Unlock()
			t.Fatalf("caddy did not come up on %s with its CA at %s:\n%s", port, root, caddyLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	base := "https://localhost:" + port
	for _, script := range []string{"deno.ts", "node.mjs"} {
		for _, cases := range []string{"suite.mjs", "interop.mjs"} {
			t.Run(script+"/"+cases, func(t *testing.T) {
				out := runClient(t, script, "CASES="+cases, "BASE="+base, "P=tls-"+script[:4], "DENO_KV_ACCESS_TOKEN=t",
					"DENO_CERT="+root, "NODE_EXTRA_CA_CERTS="+root)
				require.Contains(t, out, "done", out)
			})
		}
	}
}

type syncWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
