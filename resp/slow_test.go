package resp_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/resp"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// TestSlowSubscriberIsDisconnected: a subscriber that reads nothing does
// not hold up writers; it is disconnected once it falls out of the
// feed's history or its writes time out.
func TestSlowSubscriberIsDisconnected(t *testing.T) {
	f := feed.New(feed.Options{History: 100})
	store := ttlstore.New(ttlstore.Options{MaxKeys: 1000,
		OnChange: func(c kv.Change) error { f.Publish(c); return nil },
		OnCommit: func(cs []kv.Change, _ any) error { f.PublishBatch(cs); return nil }})
	svc := policy.New(store, nil, policy.Config{MaxKeySize: 100, MaxValueSize: 1000, MaxTTL: time.Hour, CostRead: 1, CostWrite: 3, Feed: f}, nil)
	srv := resp.New(resp.Config{Service: svc, WriteTimeout: 500 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-done
	}()

	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	_, err = nc.Write([]byte("PSUBSCRIBE *\r\n"))
	require.NoError(t, err)
	r := bufio.NewReader(nc)
	for range 6 { // the confirmation: *3 $10 psubscribe $1 * :1
		_, err := r.ReadString('\n')
		require.NoError(t, err)
	}
	// Writers go on at their own pace while it reads nothing.
	value := []byte(strings.Repeat("v", 900))
	for i := range 20000 {
		_, err := svc.Write(svc.Caller(netipLoopback, false), policy.OpSet, policy.WriteRequest{Key: "k" + itoa(i%500), Value: value})
		require.NoError(t, err)
	}
	// Now it reads: what was sent, then the end of the connection.
	_, err = io.Copy(io.Discard, r)
	if err != nil {
		assert.ErrorContains(t, err, "reset", "closed by the server, not by the deadline")
	}
	assert.Eventually(t, func() bool { return f.Active() == 0 }, 5*time.Second, 10*time.Millisecond,
		"its place among the watchers was released")
}
