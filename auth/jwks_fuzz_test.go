package auth

import (
	"log/slog"
	"slices"
	"testing"
)

// A JWKS document from the network either gives keys that each verify
// only algorithms their type allows, or is refused; never a panic.
func FuzzParseJWKS(f *testing.F) {
	f.Add(`{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"sXch","e":"AQAB"}]}`)
	f.Add(`{"keys":[{"kty":"EC","kid":"e","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`)
	f.Add(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`)
	f.Add(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)
	f.Add(`{"keys":[{"kty":"RSA","use":"enc"}]}`)
	f.Add(`{"keys":null}`)
	f.Add(`[]`)
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, doc string) {
		keys, err := parseJWKS([]byte(doc), log)
		if err != nil {
			return
		}
		for kid, k := range keys {
			allowed := algsOf(k.key)
			if allowed == nil || len(k.algs) == 0 {
				t.Fatalf("kid %q: a %T kept with algorithms %v", kid, k.key, k.algs)
			}
			for _, a := range k.algs {
				if !slices.Contains(allowed, a) || slices.Contains(hmacAlgs, a) {
					t.Fatalf("kid %q: a %T may verify %s", kid, k.key, a)
				}
			}
		}
	})
}
