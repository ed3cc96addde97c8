// The files of this folder are checked by running them: the systemd unit
// through systemd-analyze, the Caddyfile in a real Caddy in front of the
// server, the compose file through docker-compose, and the Dockerfile's
// build command and user by building and running the binary as it does.
// Each test installs the Debian package it needs when it is missing.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
)

// binary is the server built as the Dockerfile builds it (see
// TestDockerfileBuild), shared by the tests.
var binary string

// buildLine is the Dockerfile's build command.
var buildLine = regexp.MustCompile(`(?m)^RUN (.*\bgo build\b.*)$`)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rendezvous-deploy")
	if err != nil {
		panic(err)
	}
	// Other users (the Dockerfile's, DynamicUser's) run the binary.
	if err := os.Chmod(dir, 0o755); err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "rendezvous")
	env, args, err := dockerBuild(binary)
	if err == nil {
		build := exec.Command("go", args...)
		build.Dir = ".." // the Dockerfile's WORKDIR holds the repository
		build.Env = append(os.Environ(), env...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		err = build.Run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the server as deploy/Dockerfile does:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dockerBuild reads the Dockerfile's go build command and returns its
// environment assignments and its arguments after "go", with the output
// written to out.
func dockerBuild(out string) (env, args []string, err error) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		return nil, nil, err
	}
	m := buildLine.FindSubmatch(df)
	if m == nil {
		return nil, nil, fmt.Errorf("no RUN ... go build line")
	}
	words := strings.Fields(string(m[1]))
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env, words = append(env, words[0]), words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		return nil, nil, fmt.Errorf("build line %q is not [VAR=value...] go build ...", m[1])
	}
	args = words[1:]
	for i := range args {
		if args[i] == "-o" && i+1 < len(args) {
			args[i+1] = out
			return env, args, nil
		}
	}
	return nil, nil, fmt.Errorf("build line %q has no -o", m[1])
}

// envFile reads KEY=value lines, skipping comments and blank lines.
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	vars := map[string]string{}
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s:%d: not KEY=value", path, i+1)
		vars[k] = v
	}
	return vars
}

// process is the server binary running.
type process struct {
	cmd  *exec.Cmd
	addr string // the API's host:port
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{}
}

func (p *process) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServer runs cmd (the binary, perhaps through setpriv) and waits
// until it listens; it is stopped with SIGTERM when the test ends, and
// must exit 0 then.
func startServer(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-p.done
				t.Errorf("the server did not stop on SIGINT:\n%s", p.logText())
			}
		}
		assert.Equal(t, 0, cmd.ProcessState.ExitCode(), "exit code; log:\n%s", p.logText())
	})
	select {
	case p.addr = <-addr:
	case <-p.done:
		t.Fatalf("the server exited before listening:\n%s", p.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("the server did not listen:\n%s", p.logText())
	}
	return p
}

// request sends one request with c and returns the response with its body.
func request(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(b)
}

