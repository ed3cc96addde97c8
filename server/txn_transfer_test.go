package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Goroutines move money between accounts with version-checked
// transactions while a reader lists all of them and sums: every listing
// sees each transfer whole or not at all, so the sum never changes.
func TestTxnTransfersKeepTheTotal(t *testing.T) {
	const (
		accounts  = 6
		initial   = 100
		movers    = 4
		transfers = 25 // committed by each mover
	)
	s := start(t, testConfig())
	for i := range accounts {
		resp, _ := do(t, "POST", s.base+"/set/bank/"+strconv.Itoa(i), strconv.Itoa(initial))
		require.Equal(t, 200, resp.StatusCode)
	}
	type account struct {
		Key     string `json:"key"`
		Value   string `json:"value"`
		Version uint64 `json:"version"`
	}
	// list returns every account as one listing page sees them.
	list := func() ([]account, error) {
		resp, err := client.Get(s.base + "/list/bank/?format=json")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			return nil, fmt.Errorf("list: %d %s %v", resp.StatusCode, b, err)
		}
		var page struct{ Entries []account }
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, err
		}
		return page.Entries, nil
	}
	post := func(body string) (int, error) {
		resp, err := client.Post(s.base+"/txn", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}

	deadline := time.Now().Add(20 * time.Second)
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	errs := make(chan error, movers+1)
	for m := range movers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(m), 1))
			for done := 0; done < transfers; {
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("mover %d: %d of %d transfers before the deadline", m, done, transfers)
					return
				}
				accs, err := list()
				if err != nil {
					errs <- err
					return
				}
				from, to := &accs[rng.IntN(accounts)], &accs[rng.IntN(accounts)]
				if from == to {
					continue
				}
				fb, _ := strconv.Atoi(from.Value)
				tb, _ := strconv.Atoi(to.Value)
				amount := rng.IntN(fb + 1)
				status, err := post(fmt.Sprintf(`{"checks": [{"key": %q, "version": %d}, {"key": %q, "version": %d}],
					"ops": [{"op": "set", "key": %q, "value": "%d"}, {"op": "set", "key": %q, "value": "%d"}]}`,
					from.Key, from.Version, to.Key, to.Version, from.Key, fb-amount, to.Key, tb+amount))
				switch {
				case err != nil:
					errs <- err
					return
				case status == http.StatusConflict:
					conflicts.Add(1) // another mover was first: read again
				case status == http.StatusOK:
					done++
				default:
					errs <- fmt.Errorf("transfer answered %d", status)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var reads int
	var readerDone sync.WaitGroup
	readerDone.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			accs, err := list()
			if err != nil {
				errs <- err
				return
			}
			sum := 0
			for _, a := range accs {
				n, _ := strconv.Atoi(a.Value)
				sum += n
			}
			if len(accs) != accounts || sum != accounts*initial {
				errs <- fmt.Errorf("a listing saw %d accounts summing to %d: %+v", len(accs), sum, accs)
				return
			}
			reads++
		}
	})
	wg.Wait()
	close(stop)
	readerDone.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	accs, err := list()
	require.NoError(t, err)
	sum := 0
	for _, a := range accs {
		n, _ := strconv.Atoi(a.Value)
		sum += n
	}
	assert.Equal(t, accounts*initial, sum)
	t.Logf("%d transfers, %d conflicts retried, %d listings summed", movers*transfers, conflicts.Load(), reads)
	assert.Positive(t, reads)
}
