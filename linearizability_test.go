package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The linearizability check records what many clients asked the real
// server and what it answered, across a SIGKILL and a restart, and lets
// porcupine search for one order of all the calls, each taking effect at
// one instant between its call and its answer, that a sequential store
// would have answered the same way. Values are unique per write, so every
// answer names the one write it saw.

// linOp is an endpoint the check calls.
type linOp uint8

const (
	linGet linOp = iota
	linSet
	linCAS
	linLoadOrStore
	linDelete
)

// linInput is one call as a client made it.
type linInput struct {
	op       linOp
	key      string
	value    string // written by set, cas and los
	expected string // cas: X-Expected-Value
}

// keys returns the keys the call reads or writes. The partitioning keeps
// calls that share a key in one sub-history, so a call over several keys
// (a /txn) joins their sub-histories into one.
func (in linInput) keys() []string { return []string{in.key} }

// linOutput is the server's answer to one call.
type linOutput struct {
	// unknown is set when no answer came: the server died under the call,
	// which may or may not have taken effect. Its return is recorded as
	// after everything, so the checker may also place it last, where it
	// changes nothing anyone saw.
	unknown bool
	status  int
	value   string // a get's 200 and a conflict's 409 carry the current value
}

// linState is the store as the model sees it: the value of every key of a
// partition, a missing key being absent. Steps never modify a state; they
// return a new one.
type linState map[string]string

// apply runs in on the sequential store: the answer the server must give
// and the state after it. This is the model's whole definition of the
// endpoints (README's API table); a /txn evaluates its checks and writes
// its ops here the same way, all against the one state.
func apply(s linState, in linInput) (linOutput, linState) {
	cur, present := s[in.key]
	switch in.op {
	case linGet:
		if !present {
			return linOutput{status: 404}, s
		}
		return linOutput{status: 200, value: cur}, s
	case linSet:
		return linOutput{status: 200}, s.with(in.key, in.value)
	case linCAS:
		switch {
		case !present:
			return linOutput{status: 404}, s
		case cur != in.expected:
			return linOutput{status: 409, value: cur}, s
		}
		return linOutput{status: 200}, s.with(in.key, in.value)
	case linLoadOrStore:
		if present {
			return linOutput{status: 409, value: cur}, s
		}
		return linOutput{status: 200}, s.with(in.key, in.value)
	case linDelete:
		if !present {
			return linOutput{status: 404}, s
		}
		next := maps.Clone(s)
		delete(next, in.key)
		return linOutput{status: 200}, next
	}
	panic(fmt.Sprintf("unknown op %d", in.op))
}

func (s linState) with(key, value string) linState {
	next := maps.Clone(s)
	if next == nil {
		next = linState{}
	}
	next[key] = value
	return next
}

// linOpNames are the endpoints' names, which are also their paths.
var linOpNames = [...]string{linGet: "get", linSet: "set", linCAS: "cas", linLoadOrStore: "los", linDelete: "del"}

// linModel is the sequential specification porcupine checks histories
// against.
var linModel = porcupine.Model{
	Partition: partitionByKeys,
	Init:      func() any { return linState(nil) },
	Step: func(state, input, output any) (bool, any) {
		want, next := apply(state.(linState), input.(linInput))
		got := output.(linOutput)
		if got.unknown {
			return true, next
		}
		return got == want, next
	},
	Equal: func(a, b any) bool { return maps.Equal(a.(linState), b.(linState)) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		call := linOpNames[in.op] + "(" + in.key
		switch in.op {
		case linSet, linLoadOrStore:
			call += ", " + in.value
		case linCAS:
			call += ", " + in.expected + " → " + in.value
		}
		call += ")"
		if out.unknown {
			return call + " cut off"
		}
		if out.value != "" {
			return fmt.Sprintf("%s → %d %s", call, out.status, out.value)
		}
		return fmt.Sprintf("%s → %d", call, out.status)
	},
	DescribeState: func(state any) string {
		s := state.(linState)
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(s)) {
			fmt.Fprintf(&b, "%s=%s ", k, s[k])
		}
		if b.Len() == 0 {
			return "(empty)"
		}
		return strings.TrimSpace(b.String())
	},
}

