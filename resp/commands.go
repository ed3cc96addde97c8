package resp

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// command is one entry of the command table.
type command struct {
	name  string // lower case, as Redis names commands in errors
	arity int    // Redis's convention: n exactly, -n at least n
	flags []string
	// The key positions, for COMMAND's answers.
	firstKey, lastKey, step int
	// run executes the command outside MULTI.
	run func(c *conn, args [][]byte)
	// sim executes a data command against a tx; nil for commands that
	// cannot be queued in MULTI.
	sim func(t *tx, args [][]byte)
	// cost is what the command costs, in reads and writes.
	cost func(args [][]byte) (reads, writes int)
	// control commands act on the connection's MULTI itself and are not
	// queued.
	control bool
	// subscribedOK commands are allowed in subscribed mode.
	subscribedOK bool
	// beforeAuth commands are allowed before a connection authenticated,
	// when the server has a verifier.
	beforeAuth bool
}

func (cmd *command) arityOK(n int) bool {
	if cmd.arity < 0 {
		return n >= -cmd.arity
	}
	return n == cmd.arity
}

var commands = map[string]*command{}

// lookup finds a command by name in any case, without allocating for
// names of ordinary length.
func lookup(name []byte) *command {
	var buf [32]byte
	if len(name) > len(buf) {
		return nil
	}
	for i, b := range name {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		buf[i] = b
	}
	return commands[string(buf[:len(name)])]
}

func register(cmd *command) {
	if cmd.run == nil {
		cmd.run = func(c *conn, args [][]byte) { c.runData(cmd, args) }
	}
	if cmd.cost == nil {
		cmd.cost = func([][]byte) (int, int) { return 0, 0 }
	}
	commands[cmd.name] = cmd
}

// Costs, a read or a write per key touched.
func oneRead([][]byte) (int, int)  { return 1, 0 }
func oneWrite([][]byte) (int, int) { return 0, 1 }
func readsFrom1(a [][]byte) (int, int) {
	return len(a) - 1, 0
}
func writesFrom1(a [][]byte) (int, int) { return 0, len(a) - 1 }
func writesPairs(a [][]byte) (int, int) { return 0, (len(a) - 1) / 2 }

