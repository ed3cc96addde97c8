package kvconnect_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A raw watch stream: the first frame at once, a frame after a curl
// write, a zero-length ping within 5 s of quiet, and the end of the
// stream when the server shuts down.
func TestWatchStreamFramesPingsAndShutdown(t *testing.T) {
	ts := startServer(t, nil)
	m := openMeta(t, ts.base)
	req, err := http.NewRequest(http.MethodPost, m.Endpoints[0].URL+"/watch", bytes.NewReader(pb(1, pb(1, key("w/leader")))))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+m.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
	br := bufio.NewReader(resp.Body)
	frame := func() ([]byte, error) {
		var n [4]byte
		if _, err := io.ReadFull(br, n[:]); err != nil {
			return nil, err
		}
		b := make([]byte, binary.LittleEndian.Uint32(n[:]))
		_, err := io.ReadFull(br, b)
		return b, err
	}
	first, err := frame()
	require.NoError(t, err)
	assert.Equal(t, pb(1, 1, 2, pb(1, true)), first, "SR_SUCCESS, the key changed and absent")

	r, err := http.Post(ts.base+"/set/w/leader", "", strings.NewReader("node-a"))
	require.NoError(t, err)
	r.Body.Close()
	next, err := frame()
	require.NoError(t, err)
	assert.Contains(t, string(next), "node-a", "the curl write")
	assert.Contains(t, string(next), "\x02w/leader\x00", "under the tuple key")

	start := time.Now()
	ping, err := frame()
	require.NoError(t, err)
	assert.Empty(t, ping, "a ping is a zero-length frame")
	assert.Less(t, time.Since(start), 7*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(ctx) }()
	for {
		if _, err := frame(); err != nil {
			break // the stream ended
		}
	}
	require.NoError(t, <-done)
	<-ts.done
	ts.srv = nil
}
