// Package denoclient installs the real Deno KV clients the KV Connect
// tests and benchmarks drive: the Deno CLI (npm's
// @deno/linux-x64-glibc@2.9.6, whose package holds the deno binary) and
// the @deno/kv@0.14.0 npm package for Node. It is for tests only.
package denoclient

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// The client versions the tests were written against.
const (
	DenoVersion   = "2.9.6"
	DenoKVVersion = "0.14.0"
)

// Clients are the installed clients' paths.
type Clients struct {
	// Deno is the deno binary.
	Deno string
	// KVModule is the ES module of @deno/kv, for Node to import.
	KVModule string
}

var (
	once   sync.Once
	result Clients
	failed error
)

// Dir is the cache directory the clients are installed into:
// $RENDEZVOUS_CLIENT_CACHE, or rendezvous-kvconnect in the user's cache
// directory.
func Dir() string {
	if d := os.Getenv("RENDEZVOUS_CLIENT_CACHE"); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "rendezvous-kvconnect")
}

// Install returns the clients, installing them from npm into Dir when
// they are missing (once per process; a few minutes at most).
func Install() (Clients, error) {
	once.Do(func() { result, failed = install(Dir()) })
	return result, failed
}

func install(dir string) (Clients, error) {
	pkg := "@deno/linux-x64-glibc"
	if runtime.GOARCH == "arm64" {
		pkg = "@deno/linux-arm64-glibc"
	}
	c := Clients{
		Deno:     filepath.Join(dir, "node_modules", pkg, "deno"),
		KVModule: filepath.Join(dir, "node_modules", "@deno", "kv", "esm", "npm.js"),
	}
	if present(c) {
		return c, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return c, fmt.Errorf("npm is needed to install the Deno KV clients: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return c, err
	}
	// A package.json of its own keeps npm from installing into a project
	// further up.
	if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"private": true}`+"\n"), 0o644); err != nil {
			return c, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund",
		"@deno/kv@"+DenoKVVersion, pkg+"@"+DenoVersion)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return c, fmt.Errorf("npm install in %s: %v\n%s", dir, err, out)
	}
	if !present(c) {
		return c, fmt.Errorf("npm install in %s did not leave %s and %s", dir, c.Deno, c.KVModule)
	}
	return c, nil
}

func present(c Clients) bool {
	fi, err := os.Stat(c.Deno)
	if err != nil || fi.Mode()&0o111 == 0 {
		return false
	}
	_, err = os.Stat(c.KVModule)
	return err == nil
}