// partitionByKeys splits a history into groups of calls whose keys
// connect (union-find over the keys each call touches): a history is
// linearizable exactly when each group is, and checking small groups is
// fast. With single-key calls every key is a group of its own.
func partitionByKeys(history []porcupine.Operation) [][]porcupine.Operation {
	parent := map[string]string{}
	var find func(k string) string
	find = func(k string) string {
		p, ok := parent[k]
		if !ok || p == k {
			parent[k] = k
			return k
		}
		root := find(p)
		parent[k] = root
		return root
	}
	for _, op := range history {
		keys := op.Input.(linInput).keys()
		for _, k := range keys[1:] {
			parent[find(k)] = find(keys[0])
		}
	}
	groups := map[string][]porcupine.Operation{}
	for _, op := range history {
		root := find(op.Input.(linInput).keys()[0])
		groups[root] = append(groups[root], op)
	}
	var parts [][]porcupine.Operation
	for _, root := range slices.Sorted(maps.Keys(groups)) {
		parts = append(parts, groups[root])
	}
	return parts
}

// checkLinearizable fails t unless porcupine finds history linearizable
// within the time it is given. A violation's visualization is kept in a
// file outside the test's temporary directory, so it outlives the run.
func checkLinearizable(t *testing.T, history []porcupine.Operation) {
	t.Helper()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(linModel, history, 10*time.Second)
	t.Logf("checked %d operations in %d partitions in %s: %s",
		len(history), len(partitionByKeys(history)), time.Since(start).Round(time.Millisecond), res)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Fatalf("the checker timed out on %d operations: no verdict", len(history))
	default:
		t.Fatalf("history of %d operations is not linearizable (%s); visualization: %s",
			len(history), res, writeVisualization(t, info))
	}
}

func writeVisualization(t *testing.T, info porcupine.LinearizationInfo) string {
	t.Helper()
	f, err := os.CreateTemp("", "rendezvous-linearizability-*.html")
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, porcupine.Visualize(linModel, info, f))
	return f.Name()
}

// linHistory collects the calls of all clients, timed on one monotonic
// clock that runs on across the restart.
type linHistory struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	seen  map[string]string // the last value anyone saw per key, for cas to expect
	done  atomic.Int64      // answered calls
}

func (h *linHistory) now() int64 { return int64(time.Since(h.start)) }

// linClient is one client: its calls are sequential, over a connection
// of its own.
type linClient struct {
	id   int
	seq  int
	http *http.Client
	rng  *rand.Rand
	h    *linHistory
	t    *testing.T
}

const linKeys = 5

func linKey(i int) string { return fmt.Sprintf("lin/k%d", i) }

// next picks a random call on a random key.
func (c *linClient) next() linInput {
	in := linInput{key: linKey(c.rng.IntN(linKeys))}
	c.seq++
	value := fmt.Sprintf("c%d-%d", c.id, c.seq)
	switch r := c.rng.IntN(100); {
	case r < 35:
		in.op = linGet
	case r < 55:
		in.op, in.value = linSet, value
	case r < 75:
		in.op, in.value = linCAS, value
		c.h.mu.Lock()
		in.expected = c.h.seen[in.key]
		c.h.mu.Unlock()
		if in.expected == "" || c.rng.IntN(4) == 0 {
			in.expected = "never-written"
		}
	case r < 90:
		in.op, in.value = linLoadOrStore, value
	default:
		in.op = linDelete
	}
	return in
}

// call sends in to the server at base and records it. It returns false
// when no answer came.
func (c *linClient) call(base string, in linInput) bool {
	method := "POST"
	if in.op == linGet {
		method = "GET"
	}
	req, err := http.NewRequest(method, base+"/"+linOpNames[in.op]+"/"+in.key, strings.NewReader(in.value))
	if err != nil {
		panic(err)
	}
	if in.op == linCAS {
		req.Header.Set("X-Expected-Value", in.expected)
	}
	op := porcupine.Operation{ClientId: c.id, Input: in, Call: c.h.now()}
	out, ok := c.send(req)
	op.Output, op.Return = out, c.h.now()
	if !ok {
		op.Return = math.MaxInt64
	}
	c.h.mu.Lock()
	c.h.ops = append(c.h.ops, op)
	switch {
	case !ok:
	case out.status == 409, out.status == 200 && in.op == linGet:
		c.h.seen[in.key] = out.value
	case out.status == 200 && in.op != linDelete:
		c.h.seen[in.key] = in.value
	}
	c.h.mu.Unlock()
	if ok {
		c.h.done.Add(1)
		if out.status != 200 && out.status != 404 && out.status != 409 {
			// Recorded all the same: the model refuses it, and the
			// visualization shows it in context.
			c.t.Errorf("%s %s: unexpected status %d %q", method, req.URL.Path, out.status, out.value)
		}
	}
	return ok
}

