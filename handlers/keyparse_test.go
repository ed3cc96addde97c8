package handlers

import (
	"net/http/httptest"
	"testing"
)

// BenchmarkKeyFrom measures turning a request path into a key, plain and
// percent-encoded.
func BenchmarkKeyFrom(b *testing.B) {
	for _, tc := range []struct{ name, path string }{
		{"plain", "/get/mesh42/node-a"},
		{"escaped", "/get/mesh42%2Fnode-%C3%BC"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", tc.path, nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := keyFrom(r, "/get/"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
