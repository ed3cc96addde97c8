package ttlstore_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// TestCommitConcurrentTransfers moves money between accounts with
// transactions (each checks the versions of two accounts it read and
// writes both) from several goroutines, while others write unrelated keys
// and readers add up every balance through one Range page and through
// Snapshot. The total must never change, so no reader sees part of a
// transfer; the hooks must see versions in increasing order; and the whole
// run must end within its time bound (locking shards in different orders
// would deadlock it).
func TestCommitConcurrentTransfers(t *testing.T) {
	const (
		accounts  = 24
		start     = 100
		writers   = 4
		transfers = 300
	)
	var (
		hookMu    sync.Mutex
		lastV     uint64
		hookError atomic.Value
	)
	ordered := func(v uint64) {
		// Called under the store's ordering lock; hookMu only satisfies the
		// race detector about lastV.
		hookMu.Lock()
		defer hookMu.Unlock()
		if v <= lastV {
			hookError.Store(fmt.Sprintf("version %d reported after %d", v, lastV))
		}
		lastV = v
	}
	s := ttlstore.New(ttlstore.Options{
		Shards:   8,
		OnChange: func(c ttlstore.Change) error { ordered(c.Item.Version); return nil },
		OnCommit: func(cs []ttlstore.Change, _ any) error {
			for _, c := range cs {
				if c.Item.Version != cs[0].Item.Version {
					hookError.Store("one commit, two versions")
				}
			}
			ordered(cs[0].Item.Version)
			return nil
		},
	})
	key := func(i int) string { return fmt.Sprintf("acct/%02d", i) }
	for i := range accounts {
		mustSet(t, s, key(i), val(strconv.Itoa(start)))
	}

	sum := func(items []ttlstore.Item) (total, n int) {
		for _, it := range items {
			b, err := strconv.Atoi(string(it.Value))
			if err != nil {
				panic(err)
			}
			total += b
			n++
		}
		return total, n
	}

	var writing sync.WaitGroup
	var committed, conflicts atomic.Int64
	// Writers go on past their transfers until the readers have read
	// enough, since on a loaded machine the writers could otherwise finish
	// before a reader was first scheduled.
	var pages, snapshots atomic.Int64
	readEnough := func() bool { return pages.Load() > 10 && snapshots.Load() > 2 }
	done := make(chan struct{})
	for w := range writers {
		writing.Add(1)
		go func() {
			defer writing.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for i := 0; i < transfers || !readEnough(); i++ {
				from, to := rng.IntN(accounts), rng.IntN(accounts)
				if from == to {
					continue
				}
				a, okA := s.Get(key(from))
				b, okB := s.Get(key(to))
				if !okA || !okB {
					panic("an account is missing")
				}
				balA, _ := strconv.Atoi(string(a.Value))
				balB, _ := strconv.Atoi(string(b.Value))
				amount := 1 + rng.IntN(10)
				if balA < amount {
					continue
				}
				_, err := s.Commit(ttlstore.Txn{
					Checks: []ttlstore.Check{atVersion(a.Key, a.Version), atVersion(b.Key, b.Version)},
					Ops: []ttlstore.TxnOp{
						setOp(a.Key, strconv.Itoa(balA-amount)),
						setOp(b.Key, strconv.Itoa(balB+amount)),
					},
				})
				switch {
				case err == nil:
					committed.Add(1)
				case len(txnErrOf(err).Failed) > 0:
					conflicts.Add(1)
				default:
					panic(err)
				}
			}
		}()
	}
	// Single-key writes in the same shards, so commits and plain writes
	// contend for the same locks.
	writing.Add(1)
	go func() {
		defer writing.Done()
		for i := range 2000 {
			if _, err := s.Set(fmt.Sprintf("other/%03d", i%100), val("x")); err != nil {
				panic(err)
			}
		}
	}()

	var reading sync.WaitGroup
	var bad atomic.Value
	reading.Add(2)
	go func() {
		defer reading.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			total, n := sum(s.Range("acct/", ttlstore.PrefixEnd("acct/"), 100))
			if n != accounts || total != accounts*start {
				bad.Store(fmt.Sprintf("a Range page shows %d accounts holding %d", n, total))
			}
			pages.Add(1)
		}
	}()
	go func() {
		defer reading.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			var items []ttlstore.Item
			err := s.Snapshot(func(it ttlstore.Item) error {
				if len(it.Key) > 5 && it.Key[:5] == "acct/" {
					items = append(items, it)
				}
				// Let commits run between the shards the snapshot copies.
				runtime.Gosched()
				return nil
			})
			if err != nil {
				panic(err)
			}
			total, n := sum(items)
			if n != accounts || total != accounts*start {
				bad.Store(fmt.Sprintf("a snapshot shows %d accounts holding %d", n, total))
			}
			snapshots.Add(1)
		}
	}()

	finished := make(chan struct{})
	go func() {
		writing.Wait()
		close(done)
		reading.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("transfers did not finish in 20 s: deadlock?")
	}

	require.Nil(t, bad.Load())
	require.Nil(t, hookError.Load())
	total, n := sum(s.Range("acct/", ttlstore.PrefixEnd("acct/"), 100))
	require.Equal(t, accounts, n)
	require.Equal(t, accounts*start, total)
	t.Logf("%d transfers committed, %d refused by a check; %d pages and %d snapshots read meanwhile",
		committed.Load(), conflicts.Load(), pages.Load(), snapshots.Load())
	require.Greater(t, committed.Load(), int64(writers*transfers/2), "most transfers commit")
	require.Greater(t, pages.Load(), int64(10), "pages were read during the transfers")
	require.Greater(t, snapshots.Load(), int64(2), "snapshots were taken during the transfers")
}

// txnErrOf returns err as a *TxnError, or an empty one.
func txnErrOf(err error) *ttlstore.TxnError {
	if te, ok := err.(*ttlstore.TxnError); ok {
		return te
	}
	return &ttlstore.TxnError{}
}
