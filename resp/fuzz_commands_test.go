package resp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// FuzzCommands: any sequence of commands, with any arguments, is
// answered without a panic or an internal error, and the session ends
// when the client's input does.
func FuzzCommands(f *testing.F) {
	for _, s := range []string{
		"SET a 1\nINCR a\nGET a\nINCRBY a -9223372036854775808\n",
		"MULTI\nSET a 1\nINCR a\nEXPIRE a -1\nEXEC\n",
		"SET a b EXAT 1 GET\nGETEX a PXAT 99999999999999999\nSET a b KEEPTTL XX\n",
		"WATCH a b\nMULTI\nMSETNX a 1 b 2\nEXEC\nSCAN 0 MATCH [a-\n",
		"HELLO 3 SETNAME x\nSUBSCRIBE a\nPSUBSCRIBE *\nPING\nUNSUBSCRIBE\nRESET\n",
		"EXPIRE a 9223372036854775807\nPEXPIREAT a -9223372036854775808 GT\nTTL a\n",
		"COMMAND DOCS\nCOMMAND GETKEYS MSET a 1\nCONFIG GET *\nCLIENT SETINFO lib-name x\nINFO memory\n",
	} {
		f.Add([]byte(s))
	}
	fd := feed.New(feed.Options{})
	store := ttlstore.New(ttlstore.Options{MaxKeys: 50,
		OnChange: func(c kv.Change) error { fd.Publish(c); return nil },
		OnCommit: func(cs []kv.Change, _ any) error { fd.PublishBatch(cs); return nil }})
	svc := policy.New(store, nil, policy.Config{MaxKeySize: 20, MaxValueSize: 64, MaxTTL: time.Hour, CostRead: 1, CostWrite: 3, MaxBatchOps: 8, Feed: fd}, nil)
	srv := New(Config{Service: svc, Keys: store.Len})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			nc.Write(data)
			nc.(*net.TCPConn).CloseWrite() // the end of the session: EOF
		}()
		out, err := io.ReadAll(nc)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the session did not end: %v, after %q", err, tail(out))
		}
		if bytes.Contains(out, []byte("-ERR internal")) {
			t.Fatalf("an internal error: %q", tail(out))
		}
	})
}

func tail(b []byte) []byte {
	if len(b) > 200 {
		return b[len(b)-200:]
	}
	return b
}
