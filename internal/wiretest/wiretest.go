// Package wiretest holds what the end-to-end tests of the binary (package
// main) and of the embedded server (package server) share to talk to a
// server over loopback. It is for tests only.
package wiretest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Client bounds every request, so a server that hangs fails the test
// instead of holding it.
var Client = &http.Client{Timeout: 10 * time.Second}

// Do sends method to url with body and the headers given as name, value
// pairs, and returns the response with its whole body read.
func Do(t testing.TB, method, url, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}