func (c *linClient) send(req *http.Request) (linOutput, bool) {
	resp, err := c.http.Do(req)
	if err != nil {
		return linOutput{unknown: true}, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return linOutput{unknown: true}, false
	}
	out := linOutput{status: resp.StatusCode}
	switch {
	case resp.StatusCode == 409, resp.StatusCode == 200 && req.Method == "GET":
		out.value = string(body)
	case resp.StatusCode != 200 && resp.StatusCode != 404:
		out.value = strings.TrimSpace(string(body)) // only for the message
	}
	return out, true
}

// runLinClients runs every client for up to n calls against base; a
// client stops early at its first call without an answer.
func runLinClients(clients []*linClient, base string, n int) {
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for range n {
				if !c.call(base, c.next()) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// Eight clients call get, set, cas, los and del on five shared keys; the
// server is SIGKILLed while they do, which cuts every client's call in
// flight off, and restarted on the same data; with --fsync always every
// answered write must have survived, so the whole history, both lives of
// the server together, must be linearizable.
func TestLinearizabilityAcrossSIGKILL(t *testing.T) {
	data := filepath.Join(t.TempDir(), "rendezvous.db")
	args := []string{"--data", data, "--fsync", "always", "--rate", "off", "--save-interval", "400ms"}
	h := &linHistory{start: time.Now(), seen: map[string]string{}}
	clients := make([]*linClient, 8)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	for i := range clients {
		clients[i] = &linClient{id: i, h: h, t: t, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	}
	connect := func() {
		for _, c := range clients {
			if c.http != nil {
				c.http.CloseIdleConnections()
			}
			c.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
		}
	}

	const perClient, killAfter = 60, 200
	s := startServer(t, args...)
	connect()
	phase1 := make(chan struct{})
	go func() {
		runLinClients(clients, s.base, perClient)
		close(phase1)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for h.done.Load() < killAfter && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, s.cmd.Process.Kill())
	<-s.done
	<-phase1
	before := h.done.Load()
	require.GreaterOrEqual(t, before, int64(killAfter), "too few answers before the kill")

	s2 := startServer(t, args...)
	restarted := h.now()
	connect()
	// First read what the restart recovered of every key, before the
	// clients' writes can hide a lost one.
	for k := range linKeys {
		require.True(t, clients[0].call(s2.base, linInput{op: linGet, key: linKey(k)}))
	}
	runLinClients(clients, s2.base, 30)
	require.Equal(t, 0, s2.stop(t), s2.log.String())

	cut := 0
	answers := map[string]int{} // "cas 409": how often, to show the mix is not one-sided
	for _, op := range h.ops {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		if out.unknown {
			require.Less(t, op.Call, restarted, "a call to the restarted server got no answer")
			cut++
			continue
		}
		answers[fmt.Sprintf("%s %d", linOpNames[in.op], out.status)]++
	}
	t.Logf("%d calls answered before the kill, %d cut off, %d after the restart; answers %v",
		before, cut, h.done.Load()-before, answers)
	require.Positive(t, cut, "the kill cut no call off")
	checkLinearizable(t, h.ops)
}

// The checker and the model find what the server test must never show.
// Times are in arbitrary units; "cut" marks a call cut off by a crash.
func TestLinearizabilityCheckerCatchesViolations(t *testing.T) {
	type call struct {
		client   int
		in       linInput
		out      linOutput
		from, to int64 // to is ignored for a call cut off
	}
	get := func(k string) linInput { return linInput{op: linGet, key: k} }
	set := func(k, v string) linInput { return linInput{op: linSet, key: k, value: v} }
	cas := func(k, old, v string) linInput { return linInput{op: linCAS, key: k, expected: old, value: v} }
	los := func(k, v string) linInput { return linInput{op: linLoadOrStore, key: k, value: v} }
	del := func(k string) linInput { return linInput{op: linDelete, key: k} }
	ok := linOutput{status: 200}
	missing := linOutput{status: 404}
	found := func(v string) linOutput { return linOutput{status: 200, value: v} }
	conflict := func(v string) linOutput { return linOutput{status: 409, value: v} }
	cut := linOutput{unknown: true}
	history := func(calls ...call) []porcupine.Operation {
		var ops []porcupine.Operation
		for _, c := range calls {
			ret := c.to
			if c.out.unknown {
				ret = math.MaxInt64
			}
			ops = append(ops, porcupine.Operation{ClientId: c.client, Input: c.in, Call: c.from, Output: c.out, Return: ret})
		}
		return ops
	}
	for _, tc := range []struct {
		name  string
		calls []call
		want  porcupine.CheckResult
	}{
		{"a get returns a value never written", []call{
			{0, set("a", "v1"), ok, 0, 1},
			{1, get("a"), found("v9"), 2, 3},
		}, porcupine.Illegal},
		{"stale read after an acknowledged write", []call{
			{0, set("a", "v1"), ok, 0, 1},
			{0, set("a", "v2"), ok, 2, 3},
			{1, get("a"), found("v1"), 4, 5},
		}, porcupine.Illegal},
		{"an acknowledged write lost in a crash", []call{
			{0, set("a", "v1"), ok, 0, 1},
			{1, set("b", "w1"), cut, 2, 0},
			{0, get("a"), missing, 10, 11},
		}, porcupine.Illegal},
		{"a cut-off write seen, then gone", []call{
			{0, set("a", "v1"), cut, 0, 0},
			{1, get("a"), found("v1"), 1, 2},
			{1, get("a"), missing, 10, 11},
		}, porcupine.Illegal},
		{"two los both win", []call{
			{0, los("a", "v1"), ok, 0, 3},
			{1, los("a", "v2"), ok, 1, 4},
		}, porcupine.Illegal},
		{"los loses to a value that was never there", []call{
			{0, los("a", "v1"), ok, 0, 1},
			{1, los("a", "v2"), conflict("v2"), 2, 3},
		}, porcupine.Illegal},
		{"cas swaps a value that differed", []call{
			{0, set("a", "v1"), ok, 0, 1},
			{1, cas("a", "v0", "v2"), ok, 2, 3},
		}, porcupine.Illegal},
		{"cas on a missing key conflicts instead of 404", []call{
			{0, cas("a", "v0", "v2"), conflict(""), 0, 1},
		}, porcupine.Illegal},
		{"a delete undone", []call{
			{0, set("a", "v1"), ok, 0, 1},
			{0, del("a"), ok, 2, 3},
			{1, get("a"), found("v1"), 4, 5},
		}, porcupine.Illegal},
		// The same calls in orders a correct server may produce.
		{"concurrent writes, either order", []call{
			{0, set("a", "v1"), ok, 0, 5},
			{1, set("a", "v2"), ok, 1, 6},
			{2, get("a"), found("v1"), 7, 8},
			{2, cas("a", "v1", "v3"), ok, 9, 10},
			{3, los("a", "v4"), conflict("v3"), 11, 12},
			{3, del("a"), ok, 13, 14},
			{2, cas("a", "v3", "v5"), missing, 15, 16},
		}, porcupine.Ok},
		{"a cut-off write may be lost or kept", []call{
			{0, set("a", "v1"), ok, 0, 1},
			{1, set("a", "v2"), cut, 2, 0},
			{0, get("a"), found("v1"), 10, 11},
			{2, set("b", "w1"), cut, 2, 0},
			{0, get("b"), found("w1"), 12, 13},
			{0, get("b"), found("w1"), 14, 15},
		}, porcupine.Ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, info := porcupine.CheckOperationsVerbose(linModel, history(tc.calls...), 5*time.Second)
			assert.Equal(t, tc.want, res)
			if res == porcupine.Illegal {
				// What the server test would leave for a reader.
				name := writeVisualization(t, info)
				defer os.Remove(name)
				page, err := os.ReadFile(name)
				require.NoError(t, err)
				assert.Contains(t, string(page), linModel.DescribeOperation(tc.calls[0].in, tc.calls[0].out))
			}
		})
	}
}