// TestSystemdUnit: the unit and its ACME drop-in pass systemd-analyze
// verify without a single warning, and their exposure is low. The unit's
// ExecStart is pointed at the binary built here, which verify requires to
// exist. A misspelt directive in the drop-in is reported, so the drop-in
// is really read.
func TestSystemdUnit(t *testing.T) {
	analyze := apt.Installed(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	install := func(src, dst string, extra string) {
		raw, err := os.ReadFile(src)
		require.NoError(t, err)
		require.Contains(t, string(raw), "/usr/local/bin/rendezvous")
		s := strings.ReplaceAll(string(raw), "/usr/local/bin/rendezvous", binary) + extra
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		require.NoError(t, os.WriteFile(dst, []byte(s), 0o644))
	}
	unit := filepath.Join(dir, "rendezvous.service")
	dropIn := filepath.Join(dir, "rendezvous.service.d", "acme.conf")
	install("rendezvous.service", unit, "")

	verify := func() string {
		out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	exposure := func() float64 {
		out, err := exec.Command(analyze, "security", "--offline=yes", unit).CombinedOutput()
		require.NoError(t, err, "%s", out)
		m := regexp.MustCompile(`Overall exposure level for rendezvous\.service: ([0-9.]+)`).FindSubmatch(out)
		require.NotNil(t, m, "%s", out)
		score, err := strconv.ParseFloat(string(m[1]), 64)
		require.NoError(t, err)
		return score
	}
	assert.Empty(t, verify())
	plain := exposure()
	t.Logf("systemd-analyze security --offline=yes: exposure %.1f", plain)
	assert.LessOrEqual(t, plain, 1.5, "exposure of the plain unit")

	install("rendezvous-acme.conf", dropIn, "")
	assert.Empty(t, verify())
	acme := exposure()
	t.Logf("with the ACME drop-in: exposure %.1f", acme)
	assert.LessOrEqual(t, acme, 2.0, "exposure of the ACME variant")
	assert.Greater(t, acme, plain, "the drop-in adds CAP_NET_BIND_SERVICE, which costs exposure")

	install("rendezvous-acme.conf", dropIn, "\nBindPrivilegedPorts=yes\n")
	assert.Contains(t, verify(), "BindPrivilegedPorts", "the drop-in is not read")
}

// TestCaddyInFront: Caddy, run with the repository's Caddyfile changed in
// its addresses only, proxies a set, a get, an ip/ write, a long-poll and
// a watch stream to the server run with rendezvous.env's settings, and the server
// sees the client's address (127.0.0.2), not Caddy's (127.0.0.3, and
// 127.0.0.1 towards the server), even when the client sends a forged
// X-Forwarded-For.
func TestCaddyInFront(t *testing.T) {
	caddy := apt.Installed(t, "caddy", "caddy")
	settings := envFile(t, "rendezvous.env")
	require.Equal(t, "127.0.0.1:8080", settings["RENDEZVOUS_ADDR"])
	require.Equal(t, "127.0.0.1", settings["RENDEZVOUS_TRUSTED_PROXY"], "Caddy on the same host reaches the server from 127.0.0.1")
	settings["RENDEZVOUS_ADDR"] = "127.0.0.1:0"
	settings["RENDEZVOUS_METRICS_ADDR"] = "127.0.0.1:0"
	settings["RENDEZVOUS_DATA"] = filepath.Join(t.TempDir(), "rendezvous.db")
	cmd := exec.Command(binary)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range settings {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	srv := startServer(t, cmd)
	_, srvPort, err := net.SplitHostPort(srv.addr)
	require.NoError(t, err)

	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.3:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}
	front, admin := free(), free()
	raw, err := os.ReadFile("Caddyfile")
	require.NoError(t, err)
	conf := string(raw)
	for old, new := range map[string]string{
		"{$RENDEZVOUS_DOMAIN} {":                "http://" + front + " {",
		"{$RENDEZVOUS_UPSTREAM:127.0.0.1:8080}": "127.0.0.1:" + srvPort,
		"admin localhost:2019":                  "admin " + admin,
	} {
		require.Equal(t, 1, strings.Count(conf, old), "the Caddyfile has %q once", old)
		conf = strings.ReplaceAll(conf, old, new)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o644))

	ctx, cancel := context.WithCancel(context.Background())
	run := exec.CommandContext(ctx, caddy, "run", "--config", path, "--adapter", "caddyfile")
	run.Env = []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	var caddyLog bytes.Buffer
	var logMu sync.Mutex
	run.Stdout = &lockedWriter{w: &caddyLog, mu: &logMu}
	run.Stderr = run.Stdout
	require.NoError(t, run.Start())
	t.Cleanup(func() {
		cancel()
		run.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", front, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			logMu.Lock()
			defer logMu.Unlock()
			t.Fatalf("caddy did not listen on %s:\n%s", front, caddyLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The client's connections leave from 127.0.0.2.
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}
	base := "http://" + front

	res, body := request(t, client, http.MethodPost, base+"/set/mesh42/node-a", "10.0.0.7:9000")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	assert.Equal(t, "127.0.0.2", res.Header.Get("X-Client-Ip"))
	res, body = request(t, client, http.MethodGet, base+"/get/mesh42/node-a", "", "X-Forwarded-For", "203.0.113.9")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	assert.Equal(t, "10.0.0.7:9000", body)
	assert.Equal(t, "127.0.0.2", res.Header.Get("X-Client-Ip"), "a forged X-Forwarded-For counts for nothing")
	_, body = request(t, client, http.MethodGet, base+"/ip", "")
	assert.Equal(t, "127.0.0.2", strings.TrimSpace(body))
	res, body = request(t, client, http.MethodPost, base+"/set/ip/ssh", "addr")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	assert.Equal(t, "127.0.0.2", body, "an ip/ key is scoped to the client, not to Caddy")

	// A long-poll waits through Caddy and answers when the key is written.
	polled := make(chan string, 1)
	go func() {
		res, err := client.Get(base + "/get/mesh42/boss?wait=8s")
		if err != nil {
			polled <- err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		polled <- res.Status + " " + string(b)
	}()
	time.Sleep(300 * time.Millisecond) // let it reach the server and wait
	res, body = request(t, client, http.MethodPost, base+"/set/mesh42/boss", "node-a")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	select {
	case got := <-polled:
		assert.Equal(t, "200 OK node-a", got)
	case <-time.After(5 * time.Second):
		t.Fatal("the long-poll did not answer through Caddy")
	}

	// A watch stream: its events arrive through Caddy as they happen.
	stream := &http.Client{Transport: client.Transport} // no overall timeout on a stream
	wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer wcancel()
	req, err := http.NewRequestWithContext(wctx, http.MethodGet, base+"/watch/mesh42/", nil)
	require.NoError(t, err)
	wres, err := stream.Do(req)
	require.NoError(t, err)
	defer wres.Body.Close()
	require.Equal(t, http.StatusOK, wres.StatusCode)
	assert.Equal(t, "text/event-stream", wres.Header.Get("Content-Type"))
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(wres.Body)
		for sc.Scan() {
			events <- sc.Text()
		}
		close(events)
	}()
	res, body = request(t, client, http.MethodPost, base+"/set/mesh42/node-b", "10.0.0.8:9000")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	var seen []string
	for {
		select {
		case line, ok := <-events:
			require.True(t, ok, "the stream ended; lines so far: %q", seen)
			seen = append(seen, line)
			if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"mesh42/node-b"`) {
				assert.Contains(t, seen, "event: set")
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event for the set came through Caddy within 5 s; lines: %q", seen)
		}
	}
}

// lockedWriter lets a process write a buffer the test reads.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCompose: docker-compose accepts compose.yaml, refuses it without the
// domain, and the file gives the server Caddy's address as its trusted
// proxy and Caddy the server's address as its upstream.
func TestCompose(t *testing.T) {
	compose := apt.Installed(t, "docker-compose", "docker-compose")
	config := func(env ...string) (string, error) {
		cmd := exec.Command(compose, "--file", "compose.yaml", "config")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := config()
	require.Error(t, err, "compose.yaml without RENDEZVOUS_DOMAIN:\n%s", out)
	assert.Contains(t, out, "RENDEZVOUS_DOMAIN")

	q := exec.Command(compose, "--file", "compose.yaml", "config", "-q")
	q.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RENDEZVOUS_DOMAIN=kv.example.test"}
	qout, err := q.CombinedOutput()
	require.NoError(t, err, "docker-compose config -q:\n%s", qout)
	assert.Empty(t, strings.TrimSpace(string(qout)))

	out, err = config("RENDEZVOUS_DOMAIN=kv.example.test")
	require.NoError(t, err, out)
	addr := func(service string) string {
		m := regexp.MustCompile(`(?s)\n  ` + service + `:\n.*?ipv4_address: (\S+)`).FindStringSubmatch(out)
		require.NotNil(t, m, "%s has a fixed address:\n%s", service, out)
		return m[1]
	}
	value := func(name string) string {
		m := regexp.MustCompile(`\n\s+` + name + `: '?([^'\n]+)'?\n`).FindStringSubmatch(out)
		require.NotNil(t, m, "%s is set:\n%s", name, out)
		return m[1]
	}
	assert.Equal(t, addr("caddy"), value("RENDEZVOUS_TRUSTED_PROXY"))
	assert.Equal(t, addr("rendezvous")+":8080", value("RENDEZVOUS_UPSTREAM"))
	assert.Equal(t, "kv.example.test", value("RENDEZVOUS_DOMAIN"))
}

// TestDockerfileBuild: the Dockerfile's build command (run by TestMain,
// with its flags as written) makes a static binary, and that binary, run
// as the Dockerfile's user with its environment (the addresses and the
// volume's path changed to this test's) on an empty data directory,
// serves and keeps its data there. No image is built: the base images
// come from a registry this machine cannot reach.
func TestDockerfileBuild(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	m := buildLine.FindSubmatch(df)
	require.NotNil(t, m)
	assert.Contains(t, strings.Fields(string(m[1])), "CGO_ENABLED=0")
	f, err := elf.Open(binary)
	require.NoError(t, err)
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "the binary needs a dynamic loader")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	assert.Empty(t, libs, "shared libraries")
	f.Close()

	user := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindSubmatch(df)
	require.NotNil(t, user, "the Dockerfile sets a numeric USER uid:gid")
	uid, gid := string(user[1]), string(user[2])
	require.NotEqual(t, "0", uid)
	volume := regexp.MustCompile(`(?m)^VOLUME (\S+)$`).FindSubmatch(df)
	require.NotNil(t, volume)
	envs := regexp.MustCompile(`(?m)^ENV (.+)$`).FindSubmatch(df)
	require.NotNil(t, envs)

	// An empty directory of the user's, as the volume is, in a parent
	// directory the user may enter.
	data, err := os.MkdirTemp("", "rendezvous-volume")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(data) })
	u, _ := strconv.Atoi(uid)
	g, _ := strconv.Atoi(gid)
	require.NoError(t, os.Chown(data, u, g))

	setpriv := apt.Installed(t, "setpriv", "util-linux")
	cmd := exec.Command(setpriv, "--reuid="+uid, "--regid="+gid, "--clear-groups", "--no-new-privs", binary)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	sawAddr := false
	for _, kv := range strings.Fields(string(envs[1])) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "RENDEZVOUS_ADDR":
			sawAddr = true
			v = "127.0.0.1:0"
		case "RENDEZVOUS_DATA":
			require.True(t, strings.HasPrefix(v, string(volume[1])+"/"), "the data file %s is on the volume %s", v, volume[1])
			v = data + strings.TrimPrefix(v, string(volume[1]))
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	require.True(t, sawAddr)
	srv := startServer(t, cmd)

	status, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^Uid:\s+`+uid+`\s+`+uid+`\s`, string(status), "the server runs as the Dockerfile's user")

	client := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + srv.addr
	res, body := request(t, client, http.MethodPost, base+"/set/k", "v")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	res, body = request(t, client, http.MethodGet, base+"/get/k", "")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "v", body)

	entries, err := os.ReadDir(data)
	require.NoError(t, err)
	require.NotEmpty(t, entries, "nothing written to the data directory")
	for _, e := range entries {
		info, err := os.Stat(filepath.Join(data, e.Name()))
		require.NoError(t, err)
		assert.Equal(t, uid, fmt.Sprint(info.Sys().(*syscall.Stat_t).Uid), e.Name())
	}
}

// TestReadmeSettingsMatchTheEnvFile: the README's block of settings for a
// public instance and rendezvous.env (which TestCaddyInFront runs) say the
// same, flag for flag, and the block's data file is the unit's.
func TestReadmeSettingsMatchTheEnvFile(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)settings for a public instance.*?```sh\n(rendezvous .*?)```").FindSubmatch(raw)
	require.NotNil(t, m, "README has the block of settings for a public instance")
	words := strings.Fields(strings.ReplaceAll(string(m[1]), "\\\n", " "))[1:]
	block := map[string]string{}
	for i := 0; i < len(words); i += 2 {
		require.True(t, strings.HasPrefix(words[i], "--") && i+1 < len(words), "README block: %q is not --flag value", words[i:])
		block[words[i]] = words[i+1]
	}

	unit, err := os.ReadFile("rendezvous.service")
	require.NoError(t, err)
	data := regexp.MustCompile(`(?m)^Environment=RENDEZVOUS_DATA=(\S+)$`).FindSubmatch(unit)
	require.NotNil(t, data)
	want := map[string]string{"--data": string(data[1])}
	for k, v := range envFile(t, "rendezvous.env") {
		want["--"+strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "RENDEZVOUS_"), "_", "-"))] = v
	}
	assert.Equal(t, want, block)
}
