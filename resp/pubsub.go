package resp

import (
	"context"
	"errors"
	"sort"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// The channel prefixes of Redis's keyspace notifications, database 0.
const (
	keyspacePrefix = "__keyspace@0__:"
	keyeventPrefix = "__keyevent@0__:"
)

// subscription is a connection's channels and patterns, and the watch of
// the change feed that feeds them. Its fields are guarded by the
// connection's mu.
type subscription struct {
	channels map[string]bool
	patterns map[string]bool
	watcher  *policy.Watcher
}

func (c *conn) subscribed() bool {
	return c.sub != nil && len(c.sub.channels)+len(c.sub.patterns) > 0
}

func (sub *subscription) count() int { return len(sub.channels) + len(sub.patterns) }

// unsubscribeAll ends the connection's subscriptions and their watch;
// the caller holds c.mu or is the connection's last user.
func (c *conn) unsubscribeAll() {
	if c.sub != nil {
		c.sub.watcher.Close()
		c.sub = nil
	}
}

// ensureSub opens the connection's watch on its first subscription: one
// watch of every key, which counts against the watcher caps like an HTTP
// watch and costs a read once.
func (c *conn) ensureSub() bool {
	if c.sub != nil {
		return true
	}
	w, err := c.s.svc.Watch(c.caller, "", 0, false)
	if err != nil {
		c.w.err(errorLine(err))
		return false
	}
	c.sub = &subscription{channels: map[string]bool{}, patterns: map[string]bool{}, watcher: w}
	go c.pump(c.sub)
	return true
}

func cmdSubscribe(c *conn, a [][]byte)  { c.subscribe(a, false) }
func cmdPSubscribe(c *conn, a [][]byte) { c.subscribe(a, true) }

func (c *conn) subscribe(a [][]byte, pattern bool) {
	if c.multi {
		c.w.err("ERR Command not allowed inside a transaction")
		return
	}
	if !c.ensureSub() {
		return
	}
	set, kind := c.sub.channels, "subscribe"
	if pattern {
		set, kind = c.sub.patterns, "psubscribe"
	}
	for _, ch := range a[1:] {
		if c.sub.count() >= maxSubscriptions && !set[string(ch)] {
			c.w.err("ERR " + policy.KindBadRequest.Code() + ": at most " + itoa(maxSubscriptions) + " channels and patterns per connection")
			continue
		}
		set[string(ch)] = true
		c.w.push(3)
		c.w.bulkString(kind)
		c.w.bulk(ch)
		c.w.int(int64(c.sub.count()))
	}
}

// maxSubscriptions bounds the channels and patterns of one connection,
// and so the matching each event costs it.
const maxSubscriptions = 100

func cmdUnsubscribe(c *conn, a [][]byte)  { c.unsubscribe(a, false) }
func cmdPUnsubscribe(c *conn, a [][]byte) { c.unsubscribe(a, true) }

func (c *conn) unsubscribe(a [][]byte, pattern bool) {
	kind := "unsubscribe"
	if pattern {
		kind = "punsubscribe"
	}
	var set map[string]bool
	if c.sub != nil {
		set = c.sub.channels
		if pattern {
			set = c.sub.patterns
		}
	}
	names := make([]string, 0, len(a)-1)
	for _, ch := range a[1:] {
		names = append(names, string(ch))
	}
	if len(names) == 0 {
		for ch := range set {
			names = append(names, ch)
		}
		sort.Strings(names)
	}
	if len(names) == 0 {
		c.w.push(3)
		c.w.bulkString(kind)
		c.w.null()
		c.w.int(0)
	}
	for _, ch := range names {
		delete(set, ch)
		n := 0
		if c.sub != nil {
			n = c.sub.count()
		}
		c.w.push(3)
		c.w.bulkString(kind)
		c.w.bulkString(ch)
		c.w.int(int64(n))
	}
	if c.sub != nil && c.sub.count() == 0 {
		c.unsubscribeAll()
	}
}

// eventName is the notification of a change, as Redis names its events:
// a set's from the cause its writer gave it, whatever protocol it spoke
// (HTTP's writes are always "set").
func eventName(ev *kv.Event) string {
	switch ev.Op {
	case kv.OpSet:
		switch ev.Cause {
		case kv.CauseExpire:
			return "expire"
		case kv.CausePersist:
			return "persist"
		case kv.CauseIncr:
			return "incrby"
		case kv.CauseAppend:
			return "append"
		}
		return "set"
	case kv.OpDelete:
		return "del"
	case kv.OpExpire:
		return "expired"
	}
	return ev.Op.String()
}

// pump delivers the watch's events as messages until the subscription
// ends. A subscriber too slow for the feed is disconnected, as Redis
// disconnects a client over its output buffer limit: writers never wait
// for it.
func (c *conn) pump(sub *subscription) {
	for {
		step, err := sub.watcher.Next(context.Background())
		c.mu.Lock()
		if c.sub != sub { // unsubscribed meanwhile
			c.mu.Unlock()
			return
		}
		switch {
		case err != nil:
			if !errors.Is(err, policy.ErrWatcherClosed) {
				c.w.err(errorLine(err)) // the server is stopping
				c.flushLocked()
				c.nc.Close()
			}
			c.mu.Unlock()
			return
		case step.Kind == policy.WatchDropped:
			c.w.err("ERR " + policy.KindTooManyWatches.Code() + ": subscriber too slow for the change feed; disconnected")
			c.flushLocked()
			c.nc.Close()
			c.mu.Unlock()
			return
		}
		for i := range step.Events {
			ev := &step.Events[i]
			name := eventName(ev)
			c.notify(sub, keyspacePrefix+ev.Key, name)
			c.notify(sub, keyeventPrefix+name, ev.Key)
		}
		ok := c.flushLocked()
		c.mu.Unlock()
		if !ok {
			c.nc.Close()
			return
		}
	}
}

// notify writes a message on channel to the subscription's channels and
// patterns that match it.
func (c *conn) notify(sub *subscription, channel, payload string) {
	if sub.channels[channel] {
		c.w.push(3)
		c.w.bulkString("message")
		c.w.bulkString(channel)
		c.w.bulkString(payload)
	}
	for p := range sub.patterns {
		if globMatch([]byte(p), []byte(channel)) {
			c.w.push(4)
			c.w.bulkString("pmessage")
			c.w.bulkString(p)
			c.w.bulkString(channel)
			c.w.bulkString(payload)
		}
	}
}
