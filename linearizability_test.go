package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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
	linTxn
)

// linInput is one call as a client made it.
type linInput struct {
	op       linOp
	key      string // every op but a txn
	value    string // written by set, cas and los
	expected string // cas: X-Expected-Value
	checks   []linCheck
	writes   []linWrite // a txn's ops, in order
}

// linCheck is a check of a txn. A version check is sent as the version,
// but the model has no versions: values are unique per write, so a key is
// at the version that was read along with a value exactly when it holds
// that value.
type linCheck struct {
	key     string
	absent  bool
	value   string // a value check's value, or the value read with version
	version uint64 // a version check's version; 0 for a value check
}

// linWrite is an op of a txn: a set of value, or a delete.
type linWrite struct {
	key    string
	value  string
	delete bool
	base64 bool // sent base64-encoded
}

// keys returns the keys the call reads or writes. The partitioning keeps
// calls that share a key in one sub-history, so a call over several keys
// (a /txn) joins their sub-histories into one.
func (in linInput) keys() []string {
	if in.op != linTxn {
		return []string{in.key}
	}
	var keys []string
	for _, w := range in.writes {
		keys = append(keys, w.key)
	}
	for _, c := range in.checks {
		keys = append(keys, c.key)
	}
	return keys
}

// linOutput is the server's answer to one call.
type linOutput struct {
	// unknown is set when no answer came: the server died under the call,
	// which may or may not have taken effect. Its return is recorded as
	// after everything, so the checker may also place it last, where it
	// changes nothing anyone saw.
	unknown bool
	status  int
	value   string // a get's 200 and a conflict's 409 carry the current value
	failed  string // a txn's 409: the indexes of its failed checks, "0,2"
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
	if in.op == linTxn {
		return applyTxn(s, in)
	}
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

// applyTxn evaluates every check against the one state; any failing
// leaves it as it was. Otherwise every op applies, in order, to one copy.
func applyTxn(s linState, in linInput) (linOutput, linState) {
	var failed []string
	for i, c := range in.checks {
		cur, present := s[c.key]
		if c.absent && present || !c.absent && (!present || cur != c.value) {
			failed = append(failed, strconv.Itoa(i))
		}
	}
	if failed != nil {
		return linOutput{status: 409, failed: strings.Join(failed, ",")}, s
	}
	next := maps.Clone(s)
	if next == nil {
		next = linState{}
	}
	for _, w := range in.writes {
		if w.delete {
			delete(next, w.key)
		} else {
			next[w.key] = w.value
		}
	}
	return linOutput{status: 200}, next
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
var linOpNames = [...]string{linGet: "get", linSet: "set", linCAS: "cas", linLoadOrStore: "los", linDelete: "del", linTxn: "txn"}

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
		case linTxn:
			call += describeTxn(in)
		}
		call += ")"
		if out.unknown {
			return call + " cut off"
		}
		if out.failed != "" {
			return fmt.Sprintf("%s → %d failed %s", call, out.status, out.failed)
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

func describeTxn(in linInput) string {
	var parts []string
	for _, c := range in.checks {
		switch {
		case c.absent:
			parts = append(parts, c.key+" absent")
		case c.version != 0:
			parts = append(parts, fmt.Sprintf("%s@%d=%s", c.key, c.version, c.value))
		default:
			parts = append(parts, c.key+"="+c.value)
		}
	}
	checks := strings.Join(parts, ", ")
	parts = parts[:0]
	for _, w := range in.writes {
		if w.delete {
			parts = append(parts, "del "+w.key)
		} else {
			parts = append(parts, "set "+w.key+" "+w.value)
		}
	}
	if checks != "" {
		checks = "if " + checks + ": "
	}
	return checks + strings.Join(parts, ", ")
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
	// versions holds the last value anyone saw per key with the version
	// holding it, for a txn's version checks.
	versions map[string]linCheck
	done     atomic.Int64 // answered calls
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

// A txn touches the keys of one group of linGroup keys only, so that the
// checker's sub-histories stay small.
const linKeys, linGroup = 6, 3

func linKey(i int) string { return fmt.Sprintf("lin/k%d", i) }

// next picks a random call on a random key.
func (c *linClient) next() linInput {
	in := linInput{key: linKey(c.rng.IntN(linKeys))}
	c.seq++
	value := fmt.Sprintf("c%d-%d", c.id, c.seq)
	switch r := c.rng.IntN(100); {
	case r < 25:
		return c.nextTxn(value)
	case r < 50:
		in.op = linGet
	case r < 63:
		in.op, in.value = linSet, value
	case r < 78:
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

// nextTxn picks up to two checks and one to three ops on the keys of a
// random group; a key may appear more than once.
func (c *linClient) nextTxn(value string) linInput {
	in := linInput{op: linTxn}
	group := c.rng.IntN(linKeys / linGroup)
	key := func() string { return linKey(group*linGroup + c.rng.IntN(linGroup)) }
	for range c.rng.IntN(3) {
		k := key()
		c.h.mu.Lock()
		seen, read := c.h.seen[k], c.h.versions[k]
		c.h.mu.Unlock()
		switch r := c.rng.IntN(3); {
		case r == 0 || r == 2 && read.version == 0:
			in.checks = append(in.checks, linCheck{key: k, absent: true})
		case r == 1:
			if seen == "" || c.rng.IntN(4) == 0 {
				seen = "never-written"
			}
			in.checks = append(in.checks, linCheck{key: k, value: seen})
		default:
			in.checks = append(in.checks, read)
		}
	}
	for i := range 1 + c.rng.IntN(3) {
		w := linWrite{key: key()}
		if c.rng.IntN(5) == 0 {
			w.delete = true
		} else {
			w.value, w.base64 = fmt.Sprintf("%s-%d", value, i), c.rng.IntN(4) == 0
		}
		in.writes = append(in.writes, w)
	}
	return in
}

// txnRequest is the POST /txn that in stands for.
func txnRequest(base string, in linInput) *http.Request {
	var body txnBody
	for _, c := range in.checks {
		switch {
		case c.absent:
			body.Checks = append(body.Checks, txnCheck{Key: c.key, Absent: true})
		case c.version != 0:
			body.Checks = append(body.Checks, txnCheck{Key: c.key, Version: c.version})
		default:
			body.Checks = append(body.Checks, txnCheck{Key: c.key, Value: &c.value})
		}
	}
	for _, w := range in.writes {
		if w.delete {
			body.Ops = append(body.Ops, txnOp{Op: "delete", Key: w.key})
		} else {
			body.Ops = append(body.Ops, setOp(w.key, w.value, "", w.base64))
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	req, err := http.NewRequest("POST", base+"/txn", bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// call sends in to the server at base and records it. It returns false
// when no answer came.
func (c *linClient) call(base string, in linInput) bool {
	var req *http.Request
	if in.op == linTxn {
		req = txnRequest(base, in)
	} else {
		method := "POST"
		if in.op == linGet {
			method = "GET"
		}
		var err error
		req, err = http.NewRequest(method, base+"/"+linOpNames[in.op]+"/"+in.key, strings.NewReader(in.value))
		if err != nil {
			panic(err)
		}
		if in.op == linCAS {
			req.Header.Set("X-Expected-Value", in.expected)
		}
	}
	op := porcupine.Operation{ClientId: c.id, Input: in, Call: c.h.now()}
	out, version, ok := c.send(req, in)
	op.Output, op.Return = out, c.h.now()
	if !ok {
		op.Return = math.MaxInt64
	}
	c.h.mu.Lock()
	c.h.ops = append(c.h.ops, op)
	switch {
	case !ok:
	case in.op == linTxn && out.status == 200:
		for _, w := range in.writes {
			if w.delete {
				delete(c.h.versions, w.key)
			} else {
				c.h.seen[w.key] = w.value
				c.h.versions[w.key] = linCheck{key: w.key, value: w.value, version: version}
			}
		}
	case in.op == linTxn:
	case out.status == 409, out.status == 200 && in.op == linGet:
		c.h.seen[in.key] = out.value
		if version != 0 {
			c.h.versions[in.key] = linCheck{key: in.key, value: out.value, version: version}
		}
	case out.status == 200 && in.op == linDelete:
		delete(c.h.versions, in.key)
	case out.status == 200:
		c.h.seen[in.key] = in.value
		if version != 0 {
			c.h.versions[in.key] = linCheck{key: in.key, value: in.value, version: version}
		}
	}
	c.h.mu.Unlock()
	if ok {
		c.h.done.Add(1)
		if out.status != 200 && out.status != 404 && out.status != 409 {
			// Recorded all the same: the model refuses it, and the
			// visualization shows it in context.
			c.t.Errorf("%s %s: unexpected status %d %q", req.Method, req.URL.Path, out.status, out.value)
		}
	}
	return ok
}

// send returns the answer to req, made for in, and the version it names:
// the ETag of a get or a write, the version of a committed txn; 0 when
// none.
func (c *linClient) send(req *http.Request, in linInput) (linOutput, uint64, bool) {
	op := in.op
	resp, err := c.http.Do(req)
	if err != nil {
		return linOutput{unknown: true}, 0, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return linOutput{unknown: true}, 0, false
	}
	out := linOutput{status: resp.StatusCode}
	version, _ := strconv.ParseUint(strings.Trim(resp.Header.Get("ETag"), `"`), 10, 64)
	switch {
	case op == linTxn && (resp.StatusCode == 200 || resp.StatusCode == 409):
		var ans txnAnswer
		err := json.Unmarshal(body, &ans)
		switch {
		// A commit that changes nothing (only deletes of absent keys)
		// answers the store's version, which is 0 on a fresh store; one
		// that sets a key always has a version of its own.
		case err != nil, ans.OK != (resp.StatusCode == 200), ans.OK && ans.Version == 0 && in.setsAKey():
			out.value = "bad answer: " + strings.TrimSpace(string(body)) // the model refuses it
			c.t.Errorf("POST /txn: %d %s", resp.StatusCode, body)
		case !ans.OK:
			var failed []string
			for _, i := range ans.Failed {
				failed = append(failed, strconv.Itoa(i))
			}
			out.failed = strings.Join(failed, ",")
		}
		return out, ans.Version, true
	case resp.StatusCode == 409, resp.StatusCode == 200 && req.Method == "GET":
		out.value = string(body)
	case resp.StatusCode != 200 && resp.StatusCode != 404:
		out.value = strings.TrimSpace(string(body)) // only for the message
	}
	return out, version, true
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

// Eight clients call get, set, cas, los, del and txn on six shared keys
// (a txn within one group of three, checks by absence, value and
// version); the server is SIGKILLed while they do, which cuts every client's call in
// flight off, and restarted on the same data; with --fsync always every
// answered write must have survived, so the whole history, both lives of
// the server together, must be linearizable.
func TestLinearizabilityAcrossSIGKILL(t *testing.T) {
	t.Run("mapped journal", func(t *testing.T) { checkLinearizability(t, binary) })
	// The journal as it is written off Linux, or where the filesystem
	// cannot preallocate: a write(2) per record.
	t.Run("write(2) journal", func(t *testing.T) {
		bin, err := journalWriteBinary()
		require.NoError(t, err, "building with -tags journal_write")
		checkLinearizability(t, bin)
	})
}

// TestJournalWriteBuild checks what the journal_write build is for: a
// running server's journal holds only the bytes of its records, where the
// default build on Linux maps a preallocated window past them.
func TestJournalWriteBuild(t *testing.T) {
	jw, err := journalWriteBinary()
	require.NoError(t, err, "building with -tags journal_write")
	sizes := map[string]int64{}
	for name, bin := range map[string]string{"default": binary, "journal_write": jw} {
		data := filepath.Join(t.TempDir(), "rendezvous.db")
		s := startBinary(t, nil, bin, "--data", data, "--rate", "off")
		resp, _ := do(t, "POST", s.base+"/set/k", "value")
		require.Equal(t, 200, resp.StatusCode)
		files, err := filepath.Glob(data + ".journal.*")
		require.NoError(t, err)
		require.Len(t, files, 1)
		info, err := os.Stat(files[0])
		require.NoError(t, err)
		sizes[name] = info.Size()
		require.Equal(t, 0, s.stop(t), s.log.String())
	}
	assert.Less(t, sizes["journal_write"], int64(4096), "the write(2) journal has no window")
	if runtime.GOOS == "linux" {
		assert.GreaterOrEqual(t, sizes["default"], int64(1<<20), "the default build maps a window on Linux")
	} else {
		assert.Less(t, sizes["default"], int64(4096), "off Linux every build writes with write(2)")
	}
}

// checkLinearizability runs the check against the server binary bin.
func checkLinearizability(t *testing.T, bin string) {
	data := filepath.Join(t.TempDir(), "rendezvous.db")
	args := []string{"--data", data, "--fsync", "always", "--rate", "off", "--save-interval", "400ms"}
	h := &linHistory{start: time.Now(), seen: map[string]string{}, versions: map[string]linCheck{}}
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

	const perClient, killAfter = 150, 500
	s := startBinary(t, nil, bin, args...)
	connect()
	phase1 := make(chan struct{})
	go func() {
		runLinClients(clients, s.base, perClient)
		close(phase1)
	}()
	// On a loaded machine the deadline comes first; a third of the calls
	// still makes a history worth checking.
	deadline := time.Now().Add(8 * time.Second)
	for h.done.Load() < killAfter && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, s.cmd.Process.Kill())
	<-s.done
	<-phase1
	before := h.done.Load()
	require.GreaterOrEqual(t, before, int64(killAfter/3), "too few answers before the kill")

	s2 := startBinary(t, nil, bin, args...)
	restarted := h.now()
	connect()
	// First read what the restart recovered of every key, before the
	// clients' writes can hide a lost one.
	for k := range linKeys {
		require.True(t, clients[0].call(s2.base, linInput{op: linGet, key: linKey(k)}))
	}
	runLinClients(clients, s2.base, 60)
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
		failed := strings.Split(out.failed, ",")
		for i, c := range in.checks {
			kind := "value"
			switch {
			case c.absent:
				kind = "absent"
			case c.version != 0:
				kind = "version"
			}
			if slices.Contains(failed, strconv.Itoa(i)) {
				kind += " failed"
			} else {
				kind += " held"
			}
			answers["txn check "+kind]++
		}
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
	// txn takes its checks and writes as one list: a linCheck or a
	// linWrite each.
	txn := func(parts ...any) linInput {
		in := linInput{op: linTxn}
		for _, p := range parts {
			switch p := p.(type) {
			case linCheck:
				in.checks = append(in.checks, p)
			case linWrite:
				in.writes = append(in.writes, p)
			}
		}
		return in
	}
	isAbsent := func(k string) linCheck { return linCheck{key: k, absent: true} }
	holds := func(k, v string) linCheck { return linCheck{key: k, value: v} }
	atVersion := func(k string, version uint64, v string) linCheck {
		return linCheck{key: k, version: version, value: v}
	}
	put := func(k, v string) linWrite { return linWrite{key: k, value: v} }
	drop := func(k string) linWrite { return linWrite{key: k, delete: true} }
	refused := func(failed string) linOutput { return linOutput{status: 409, failed: failed} }
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
		{"a txn seen half-applied", []call{
			{0, txn(put("a", "v1"), put("b", "w1")), ok, 0, 1},
			{1, get("a"), found("v1"), 2, 3},
			{1, get("b"), missing, 4, 5},
		}, porcupine.Illegal},
		{"a cut-off txn seen half-applied", []call{
			{0, txn(put("a", "v1"), put("b", "w1")), cut, 0, 0},
			{1, get("a"), found("v1"), 1, 2},
			{1, get("b"), missing, 3, 4},
		}, porcupine.Illegal},
		{"a txn seen half-applied by another txn's checks", []call{
			{0, txn(put("a", "v1"), drop("b")), ok, 2, 3},
			{0, set("b", "w1"), ok, 0, 1},
			{1, txn(holds("a", "v1"), holds("b", "w1"), put("c", "x1")), ok, 4, 5},
		}, porcupine.Illegal},
		{"a txn commits past a failed check", []call{
			{0, set("a", "v1"), ok, 0, 1},
			{1, txn(isAbsent("a"), put("b", "w1")), ok, 2, 3},
		}, porcupine.Illegal},
		{"a refused txn names the wrong check", []call{
			{0, set("a", "v1"), ok, 0, 1},
			{1, txn(isAbsent("a"), isAbsent("b"), put("b", "w1")), refused("1"), 2, 3},
		}, porcupine.Illegal},
		{"a refused txn wrote all the same", []call{
			{0, set("a", "v1"), ok, 0, 1},
			{1, txn(isAbsent("a"), put("b", "w1")), refused("0"), 2, 3},
			{1, get("b"), found("w1"), 4, 5},
		}, porcupine.Illegal},
		{"a version check holds on a key written since", []call{
			{0, set("a", "v1"), ok, 0, 1},
			{0, set("a", "v2"), ok, 2, 3},
			{1, txn(atVersion("a", 1, "v1"), put("b", "w1")), ok, 4, 5},
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
		{"transactions in an order a correct server may produce", []call{
			{0, txn(put("a", "v1"), put("b", "w1")), ok, 0, 5},
			{1, get("a"), missing, 1, 2}, // before the txn took effect
			{1, get("a"), found("v1"), 3, 6},
			{1, get("b"), found("w1"), 7, 8},
			{2, txn(atVersion("a", 7, "v1"), holds("b", "w1"), drop("a"), put("b", "w2"), put("b", "w3")), ok, 9, 10},
			{3, txn(isAbsent("a"), holds("b", "w1"), put("a", "x")), refused("1"), 11, 12},
			{0, get("a"), missing, 13, 14},
			{0, get("b"), found("w3"), 13, 14},
		}, porcupine.Ok},
		{"a cut-off txn is seen whole or not at all", []call{
			{0, txn(put("a", "v1"), put("b", "w1")), cut, 0, 0},
			{1, get("a"), found("v1"), 1, 2},
			{1, get("b"), found("w1"), 3, 4},
			{2, txn(put("a", "v2"), put("b", "w2")), cut, 5, 0},
			{1, get("a"), found("v1"), 6, 7},
			{1, get("b"), found("w1"), 8, 9},
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

// setsAKey reports whether a txn call leaves a value under some key, so
// that a commit of it must take a version of its own (a key set and then
// deleted again in one txn may change nothing).
func (in linInput) setsAKey() bool {
	last := map[string]bool{} // key -> its last write is a set
	for _, w := range in.writes {
		last[w.key] = !w.delete
	}
	for _, set := range last {
		if set {
			return true
		}
	}
	return false
}
