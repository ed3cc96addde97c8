package kvconnect_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/kvconnect"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

var fuzzOps = []string{"snapshot_read", "atomic_write", "watch"}

// FuzzDataPath posts raw bodies to the data path's handlers: none may
// panic or answer 5xx, and a refused request writes nothing.
func FuzzDataPath(f *testing.F) {
	set := pb(2, pb(1, key("a", "b"), 2, pb(1, "v", 2, 3), 3, 1))
	f.Add(uint8(0), pb(1, pb(1, key("a"), 2, key("b"), 3, 10)))
	f.Add(uint8(0), pb(1, pb(1, []byte{0}, 2, []byte{0xff}, 3, 5, 4, true)))
	f.Add(uint8(1), set)
	f.Add(uint8(1), pb(1, pb(1, key("a"), 2, ""), 2, pb(1, key("a"), 2, pb(1, "12345678", 2, 2), 3, 3)))
	f.Add(uint8(1), pb(2, pb(1, key("a"), 2, pb(1, "v", 2, 1), 3, 9)))
	f.Add(uint8(1), pb(2, pb(1, key("x"), 3, 2)))
	f.Add(uint8(2), pb(1, pb(1, key("a")), 1, pb(1, key("a", "b"))))
	f.Add(uint8(0x10), pb(1, pb(1, []byte{0}, 2, []byte{0xff}, 3, 5, 4, true)))
	f.Add(uint8(0x10), pb(1, pb(1, key("a/x"), 2, []byte{0xff}, 3, 5)))
	f.Add(uint8(0x11), set)
	f.Add(uint8(0x12), pb(1, pb(1, key("b", "x"))))

	store := ttlstore.New(ttlstore.Options{MaxKeys: 1000})
	changes := feed.New(feed.Options{MaxPerClient: 1 << 20, MaxPerNetwork: 1 << 20, MaxTotal: 1 << 20})
	store = ttlstore.New(ttlstore.Options{MaxKeys: 1000, OnChange: func(c ttlstore.Change) error { changes.Publish(c); return nil },
		OnCommit: func(cs []ttlstore.Change, _ any) error { changes.PublishBatch(cs); return nil }})
	svc := policy.New(store, nil, policy.Config{MaxKeySize: 100, MaxValueSize: 65536, MaxTTL: time.Hour, CostRead: 1, CostWrite: 3, Feed: changes}, nil)
	st := kvconnect.State{DatabaseID: "6f1c2a5e-0b7d-4c3e-9a1f-1234567890ab", Key: bytes.Repeat([]byte{7}, 32)}
	h := kvconnect.New(svc, kvconnect.Config{State: st})
	tokens := kvconnect.NewTokens(st.Key)
	g, err := auth.ParseGrants("rw:a/ r:b -:a/x w:")
	if err != nil {
		f.Fatal(err)
	}
	// The anonymous caller (no access control), and an identity whose
	// grants cut the key space up, so that the grant checks and the
	// skipping of unreadable runs see arbitrary requests too.
	token := []string{tokens.Issue(kvconnect.Subject{}, time.Now().Add(time.Hour)),
		tokens.Issue(kvconnect.Subject{Kind: kvconnect.SubjectIdentity, Identity: &policy.Identity{Name: "fuzz", Grants: g}}, time.Now().Add(time.Hour))}
	done, cancel := context.WithCancel(context.Background())
	cancel() // a watch sends its first frame and ends

	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		path := "/kv/v3/" + fuzzOps[int(op)%len(fuzzOps)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)).WithContext(done)
		req.Header.Set("Authorization", "Bearer "+token[int(op>>4)%len(token)])
		before := store.Version()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s answered %d: %s", path, w.Code, w.Body)
		}
		if w.Code != http.StatusOK && store.Version() != before {
			t.Fatalf("%s answered %d but wrote: %s", path, w.Code, w.Body)
		}
		if w.Code == http.StatusOK && fuzzOps[int(op)%len(fuzzOps)] == "atomic_write" {
			return
		}
		if store.Version() != before {
			t.Fatalf("%s wrote", path)
		}
	})
}

// FuzzDataPathToken presents arbitrary data-path tokens: each is refused
// with a 401 or is a token this server issued, never a panic.
func FuzzDataPathToken(f *testing.F) {
	st := kvconnect.State{DatabaseID: "6f1c2a5e-0b7d-4c3e-9a1f-1234567890ab", Key: bytes.Repeat([]byte{7}, 32)}
	tokens := kvconnect.NewTokens(st.Key)
	g, _ := auth.ParseGrants("rw:a/")
	f.Add(tokens.Issue(kvconnect.Subject{}, time.Now().Add(time.Hour)))
	f.Add(tokens.Issue(kvconnect.Subject{Kind: kvconnect.SubjectTokenFile, Identity: &policy.Identity{Name: "x", Grants: g}}, time.Now().Add(time.Hour)))
	f.Add("2.")
	f.Add("2.AAAA")
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, token string) {
		sub, err := tokens.Verify(token, time.Now())
		if err != nil {
			return
		}
		if (sub.Kind == kvconnect.SubjectIdentity || sub.Kind == kvconnect.SubjectCertificate) && sub.Identity == nil {
			t.Fatalf("%q: a subject of kind %d without an identity", token, sub.Kind)
		}
	})
}