func init() {
	rw, ro := []string{"write", "denyoom"}, []string{"readonly", "fast"}
	cn := []string{"fast", "loading", "stale"}
	for _, cmd := range []*command{
		{name: "ping", arity: -1, flags: cn, run: cmdPing, sim: simPing, subscribedOK: true},
		{name: "echo", arity: 2, flags: cn, run: func(c *conn, a [][]byte) { c.w.bulk(a[1]) }, sim: func(t *tx, a [][]byte) { t.w.bulk(a[1]) }},
		{name: "quit", arity: -1, flags: cn, run: cmdQuit, control: true, subscribedOK: true, beforeAuth: true},
		// Queued inside MULTI, as Redis does (clients send SELECT 0 in
		// the transactions they build).
		{name: "select", arity: 2, flags: cn, run: func(c *conn, a [][]byte) { selectDB(&c.w, a) }, sim: func(t *tx, a [][]byte) { selectDB(t.w, a) }},
		{name: "hello", arity: -1, flags: cn, run: cmdHello, beforeAuth: true},
		{name: "auth", arity: -2, flags: cn, run: cmdAuth, beforeAuth: true},
		{name: "client", arity: -2, flags: cn, run: cmdClient},
		{name: "command", arity: -1, flags: cn, run: cmdCommand},
		{name: "info", arity: -1, flags: cn, run: cmdInfo},
		{name: "dbsize", arity: 1, flags: ro, run: func(c *conn, a [][]byte) { c.w.int(int64(c.s.cfg.Keys())) }},
		{name: "time", arity: 1, flags: cn, run: cmdTime},
		{name: "config", arity: -2, flags: cn, run: cmdConfig},
		{name: "reset", arity: 1, flags: cn, run: cmdReset, control: true, subscribedOK: true},
		{name: "secret", arity: -1, flags: cn, run: cmdSecret},

		{name: "multi", arity: 1, flags: cn, run: cmdMulti, control: true},
		{name: "exec", arity: 1, flags: cn, run: cmdExec, control: true},
		{name: "discard", arity: 1, flags: cn, run: cmdDiscard, control: true},
		{name: "watch", arity: -2, flags: cn, firstKey: 1, lastKey: -1, step: 1, run: cmdWatch, control: true},
		{name: "unwatch", arity: 1, flags: cn, run: cmdUnwatch},

		{name: "subscribe", arity: -2, flags: []string{"pubsub", "noscript"}, run: cmdSubscribe, subscribedOK: true},
		{name: "psubscribe", arity: -2, flags: []string{"pubsub", "noscript"}, run: cmdPSubscribe, subscribedOK: true},
		{name: "unsubscribe", arity: -1, flags: []string{"pubsub", "noscript"}, run: cmdUnsubscribe, subscribedOK: true},
		{name: "punsubscribe", arity: -1, flags: []string{"pubsub", "noscript"}, run: cmdPUnsubscribe, subscribedOK: true},
		{name: "scan", arity: -2, flags: []string{"readonly"}, run: cmdScan},
		{name: "keys", arity: 2, flags: []string{"readonly"}, run: cmdKeys},
		{name: "get", arity: 2, flags: ro, firstKey: 1, lastKey: 1, step: 1, run: cmdGet, sim: simGet, cost: oneRead},
		{name: "set", arity: -3, flags: rw, firstKey: 1, lastKey: 1, step: 1, run: cmdSet, sim: simSet, cost: oneWrite},
		{name: "setnx", arity: 3, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simSetNX, cost: oneWrite},
		{name: "setex", arity: 4, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simSetEX(time.Second), cost: oneWrite},
		{name: "psetex", arity: 4, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simSetEX(time.Millisecond), cost: oneWrite},
		{name: "getset", arity: 3, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simGetSet, cost: oneWrite},
		{name: "getdel", arity: 2, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simGetDel, cost: oneWrite},
		{name: "getex", arity: -2, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simGetEx, cost: costGetEx},
		{name: "mget", arity: -2, flags: ro, firstKey: 1, lastKey: -1, step: 1, sim: simMGet, cost: readsFrom1},
		{name: "mset", arity: -3, flags: rw, firstKey: 1, lastKey: -1, step: 2, sim: simMSet, cost: writesPairs},
		{name: "msetnx", arity: -3, flags: rw, firstKey: 1, lastKey: -1, step: 2, sim: simMSetNX, cost: writesPairs},
		{name: "del", arity: -2, flags: []string{"write"}, firstKey: 1, lastKey: -1, step: 1, sim: simDel, cost: writesFrom1},
		{name: "unlink", arity: -2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: -1, step: 1, sim: simDel, cost: writesFrom1},
		{name: "exists", arity: -2, flags: ro, firstKey: 1, lastKey: -1, step: 1, sim: simExists, cost: readsFrom1},
		{name: "type", arity: 2, flags: ro, firstKey: 1, lastKey: 1, step: 1, sim: simType, cost: oneRead},
		{name: "ttl", arity: 2, flags: ro, firstKey: 1, lastKey: 1, step: 1, sim: simTTL(time.Second), cost: oneRead},
		{name: "pttl", arity: 2, flags: ro, firstKey: 1, lastKey: 1, step: 1, sim: simTTL(time.Millisecond), cost: oneRead},
		{name: "expire", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, sim: simExpire(time.Second, false), cost: oneWrite},
		{name: "pexpire", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, sim: simExpire(time.Millisecond, false), cost: oneWrite},
		{name: "expireat", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, sim: simExpire(time.Second, true), cost: oneWrite},
		{name: "pexpireat", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, sim: simExpire(time.Millisecond, true), cost: oneWrite},
		{name: "persist", arity: 2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, sim: simPersist, cost: oneWrite},
		{name: "strlen", arity: 2, flags: ro, firstKey: 1, lastKey: 1, step: 1, sim: simStrlen, cost: oneRead},
		{name: "append", arity: 3, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simAppend, cost: oneWrite},
		{name: "incr", arity: 2, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simIncr(1, false), cost: oneWrite},
		{name: "decr", arity: 2, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simIncr(-1, false), cost: oneWrite},
		{name: "incrby", arity: 3, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simIncr(1, true), cost: oneWrite},
		{name: "decrby", arity: 3, flags: rw, firstKey: 1, lastKey: 1, step: 1, sim: simIncr(-1, true), cost: oneWrite},
	} {
		register(cmd)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// ---- connection and server commands

func cmdPing(c *conn, a [][]byte) {
	if c.subscribed() && c.w.proto == 2 {
		// In subscribed mode RESP2 can only carry messages.
		msg := []byte{}
		if len(a) > 1 {
			msg = a[1]
		}
		c.w.array(2)
		c.w.bulkString("pong")
		c.w.bulk(msg)
		return
	}
	simPing(&tx{w: &c.w}, a)
}

func simPing(t *tx, a [][]byte) {
	switch len(a) {
	case 1:
		t.w.simple("PONG")
	case 2:
		t.w.bulk(a[1])
	default:
		t.w.err("ERR wrong number of arguments for 'ping' command")
	}
}

func cmdQuit(c *conn, a [][]byte) {
	c.w.simple("OK")
	c.closing = true
}

// selectDB answers SELECT: database 0 is the only one.
func selectDB(w *writer, a [][]byte) {
	n, err := strconv.Atoi(string(a[1]))
	switch {
	case err != nil:
		w.err(errNotInt)
	case n != 0:
		w.err("ERR DB index is out of range: rendezvous has one database, 0")
	default:
		w.simple("OK")
	}
}

func cmdHello(c *conn, a [][]byte) {
	proto := c.w.proto
	if len(a) > 1 {
		v, err := strconv.Atoi(string(a[1]))
		if err != nil {
			c.w.err("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			c.w.err("NOPROTO unsupported protocol version")
			return
		}
		proto = v
	}
	name, setName := "", false
	for i := 2; i < len(a); i++ {
		switch strings.ToLower(string(a[i])) {
		case "auth":
			if i+2 >= len(a) {
				c.w.err(errSyntax)
				return
			}
			// Without a verifier, as Redis with the default user's
			// nopass: any credentials, and the caller stays anonymous.
			if c.s.cfg.Verifier != nil {
				if refused := c.authenticate(string(a[i+1]), string(a[i+2])); refused != "" {
					c.w.err(refused)
					return
				}
			}
			i += 2
		case "setname":
			if i+1 >= len(a) {
				c.w.err(errSyntax)
				return
			}
			name, setName = string(a[i+1]), true
			if !validName(name) {
				c.w.err("ERR Client names cannot contain spaces, newlines or special characters.")
				return
			}
			i++
		default:
			c.w.err("ERR Syntax error in HELLO option '" + string(clip(a[i], 64)) + "'")
			return
		}
	}
	if !c.authed {
		c.w.err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <token> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if setName {
		c.name = name
	}
	c.w.proto = proto
	c.w.mapHeader(7)
	c.w.bulkString("server")
	c.w.bulkString("rendezvous")
	c.w.bulkString("version")
	c.w.bulkString(redisVersion)
	c.w.bulkString("proto")
	c.w.int(int64(proto))
	c.w.bulkString("id")
	c.w.int(c.id)
	c.w.bulkString("mode")
	c.w.bulkString("standalone")
	c.w.bulkString("role")
	c.w.bulkString("master")
	c.w.bulkString("modules")
	c.w.array(0)
}

// redisVersion is the Redis version whose commands this front end
// answers like, for clients that choose features by it.
const redisVersion = "7.0.0"

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func cmdAuth(c *conn, a [][]byte) {
	if len(a) > 3 {
		c.w.err(errSyntax)
		return
	}
	if c.s.cfg.Verifier == nil {
		// Without a verifier, Redis's answers without a password set.
		if len(a) == 2 {
			c.w.err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
			return
		}
		c.w.simple("OK")
		return
	}
	user, token := "", string(a[1])
	if len(a) == 3 {
		user, token = string(a[1]), string(a[2])
	}
	if refused := c.authenticate(user, token); refused != "" {
		c.w.err(refused)
		return
	}
	c.w.simple("OK")
}

func cmdSecret(c *conn, a [][]byte) {
	switch len(a) {
	case 1:
		c.secret = ""
	case 2:
		if limit, err := c.s.svc.ValueLimit(string(a[1])); limit == 0 {
			c.w.err(errorLine(err)) // no value could be written with it
			return
		}
		c.secret = string(a[1])
	default:
		c.w.err("ERR wrong number of arguments for 'secret' command")
		return
	}
	c.w.simple("OK")
}

func cmdClient(c *conn, a [][]byte) {
	sub := strings.ToLower(string(a[1]))
	switch {
	case sub == "id" && len(a) == 2:
		c.w.int(c.id)
	case sub == "getname" && len(a) == 2:
		if c.name == "" {
			c.w.null()
		} else {
			c.w.bulkString(c.name)
		}
	case sub == "setname" && len(a) == 3:
		if !validName(string(a[2])) {
			c.w.err("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.name = string(a[2])
		c.w.simple("OK")
	case sub == "setinfo" && len(a) == 4:
		attr := strings.ToLower(string(a[2]))
		if attr != "lib-name" && attr != "lib-ver" {
			c.w.err("ERR Unrecognized option '" + string(clip(a[2], 64)) + "'")
			return
		}
		if !validName(string(a[3])) {
			c.w.err("ERR " + attr + " cannot contain spaces, newlines or special characters.")
			return
		}
		if attr == "lib-name" {
			c.lib = string(a[3])
		}
		c.w.simple("OK")
	case sub == "info" && len(a) == 2:
		c.w.bulkString(c.info())
	default:
		c.w.err("ERR unknown subcommand or wrong number of arguments for '" + string(clip(a[1], 64)) + "'. Try CLIENT HELP.")
	}
}

func (c *conn) info() string {
	multi := -1
	if c.multi {
		multi = len(c.queued)
	}
	subs := 0
	if c.sub != nil {
		subs = len(c.sub.channels) + len(c.sub.patterns)
	}
	return "id=" + strconv.FormatInt(c.id, 10) + " addr=" + c.nc.RemoteAddr().String() + " laddr=" + c.nc.LocalAddr().String() +
		" name=" + c.name + " db=0 sub=" + itoa(subs) + " multi=" + itoa(multi) + " resp=" + itoa(c.w.proto) + " lib-name=" + c.lib + "\n"
}

func cmdTime(c *conn, a [][]byte) {
	now := time.Now()
	c.w.array(2)
	c.w.bulkString(strconv.FormatInt(now.Unix(), 10))
	c.w.bulkString(strconv.Itoa(now.Nanosecond() / 1000))
}

func cmdReset(c *conn, a [][]byte) {
	c.endMulti()
	c.unsubscribeAll()
	c.name, c.secret, c.w.proto = "", "", 2
	c.deauthenticate()
	c.w.simple("RESET")
}

func cmdConfig(c *conn, a [][]byte) {
	if strings.ToLower(string(a[1])) != "get" {
		c.w.err("ERR " + policy.KindBadRequest.Code() + ": CONFIG " + strings.ToUpper(string(clip(a[1], 32))) +
			" is not supported: rendezvous is configured by its flags; CONFIG GET reads a few settings")
		return
	}
	if len(a) < 3 {
		c.w.err("ERR wrong number of arguments for 'config|get' command")
		return
	}
	pc := c.s.svc.Config()
	params := [][2]string{
		{"appendonly", c.s.cfg.AppendOnly},
		{"appendfsync", "everysec"},
		{"save", ""},
		{"databases", "1"},
		{"maxmemory", "0"},
		// Whole seconds, rounded up: Redis's 0 would mean "never".
		{"timeout", strconv.Itoa(int((c.s.cfg.IdleTimeout + time.Second - 1) / time.Second))},
		{"proto-max-bulk-len", strconv.Itoa(c.s.limits.MaxBulk)},
		{"maxclients", "0"},
		{"rendezvous-max-ttl", pc.MaxTTL.String()},
	}
	var out [][2]string
	for _, p := range params {
		for _, pat := range a[2:] {
			if globMatch(bytes.ToLower(pat), []byte(p[0])) {
				out = append(out, p)
				break
			}
		}
	}
	c.w.mapHeader(len(out))
	for _, p := range out {
		c.w.bulkString(p[0])
		c.w.bulkString(p[1])
	}
}

// ---- data commands

// owner returns the secret a write of this connection carries.
func (t *tx) secret() string { return t.c.secret }

// cmdGet is GET outside MULTI: one read, no transaction.
func cmdGet(c *conn, a [][]byte) {
	it, err := c.s.svc.Get(c.caller, string(a[1]))
	if err != nil {
		var pe *policy.Error
		if errors.As(err, &pe) && pe.Kind == policy.KindNotFound {
			c.w.null()
			return
		}
		c.w.err(errorLine(err))
		return
	}
	c.w.bulk(it.Value)
}

func simGet(t *tx, a [][]byte) {
	k, ok := t.key(a[1], false)
	if !ok {
		return
	}
	if e := t.get(k); e.live {
		t.w.bulk(e.value)
	} else {
		t.w.null()
	}
}

// setArgs are SET's options.
type setArgs struct {
	nx, xx, get bool
	ttl         ttlSpec
	at          bool  // an absolute time was given
	atNanos     int64 // when at
	secret      string
	hasSecret   bool
}

// parseSet reads SET's options, or returns the error reply.
func parseSet(a [][]byte, now func() time.Time) (setArgs, string) {
	var o setArgs
	expiry := 0
	for i := 3; i < len(a); i++ {
		opt := strings.ToUpper(string(clip(a[i], 16)))
		switch opt {
		case "NX":
			o.nx = true
		case "XX":
			o.xx = true
		case "GET":
			o.get = true
		case "KEEPTTL":
			o.ttl.keep = true
			expiry++
		case "EX", "PX", "EXAT", "PXAT":
			if i+1 >= len(a) {
				return o, errSyntax
			}
			n, err := strconv.ParseInt(string(a[i+1]), 10, 64)
			if err != nil {
				return o, errNotInt
			}
			i++
			expiry++
			unit := time.Second
			if opt[0] == 'P' {
				unit = time.Millisecond
			}
			if n <= 0 || n > math.MaxInt64/int64(unit) {
				return o, "ERR invalid expire time in 'set' command"
			}
			if strings.HasSuffix(opt, "AT") {
				o.at, o.atNanos = true, n*int64(unit)
				o.ttl.ttl = time.Duration(o.atNanos - now().UnixNano())
			} else {
				o.ttl.ttl = time.Duration(n) * unit
			}
		case "SECRET":
			if i+1 >= len(a) {
				return o, errSyntax
			}
			o.secret, o.hasSecret = string(a[i+1]), true
			i++
		default:
			return o, errSyntax
		}
	}
	if (o.nx && o.xx) || expiry > 1 {
		return o, errSyntax
	}
	return o, ""
}

// cmdSet is SET outside MULTI: a single policy write when it needs no
// read (no GET, XX or KEEPTTL), else the general path.
func cmdSet(c *conn, a [][]byte) {
	o, bad := parseSet(a, c.s.cfg.Now) // the clock is read for EXAT and PXAT only
	if bad != "" {
		c.w.err(bad)
		return
	}
	if o.get || o.xx || o.ttl.keep || (o.at && o.ttl.ttl <= 0) {
		c.runData(commands["set"], a)
		return
	}
	secret := c.secret
	if o.hasSecret {
		secret = o.secret
	}
	op := policy.OpSet
	if o.nx {
		op = policy.OpLoadOrStore
	}
	_, err := c.s.svc.Write(c.caller, op, policy.WriteRequest{Key: string(a[1]), Value: bytes.Clone(a[2]), Secret: secret, TTL: o.ttl.ttl})
	if err != nil {
		var pe *policy.Error
		if o.nx && errors.As(err, &pe) && pe.Kind == policy.KindConflict {
			c.w.null()
			return
		}
		c.w.err(errorLine(err))
		return
	}
	c.w.simple("OK")
}

func simSet(t *tx, a [][]byte) {
	o, bad := parseSet(a, t.clock)
	if bad != "" {
		t.w.err(bad)
		return
	}
	k, ok := t.key(a[1], true)
	if !ok {
		return
	}
	secret := t.secret()
	if o.hasSecret {
		secret = o.secret
	}
	e := t.get(k)
	old, wasLive := e.value, e.live
	doSet := !(o.nx && wasLive) && !(o.xx && !wasLive)
	if doSet {
		if o.at && o.ttl.ttl <= 0 {
			t.del(k, secret) // a time in the past: set and expired at once
		} else {
			t.put(k, bytes.Clone(a[2]), o.ttl, secret)
		}
	}
	switch {
	case o.get && wasLive:
		t.w.bulk(old)
	case o.get, !doSet:
		t.w.null()
	default:
		t.w.simple("OK")
	}
}

func simSetNX(t *tx, a [][]byte) {
	k, ok := t.key(a[1], true)
	if !ok {
		return
	}
	if t.get(k).live {
		t.w.int(0)
		return
	}
	t.put(k, bytes.Clone(a[2]), ttlSpec{}, t.secret())
	t.w.int(1)
}

func simSetEX(unit time.Duration) func(t *tx, a [][]byte) {
	name := "setex"
	if unit == time.Millisecond {
		name = "psetex"
	}
	return func(t *tx, a [][]byte) {
		n, err := strconv.ParseInt(string(a[2]), 10, 64)
		if err != nil {
			t.w.err(errNotInt)
			return
		}
		if n <= 0 || n > math.MaxInt64/int64(unit) {
			t.w.err("ERR invalid expire time in '" + name + "' command")
			return
		}
		k, ok := t.key(a[1], true)
		if !ok {
			return
		}
		t.put(k, bytes.Clone(a[3]), ttlSpec{ttl: time.Duration(n) * unit}, t.secret())
		t.w.simple("OK")
	}
}

func simGetSet(t *tx, a [][]byte) {
	k, ok := t.key(a[1], true)
	if !ok {
		return
	}
	e := t.get(k)
	old, wasLive := e.value, e.live
	t.put(k, bytes.Clone(a[2]), ttlSpec{}, t.secret())
	if wasLive {
		t.w.bulk(old)
	} else {
		t.w.null()
	}
}

func simGetDel(t *tx, a [][]byte) {
	k, ok := t.key(a[1], true)
	if !ok {
		return
	}
	e := t.get(k)
	if !e.live {
		t.w.null()
		return
	}
	old := e.value
	t.del(k, t.secret())
	t.w.bulk(old)
}

func costGetEx(a [][]byte) (int, int) {
	if len(a) == 2 {
		return 1, 0
	}
	return 0, 1
}

// expiryOption parses one of EX/PX/EXAT/PXAT n at a[i], returning the
// lifetime from now (zero or negative: already expired).
func expiryOption(a [][]byte, i int, now time.Time, cmd string) (time.Duration, string) {
	opt := strings.ToUpper(string(clip(a[i], 8)))
	if i+1 >= len(a) {
		return 0, errSyntax
	}
	n, err := strconv.ParseInt(string(a[i+1]), 10, 64)
	if err != nil {
		return 0, errNotInt
	}
	unit := time.Second
	if opt[0] == 'P' {
		unit = time.Millisecond
	}
	if n <= 0 || n > math.MaxInt64/int64(unit) {
		return 0, "ERR invalid expire time in '" + cmd + "' command"
	}
	if strings.HasSuffix(opt, "AT") {
		return time.Duration(n*int64(unit) - now.UnixNano()), ""
	}
	return time.Duration(n) * unit, ""
}

func simGetEx(t *tx, a [][]byte) {
	var ttl time.Duration
	persist := false
	switch len(a) {
	case 2:
	case 3:
		if strings.ToUpper(string(a[2])) != "PERSIST" {
			t.w.err(errSyntax)
			return
		}
		persist = true
	case 4:
		switch strings.ToUpper(string(clip(a[2], 8))) {
		case "EX", "PX", "EXAT", "PXAT":
		default:
			t.w.err(errSyntax)
			return
		}
		var bad string
		if ttl, bad = expiryOption(a, 2, t.now, "getex"); bad != "" {
			t.w.err(bad)
			return
		}
	default:
		t.w.err(errSyntax)
		return
	}
	if persist && !t.c.persistAllowed() {
		return
	}
	k, ok := t.key(a[1], len(a) > 2)
	if !ok {
		return
	}
	e := t.get(k)
	if !e.live {
		t.w.null()
		return
	}
	val := e.value
	switch {
	case len(a) == 2:
	case persist:
		t.putEvent(k, val, ttlSpec{}, t.secret(), kv.CausePersist)
	case ttl <= 0:
		t.del(k, t.secret())
	default:
		t.putEvent(k, val, ttlSpec{ttl: ttl}, t.secret(), kv.CauseExpire)
	}
	t.w.bulk(val)
}

// persistAllowed writes PERSIST's refusal unless values may live for ever
// on this server (--max-ttl 0).
func (c *conn) persistAllowed() bool {
	if maxTTL := c.s.svc.Config().MaxTTL; maxTTL > 0 {
		c.w.err("ERR " + policy.KindBadRequest.Code() + ": every key expires on this server, after at most " + maxTTL.String() +
			" (--max-ttl); PERSIST needs --max-ttl 0")
		return false
	}
	return true
}

func simMGet(t *tx, a [][]byte) {
	keys := make([]string, len(a)-1)
	for i, name := range a[1:] {
		k, ok := t.key(name, false)
		if !ok {
			return
		}
		keys[i] = k
	}
	t.w.array(len(keys))
	for _, k := range keys {
		if e := t.get(k); e.live {
			t.w.bulk(e.value)
		} else {
			t.w.null()
		}
	}
}

func simMSet(t *tx, a [][]byte) {
	if len(a)%2 != 1 {
		t.w.err("ERR wrong number of arguments for 'mset' command")
		return
	}
	keys, ok := t.pairKeys(a)
	if !ok {
		return
	}
	for i, k := range keys {
		t.put(k, bytes.Clone(a[2+2*i]), ttlSpec{}, t.secret())
	}
	t.w.simple("OK")
}

func (t *tx) pairKeys(a [][]byte) ([]string, bool) {
	keys := make([]string, 0, len(a)/2)
	for i := 1; i < len(a); i += 2 {
		k, ok := t.key(a[i], true)
		if !ok {
			return nil, false
		}
		keys = append(keys, k)
	}
	return keys, true
}

func simMSetNX(t *tx, a [][]byte) {
	if len(a)%2 != 1 {
		t.w.err("ERR wrong number of arguments for 'msetnx' command")
		return
	}
	keys, ok := t.pairKeys(a)
	if !ok {
		return
	}
	for _, k := range keys {
		if t.get(k).live {
			t.w.int(0)
			return
		}
	}
	for i, k := range keys {
		t.put(k, bytes.Clone(a[2+2*i]), ttlSpec{}, t.secret())
	}
	t.w.int(1)
}

func simDel(t *tx, a [][]byte) {
	keys := make([]string, len(a)-1)
	for i, name := range a[1:] {
		k, ok := t.key(name, true)
		if !ok {
			return
		}
		keys[i] = k
	}
	n := 0
	for _, k := range keys {
		if t.get(k).live {
			n++
			t.del(k, t.secret())
		}
	}
	t.w.int(int64(n))
}

func simExists(t *tx, a [][]byte) {
	n := 0
	for _, name := range a[1:] {
		k, ok := t.key(name, false)
		if !ok {
			return
		}
		if t.get(k).live {
			n++
		}
	}
	t.w.int(int64(n))
}

func simType(t *tx, a [][]byte) {
	k, ok := t.key(a[1], false)
	if !ok {
		return
	}
	if t.get(k).live {
		t.w.simple("string")
	} else {
		t.w.simple("none")
	}
}

func simTTL(unit time.Duration) func(t *tx, a [][]byte) {
	return func(t *tx, a [][]byte) {
		k, ok := t.key(a[1], false)
		if !ok {
			return
		}
		e := t.get(k)
		switch {
		case !e.live:
			t.w.int(-2)
		case e.expires == 0:
			t.w.int(-1)
		default:
			left := max(e.expires-t.now.UnixNano(), 0)
			// Rounded as Redis rounds: to the nearest unit.
			t.w.int((left + int64(unit)/2) / int64(unit))
		}
	}
}

func simExpire(unit time.Duration, absolute bool) func(t *tx, a [][]byte) {
	return func(t *tx, a [][]byte) {
		n, err := strconv.ParseInt(string(a[2]), 10, 64)
		if err != nil {
			t.w.err(errNotInt)
			return
		}
		var nx, xx, gt, lt bool
		for _, opt := range a[3:] {
			switch strings.ToUpper(string(clip(opt, 4))) {
			case "NX":
				nx = true
			case "XX":
				xx = true
			case "GT":
				gt = true
			case "LT":
				lt = true
			default:
				t.w.err("ERR Unsupported option " + string(clip(opt, 32)))
				return
			}
		}
		if nx && (xx || gt || lt) || gt && lt {
			t.w.err("ERR NX and XX, GT or LT options at the same time are not compatible")
			return
		}
		if n > math.MaxInt64/int64(unit) || n < math.MinInt64/int64(unit) {
			t.w.err("ERR invalid expire time in '" + strings.ToLower(string(a[0])) + "' command")
			return
		}
		at := t.now.UnixNano() + n*int64(unit)
		if absolute {
			at = n * int64(unit)
		}
		k, ok := t.key(a[1], true)
		if !ok {
			return
		}
		e := t.get(k)
		if !e.live {
			t.w.int(0)
			return
		}
		cur := e.expires // 0: never, which GT and LT take as infinite
		switch {
		case nx && cur != 0, xx && cur == 0,
			gt && (cur == 0 || at <= cur), lt && cur != 0 && at >= cur:
			t.w.int(0)
			return
		}
		if at <= t.now.UnixNano() {
			t.del(k, t.secret())
		} else {
			t.putEvent(k, e.value, ttlSpec{ttl: time.Duration(at - t.now.UnixNano())}, t.secret(), kv.CauseExpire)
		}
		t.w.int(1)
	}
}

func simPersist(t *tx, a [][]byte) {
	if !t.c.persistAllowed() {
		return
	}
	k, ok := t.key(a[1], true)
	if !ok {
		return
	}
	e := t.get(k)
	if !e.live || e.expires == 0 {
		t.w.int(0)
		return
	}
	t.putEvent(k, e.value, ttlSpec{}, t.secret(), kv.CausePersist)
	t.w.int(1)
}

func simStrlen(t *tx, a [][]byte) {
	k, ok := t.key(a[1], false)
	if !ok {
		return
	}
	e := t.get(k)
	t.w.int(int64(len(e.value)))
}

func simAppend(t *tx, a [][]byte) {
	k, ok := t.key(a[1], true)
	if !ok {
		return
	}
	e := t.get(k)
	v := make([]byte, 0, len(e.value)+len(a[2]))
	v = append(append(v, e.value...), a[2]...)
	t.putEvent(k, v, ttlSpec{keep: true}, t.secret(), kv.CauseAppend)
	t.w.int(int64(len(v)))
}

// parseInt reads a decimal integer in the one form Redis accepts: no
// sign but a leading minus, no leading zeros, no spaces.
func parseInt(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != string(b) {
		return 0, false
	}
	return n, true
}

func simIncr(sign int64, withArg bool) func(t *tx, a [][]byte) {
	return func(t *tx, a [][]byte) {
		by := sign
		if withArg {
			n, ok := parseInt(a[2])
			if !ok {
				t.w.err(errNotInt)
				return
			}
			if sign < 0 {
				if n == math.MinInt64 {
					t.w.err("ERR decrement would overflow")
					return
				}
				n = -n
			}
			by = n
		}
		k, ok := t.key(a[1], true)
		if !ok {
			return
		}
		e := t.get(k)
		var cur int64
		if e.live {
			if cur, ok = parseInt(e.value); !ok {
				t.w.err(errNotInt)
				return
			}
		}
		if (by > 0 && cur > math.MaxInt64-by) || (by < 0 && cur < math.MinInt64-by) {
			t.w.err(errOverflow)
			return
		}
		cur += by
		t.putEvent(k, strconv.AppendInt(nil, cur, 10), ttlSpec{keep: true}, t.secret(), kv.CauseIncr)
		t.w.int(cur)
	}
}
