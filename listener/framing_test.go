package listener

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The scan finds a head that names both Transfer-Encoding and
// Content-Length however the bytes are split between reads, and nothing
// else.
func TestFramingScan(t *testing.T) {
	const get = "GET /get/k HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
	for _, tc := range []struct {
		name, in string
		want     bool
	}{
		{"both", "POST /set/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", true},
		{"length first, any case", "POST /set/x HTTP/1.1\r\ncontent-LENGTH:3\r\nTRANSFER-encoding:chunked\r\n\r\n", true},
		{"bare LF", "POST /set/x HTTP/1.1\nTransfer-Encoding: chunked\nContent-Length: 5\n\n", true},
		{"after a kept-alive request", get + "POST /x HTTP/1.1\r\nContent-Length: 4\r\nX: y\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"not the HTTP/2 preface", "PRI * HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", true},
		{"plain GET", get, false},
		{"chunked only", "POST /set/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false},
		{"length only", "POST /set/x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", false},
		{"in two heads", "POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"blank line between", "Transfer-Encoding: chunked\r\n\r\nContent-Length: 5\r\n", false},
		{"not at a line start", "POST / HTTP/1.1\r\nX-Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false},
		{"folded", "POST / HTTP/1.1\r\nX: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false},
		{"space before colon", "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n", false},
		{"longer name", "POST / HTTP/1.1\r\nTransfer-Encodings: chunked\r\nContent-Length: 5\r\n\r\n", false},
		{"no colon", "POST / HTTP/1.1\r\nTransfer-Encoding chunked\r\nContent-Length: 5\r\n\r\n", false},
		{"CR then name", "POST / HTTP/1.1\r\n\rTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false},
		{"HTTP/2", http2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00\nTransfer-Encoding: x\nContent-Length: 1\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, split at every byte, and one byte at a time.
			var f framing
			assert.Equal(t, tc.want, f.scan([]byte(tc.in)), "whole")
			for i := range len(tc.in) {
				var f framing
				got := f.scan([]byte(tc.in[:i]))
				got = got || f.scan([]byte(tc.in[i:]))
				assert.Equal(t, tc.want, got, "split at %d", i)
			}
			f = framing{}
			got := false
			for i := range len(tc.in) {
				got = got || f.scan([]byte{tc.in[i]})
			}
			assert.Equal(t, tc.want, got, "byte by byte")
		})
	}
}

// Over a server's real connections, FramingConflict is true for the
// connection that sent a head with both headers, from that request on,
// and for no other connection.
func TestFramingConflictOverHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, strconv.FormatBool(FramingConflict(r.Context())))
		}),
		ConnContext:       ConnContext,
		Protocols:         new(http.Protocols),
		ReadHeaderTimeout: 5 * time.Second,
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(New(ln))
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(c)
	ask := func(head string) string {
		t.Helper()
		_, err := io.WriteString(c, head)
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	assert.Equal(t, "false", ask("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"))
	assert.Equal(t, "false", ask("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx"))
	assert.Equal(t, "true", ask("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"))
	assert.Equal(t, "true", ask("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), "sticky")

	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + addr + "/")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "false", string(b), "another connection")

	h2 := &http.Transport{Protocols: new(http.Protocols), TLSClientConfig: &tls.Config{}}
	h2.Protocols.SetUnencryptedHTTP2(true)
	defer h2.CloseIdleConnections()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addr+"/",
		strings.NewReader("Transfer-Encoding: chunked\nContent-Length: 5\n"))
	require.NoError(t, err)
	resp, err = (&http.Client{Timeout: 5 * time.Second, Transport: h2}).Do(req)
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 2, resp.ProtoMajor)
	assert.Equal(t, "false", string(b), "HTTP/2 frames are not scanned")

	assert.False(t, FramingConflict(context.Background()), "a context without a connection")
}

// typicalGET is a request head as curl sends it.
const typicalGET = "GET /get/mesh42/node-a HTTP/1.1\r\nHost: rendezvous.example\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"

// BenchmarkScanGETHead is what the scan adds to reading one request head.
func BenchmarkScanGETHead(b *testing.B) {
	head := []byte(typicalGET)
	b.SetBytes(int64(len(head)))
	var f framing
	for b.Loop() {
		if f.scan(head) {
			b.Fatal("conflict")
		}
	}
}

// BenchmarkReadGETHead reads request heads through a wrapped loopback
// connection, with the scan and without it.
func BenchmarkReadGETHead(b *testing.B) {
	for _, scan := range []bool{true, false} {
		b.Run(map[bool]string{true: "scan", false: "noscan"}[scan], func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(b, err)
			server, client := connect(b, New(ln))
			c := server.(*conn)
			c.heads.off = !scan
			head := []byte(typicalGET)
			p := make([]byte, 4096)
			b.SetBytes(int64(len(head)))
			for b.Loop() {
				if _, err := client.Write(head); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < len(head); {
					n, err := c.Read(p)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
		})
	}
}
