package resp

import (
	"sort"
	"strings"
)

// doc is what COMMAND DOCS tells of a command: enough for redis-cli to
// hint at the arguments while one types.
type doc struct {
	group, summary string
	// args is the syntax in a compact form: key, name:type, TOKEN,
	// TOKEN=name:type, [optional], [a|b] for one of, {block}, and ... for
	// repeated.
	args string
}

var docs = map[string]doc{
	"ping":         {"connection", "Answer PONG, or the message", "[message:string]"},
	"echo":         {"connection", "Answer the message", "message:string"},
	"quit":         {"connection", "Close the connection", ""},
	"select":       {"connection", "Select database 0, the only one", "index:integer"},
	"hello":        {"connection", "Choose the protocol version and name the connection", "[protover:integer [AUTH=username:string password:string] [SETNAME=clientname:string]]"},
	"auth":         {"connection", "Authenticate the connection", "[username:string] password:string"},
	"client":       {"connection", "Name the connection, read its id and info", "subcommand:string [arg:string...]"},
	"command":      {"server", "Describe the commands", "[subcommand:string [arg:string...]]"},
	"info":         {"server", "Describe the server", "[section:string...]"},
	"dbsize":       {"server", "Count the keys", ""},
	"time":         {"server", "The server's time", ""},
	"config":       {"server", "Read a setting", "GET parameter:pattern..."},
	"reset":        {"connection", "Reset the connection's state", ""},
	"secret":       {"connection", "Set, or with none forget, the owner secret of this connection's writes", "[secret:string]"},
	"multi":        {"transactions", "Start a transaction", ""},
	"exec":         {"transactions", "Run the queued commands atomically", ""},
	"discard":      {"transactions", "Drop the queued commands", ""},
	"watch":        {"transactions", "Abort the next EXEC if these keys change", "key..."},
	"unwatch":      {"transactions", "Forget the watched keys", ""},
	"subscribe":    {"pubsub", "Receive the messages of channels (keyspace notifications)", "channel:string..."},
	"psubscribe":   {"pubsub", "Receive the messages of channels matching patterns", "pattern:pattern..."},
	"unsubscribe":  {"pubsub", "Stop receiving channels", "[channel:string...]"},
	"punsubscribe": {"pubsub", "Stop receiving patterns", "[pattern:pattern...]"},
	"scan":         {"generic", "Page through the keys", "cursor:integer [MATCH=pattern:pattern] [COUNT=count:integer] [TYPE=type:string]"},
	"keys":         {"generic", "The keys matching a pattern, at most --max-scan-limit", "pattern:pattern"},
	"get":          {"string", "Read a key's value", "key"},
	"set":          {"string", "Write a key's value", "key value:string [NX|XX] [GET] [EX=seconds:integer|PX=milliseconds:integer|EXAT=unix-time-seconds:unix-time|PXAT=unix-time-milliseconds:unix-time|KEEPTTL] [SECRET=secret:string]"},
	"setnx":        {"string", "Write a key only if it is absent", "key value:string"},
	"setex":        {"string", "Write a key with a TTL in seconds", "key seconds:integer value:string"},
	"psetex":       {"string", "Write a key with a TTL in milliseconds", "key milliseconds:integer value:string"},
	"getset":       {"string", "Write a key and answer its old value", "key value:string"},
	"getdel":       {"string", "Delete a key and answer its value", "key"},
	"getex":        {"string", "Read a key and set its TTL", "key [EX=seconds:integer|PX=milliseconds:integer|EXAT=unix-time-seconds:unix-time|PXAT=unix-time-milliseconds:unix-time|PERSIST]"},
	"mget":         {"string", "Read several keys", "key..."},
	"mset":         {"string", "Write several keys atomically", "{key value:string}..."},
	"msetnx":       {"string", "Write several keys atomically if none exists", "{key value:string}..."},
	"del":          {"generic", "Delete keys", "key..."},
	"unlink":       {"generic", "Delete keys", "key..."},
	"exists":       {"generic", "Count the keys that exist", "key..."},
	"type":         {"generic", "Answer string, or none", "key"},
	"ttl":          {"generic", "A key's time to live in seconds", "key"},
	"pttl":         {"generic", "A key's time to live in milliseconds", "key"},
	"expire":       {"generic", "Set a key's TTL in seconds", "key seconds:integer [NX|XX|GT|LT]"},
	"pexpire":      {"generic", "Set a key's TTL in milliseconds", "key milliseconds:integer [NX|XX|GT|LT]"},
	"expireat":     {"generic", "Set a key's expiry as a Unix time in seconds", "key unix-time-seconds:unix-time [NX|XX|GT|LT]"},
	"pexpireat":    {"generic", "Set a key's expiry as a Unix time in milliseconds", "key unix-time-milliseconds:unix-time [NX|XX|GT|LT]"},
	"persist":      {"generic", "Remove a key's TTL (only with --max-ttl 0)", "key"},
	"strlen":       {"string", "A value's length", "key"},
	"append":       {"string", "Append to a value", "key value:string"},
	"incr":         {"string", "Add one to an integer value", "key"},
	"decr":         {"string", "Subtract one from an integer value", "key"},
	"incrby":       {"string", "Add to an integer value", "key increment:integer"},
	"decrby":       {"string", "Subtract from an integer value", "key decrement:integer"},
}

