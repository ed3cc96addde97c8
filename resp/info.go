package resp

import (
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// cmdCommand answers COMMAND and the subcommands redis-cli and client
// libraries ask for; an unknown subcommand is an error, never a reply of
// another shape.
func cmdCommand(c *conn, a [][]byte) {
	if len(a) == 1 {
		names := commandNames()
		c.w.array(len(names))
		for _, n := range names {
			c.commandInfo(commands[n])
		}
		return
	}
	switch strings.ToLower(string(a[1])) {
	case "count":
		if len(a) != 2 {
			break
		}
		c.w.int(int64(len(commands)))
		return
	case "info":
		if len(a) == 2 {
			cmdCommand(c, a[:1])
			return
		}
		c.w.array(len(a) - 2)
		for _, name := range a[2:] {
			if cmd := lookup(name); cmd != nil {
				c.commandInfo(cmd)
			} else {
				c.w.null()
			}
		}
		return
	case "docs":
		cmdDocs(c, a[2:])
		return
	case "list":
		if len(a) != 2 {
			break
		}
		names := commandNames()
		c.w.array(len(names))
		for _, n := range names {
			c.w.bulkString(n)
		}
		return
	case "getkeys":
		if len(a) < 3 {
			break
		}
		cmd := lookup(a[2])
		if cmd == nil || !cmd.arityOK(len(a)-2) {
			c.w.err("ERR Invalid command specified")
			return
		}
		keys := keyArgs(cmd, a[2:])
		if len(keys) == 0 {
			c.w.err("ERR The command has no key arguments")
			return
		}
		c.w.array(len(keys))
		for _, k := range keys {
			c.w.bulk(k)
		}
		return
	}
	c.w.err("ERR unknown subcommand or wrong number of arguments for '" + string(clip(a[1], 64)) + "'. Try COMMAND HELP.")
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// keyArgs returns the key arguments of a command line.
func keyArgs(cmd *command, a [][]byte) [][]byte {
	if cmd.firstKey == 0 {
		return nil
	}
	last := cmd.lastKey
	if last < 0 {
		last = len(a) + last
	}
	var keys [][]byte
	for i := cmd.firstKey; i <= last && i < len(a); i += cmd.step {
		keys = append(keys, a[i])
	}
	return keys
}

// commandInfo writes one command's entry as Redis 7 does: name, arity,
// flags, first key, last key, step, ACL categories, tips, key
// specifications and subcommands.
func (c *conn) commandInfo(cmd *command) {
	c.w.array(10)
	c.w.bulkString(cmd.name)
	c.w.int(int64(cmd.arity))
	if c.w.proto == 3 {
		c.w.header('~', len(cmd.flags))
	} else {
		c.w.array(len(cmd.flags))
	}
	for _, f := range cmd.flags {
		c.w.simple(f)
	}
	c.w.int(int64(cmd.firstKey))
	c.w.int(int64(cmd.lastKey))
	c.w.int(int64(cmd.step))
	for range 4 {
		c.w.array(0)
	}
}

// cmdInfo answers INFO with the server, clients, memory, persistence and
// keyspace sections, as a bulk string of "field:value" lines.
func cmdInfo(c *conn, a [][]byte) {
	want := map[string]bool{}
	for _, s := range a[1:] {
		want[strings.ToLower(string(s))] = true
	}
	all := len(want) == 0 || want["all"] || want["default"] || want["everything"]
	var b strings.Builder
	section := func(name string, lines ...string) {
		if !all && !want[strings.ToLower(name)] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	s := c.s
	port := ""
	if i := strings.LastIndexByte(c.nc.LocalAddr().String(), ':'); i >= 0 {
		port = c.nc.LocalAddr().String()[i+1:]
	}
	up := time.Since(s.start)
	section("Server",
		"redis_version:"+redisVersion,
		"server_name:rendezvous",
		"redis_mode:standalone",
		"os:"+runtime.GOOS+" "+runtime.GOARCH,
		"arch_bits:"+strconv.Itoa(strconv.IntSize),
		"go_version:"+runtime.Version(),
		"process_id:"+strconv.Itoa(os.Getpid()),
		"tcp_port:"+port,
		"uptime_in_seconds:"+strconv.Itoa(int(up/time.Second)),
		"uptime_in_days:"+strconv.Itoa(int(up/(24*time.Hour))),
	)
	section("Clients",
		"connected_clients:"+strconv.Itoa(s.life.Open()),
		"total_connections_received:"+strconv.FormatInt(s.life.Accepted(), 10),
	)
	if all || want["memory"] {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		section("Memory",
			// used_memory is the live heap, the closest to what Redis
			// counts: the bytes the data and the server's state hold.
			"used_memory:"+strconv.FormatUint(m.HeapAlloc, 10),
			"used_memory_human:"+human(m.HeapAlloc),
			"used_memory_rss:"+strconv.FormatUint(m.Sys, 10),
			"maxmemory:0",
		)
	}
	aof := "0"
	if s.cfg.AppendOnly == "yes" {
		aof = "1"
	}
	section("Persistence", "loading:0", "aof_enabled:"+aof)
	keys := s.cfg.Keys()
	var ks []string
	if keys > 0 {
		// Every key expires (unless --max-ttl 0), so expires counts all.
		ks = append(ks, "db0:keys="+strconv.Itoa(keys)+",expires="+strconv.Itoa(keys)+",avg_ttl=0")
	}
	section("Keyspace", ks...)
	c.w.bulkString(b.String())
}

func human(n uint64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + "G"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + "M"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 2, 64) + "K"
	}
	return strconv.FormatUint(n, 10) + "B"
}
