package handlers_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// BenchmarkGetHandlerAuth is BenchmarkGetHandler with a bearer token
// verified on every request: through a token file, and through a JWT
// (the first request checks its signature, the rest hit the cache).
func BenchmarkGetHandlerAuth(b *testing.B) {
	dir := b.TempDir()
	secret := strings.Repeat("s", 32)
	jwtTok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "bench", "exp": time.Now().Add(time.Hour).Unix(), "grants": []string{"rw:"}}).SignedString([]byte(secret))
	if err != nil {
		b.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name  string
		o     options
		token string
	}{
		{"none", options{}, ""},
		{"tokenfile", options{authFile: write("tokens", "file-token-0123456789 bench rw:\n")}, "file-token-0123456789"},
		{"jwt", options{jwtSecretFile: write("secret", secret)}, jwtTok},
		// With rate limits on, as a server runs by default: a token is
		// also checked against its address's budget of refused tokens.
		{"none rated", options{rate: benchRate}, ""},
		{"tokenfile rated", options{rate: benchRate, authFile: write("tokens2", "file-token-0123456789 bench rw:\n")}, "file-token-0123456789"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnvWith(b, tc.o)
			if _, err := e.store.Set("bench/key", kv.Write{Value: benchValue, Expires: e.clock.Now().Add(time.Hour).UnixNano()}); err != nil {
				b.Fatal(err)
			}
			req := httptestRequest(http.MethodGet, "/get/bench/key", nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			w := newDiscardWriter()
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				e.srv.ServeHTTP(w, req)
			}
			if w.status != http.StatusOK {
				b.Fatalf("get: status %d", w.status)
			}
		})
	}
}

// benchRate never runs out within a benchmark.
var benchRate = &rateConfig{Tokens: 1 << 30, Window: time.Second, Burst: 1 << 30}
