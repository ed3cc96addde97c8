package kvconnect_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/kvconnect"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// BenchmarkSnapshotReadHandler is Deno's kv.get of one shared key through
// the handler, without a socket, for profiles of the read path.
func BenchmarkSnapshotReadHandler(b *testing.B) {
	store := ttlstore.New(ttlstore.Options{})
	store.Set("bench/k", kv.Write{Value: bytes.Repeat([]byte("v"), 200)})
	svc := policy.New(store, nil, policy.Config{MaxKeySize: 100, MaxValueSize: 1000, MaxTTL: time.Hour, CostRead: 1, CostWrite: 3}, nil)
	st := kvconnect.State{DatabaseID: "6f1c2a5e-0b7d-4c3e-9a1f-1234567890ab", Key: bytes.Repeat([]byte{7}, 32)}
	h := kvconnect.New(svc, kvconnect.Config{State: st})
	token := kvconnect.NewTokens(st.Key).Issue(kvconnect.Subject{}, time.Now().Add(time.Hour))
	body := pb(1, pb(1, key("bench/k"), 2, append(key("bench/k"), 0), 3, 1))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/kv/v3/snapshot_read", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Denokv-Version", "3")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body)
		}
	}
}
