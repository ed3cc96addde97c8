package listener

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pair returns both ends of a loopback TCP connection, the server's
// accepted through ln.
func pair(t *testing.T, wrap bool) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if wrap {
		ln = New(ln)
	}
	server, client = connect(t, ln)
	require.NoError(t, server.SetDeadline(time.Now().Add(5*time.Second)))
	return server, client
}

// connect dials ln over loopback and returns the accepted server end and
// the client end; both, and ln, are closed when the test ends.
func connect(t testing.TB, ln net.Listener) (server, client net.Conn) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	client, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { server.Close() })
	return server, client
}

// TestFirstReadTakesWhatArrived: after a small first read, the rest of
// what the peer sent is returned without reading the socket again, which
// the expired deadline proves (a read of the socket would time out).
// Without the wrapper the same second read does time out.
func TestFirstReadTakesWhatArrived(t *testing.T) {
	for _, wrap := range []bool{true, false} {
		t.Run(map[bool]string{true: "wrapped", false: "plain"}[wrap], func(t *testing.T) {
			server, client := pair(t, wrap)
			msg := "GET /get/mesh42/node-a HTTP/1.1\r\nHost: x\r\n\r\n"
			_, err := client.Write([]byte(msg))
			require.NoError(t, err)

			first := make([]byte, 14) // what net/http asks for first
			_, err = io.ReadFull(server, first)
			require.NoError(t, err)
			assert.Equal(t, msg[:14], string(first))
			if !wrap {
				// Let the rest of the message arrive before the deadline,
				// so that only the socket read itself can fail.
				time.Sleep(50 * time.Millisecond)
			}

			require.NoError(t, server.SetReadDeadline(time.Now().Add(-time.Second)))
			rest := make([]byte, 4096)
			n, err := server.Read(rest)
			if !wrap {
				assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, msg[14:], string(rest[:n]))

			_, err = server.Read(rest)
			assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "drained: reads go to the socket")
		})
	}
}

// TestReadsAfterTheBufferSeeEveryByte: a stream longer than the
// read-ahead buffer arrives whole and in order, whatever the sizes of the
// reads, through Read and through WriteTo (io.Copy).
func TestReadsAfterTheBufferSeeEveryByte(t *testing.T) {
	var want bytes.Buffer
	for i := 0; want.Len() < 3*readAhead; i++ {
		want.WriteString(strings.Repeat(string(rune('a'+i%26)), i%97+1))
	}
	for _, tc := range []struct {
		name  string
		first int // size of the first Read
		copy  bool
	}{
		{"small first read, then reads", 7, false},
		{"small first read, then io.Copy", 7, true},
		{"first read larger than the buffer", 2 * readAhead, false},
		{"io.Copy from the start", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := pair(t, true)
			go func() {
				client.Write(want.Bytes())
				client.(*net.TCPConn).CloseWrite()
			}()
			var got bytes.Buffer
			if tc.first > 0 {
				p := make([]byte, tc.first)
				n, err := server.Read(p)
				require.NoError(t, err)
				got.Write(p[:n])
			}
			if tc.copy {
				_, err := io.Copy(&got, server)
				require.NoError(t, err)
			} else {
				p := make([]byte, 1000)
				for {
					n, err := server.Read(p)
					got.Write(p[:n])
					if err == io.EOF {
						break
					}
					require.NoError(t, err)
				}
			}
			assert.Equal(t, want.String(), got.String())
		})
	}
}

// TestServesHTTP1AndCleartextHTTP2: both protocols the API port speaks
// still work over the wrapped listener, over new connections each time.
func TestServesHTTP1AndCleartextHTTP2(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			io.WriteString(w, r.Proto+" "+r.URL.Path+" "+string(body))
		}),
		Protocols:         new(http.Protocols),
		ReadHeaderTimeout: 5 * time.Second,
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(New(ln))
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String()

	h1 := &http.Transport{DisableKeepAlives: true}
	h2 := &http.Transport{Protocols: new(http.Protocols), TLSClientConfig: &tls.Config{}}
	h2.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(h2.CloseIdleConnections)
	big := strings.Repeat("v", 3*readAhead) // a body beyond the first read
	for _, tc := range []struct {
		name  string
		tr    *http.Transport
		proto string
	}{
		{"HTTP/1.1", h1, "HTTP/1.1"},
		{"HTTP/2 prior knowledge", h2, "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := &http.Client{Transport: tc.tr, Timeout: 5 * time.Second}
			for i, body := range []string{"", "short", big} {
				req, err := http.NewRequest(http.MethodPost, url+"/set/k", strings.NewReader(body))
				require.NoError(t, err)
				req.Header.Set("X-Padding", strings.Repeat("p", i*1000))
				resp, err := client.Do(req)
				require.NoError(t, err)
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				assert.Equal(t, tc.proto+" /set/k "+body, string(got))
			}
		})
	}
}