// docArg is one argument of a command's syntax.
type docArg struct {
	name, typ, token string
	optional, repeat bool
	args             []docArg
}

// parseDocArgs reads the compact syntax of doc.args.
func parseDocArgs(s string) []docArg {
	var out []docArg
	for _, item := range splitTop(s, ' ') {
		out = append(out, parseDocItem(item))
	}
	return out
}

// splitTop splits s at sep outside brackets and braces.
func splitTop(s string, sep byte) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[', '{':
			depth++
		case ']', '}':
			depth--
		case sep:
			if depth == 0 {
				if i > start {
					parts = append(parts, s[start:i])
				}
				start = i + 1
			}
		}
	}
	if start < len(s) {
		parts = append(parts, s[start:])
	}
	return parts
}

func parseDocItem(item string) docArg {
	repeat := strings.HasSuffix(item, "...")
	item = strings.TrimSuffix(item, "...")
	var a docArg
	switch {
	case strings.HasPrefix(item, "[") || strings.HasPrefix(item, "{"):
		inner := item[1 : len(item)-1]
		if alts := splitTop(inner, '|'); len(alts) > 1 {
			a = docArg{name: "choice", typ: "oneof"}
			for _, alt := range alts {
				a.args = append(a.args, parseDocItem(alt))
			}
		} else if items := parseDocArgs(inner); len(items) == 1 && item[0] == '[' {
			a = items[0]
		} else {
			a = docArg{name: "group", typ: "block", args: items}
		}
		a.optional = item[0] == '['
	case strings.Contains(item, " "):
		a = docArg{name: "group", typ: "block", args: parseDocArgs(item)}
	case item == "key":
		a = docArg{name: "key", typ: "key"}
	case strings.Contains(item, "="):
		token, rest, _ := strings.Cut(item, "=")
		a = parseDocItem(rest)
		a.token = token
	case strings.Contains(item, ":"):
		name, typ, _ := strings.Cut(item, ":")
		a = docArg{name: name, typ: typ}
	default: // a bare token
		a = docArg{name: strings.ToLower(item), typ: "pure-token", token: item}
	}
	a.repeat = a.repeat || repeat
	return a
}

// writeDocArg writes one argument as COMMAND DOCS does: a map of name,
// type, token, flags and nested arguments.
func (c *conn) writeDocArg(a docArg) {
	var flags []string
	if a.optional {
		flags = append(flags, "optional")
	}
	if a.repeat {
		flags = append(flags, "multiple")
	}
	n := 2
	if a.token != "" {
		n++
	}
	if len(flags) > 0 {
		n++
	}
	if len(a.args) > 0 {
		n++
	}
	c.w.mapHeader(n)
	c.w.bulkString("name")
	c.w.bulkString(a.name)
	c.w.bulkString("type")
	c.w.bulkString(a.typ)
	if a.token != "" {
		c.w.bulkString("token")
		c.w.bulkString(a.token)
	}
	if len(flags) > 0 {
		c.w.bulkString("flags")
		c.w.array(len(flags))
		for _, f := range flags {
			c.w.simple(f)
		}
	}
	if len(a.args) > 0 {
		c.w.bulkString("arguments")
		c.w.array(len(a.args))
		for _, sub := range a.args {
			c.writeDocArg(sub)
		}
	}
}

// cmdDocs answers COMMAND DOCS [name...]: every command's when none is
// named; a name without a command is left out, as Redis does.
func cmdDocs(c *conn, names [][]byte) {
	var list []string
	if len(names) == 0 {
		list = commandNames()
	} else {
		for _, n := range names {
			if cmd := lookup(n); cmd != nil {
				list = append(list, cmd.name)
			}
		}
	}
	sort.Strings(list)
	c.w.mapHeader(len(list))
	for _, name := range list {
		d := docs[name]
		args := parseDocArgs(d.args)
		c.w.bulkString(name)
		c.w.mapHeader(4)
		c.w.bulkString("summary")
		c.w.bulkString(d.summary)
		c.w.bulkString("since")
		c.w.bulkString("1.0.0")
		c.w.bulkString("group")
		c.w.bulkString(d.group)
		c.w.bulkString("arguments")
		c.w.array(len(args))
		for _, a := range args {
			c.writeDocArg(a)
		}
	}
}
