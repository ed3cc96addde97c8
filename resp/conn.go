package resp

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// flushAt is how many bytes of replies a connection holds before it
// writes them, even in the middle of a pipelined batch.
const flushAt = 64 << 10

// conn is one client connection and its session state.
type conn struct {
	s      *Server
	nc     net.Conn
	rd     *Reader
	caller policy.Caller
	id     int64

	// mu guards w and writes to nc: a subscribed connection's messages
	// are written by its watch goroutine too.
	mu sync.Mutex
	w  writer

	authed  bool // no verifier, or the connection proved an identity
	byToken bool // AUTH proved the identity: the certificate no longer counts
	// cert is the TLS state of a connection whose client certificate was
	// verified, when Config.CertIdentity is set; certID the identity it
	// named when last looked up.
	cert    *tls.ConnectionState
	certID  *policy.Identity
	name    string
	lib     string
	secret  string // the owner secret of this connection's writes
	closing bool   // QUIT: close after the reply

	// MULTI state.
	multi      bool
	queued     [][][]byte
	queuedSize int
	queueErr   bool
	watched    []policy.Watched

	sub *subscription // nil until the first (P)SUBSCRIBE

	// readBy and writeBy are the deadlines last set on nc (writeBy
	// guarded by mu). A deadline is moved only once it is due within
	// 15/16 of its timeout, not on every command: setting one costs a
	// clock read and a timer update, together some 5% of a SET at
	// redis-benchmark -P 1. So an idle connection is closed between 15/16
	// of IdleTimeout and IdleTimeout after its last command.
	readBy, writeBy time.Time
}

// dueBefore reports whether deadline d is due within 15/16 of timeout
// from now, and so is to be moved to now+timeout.
func dueBefore(d, now time.Time, timeout time.Duration) bool {
	return d.Sub(now) < timeout-timeout/16
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, rd: NewReader(nc, s.limits), id: s.nextID.Add(1)}
	c.w.proto = 2
	if tc, ok := nc.(*tls.Conn); ok && s.cfg.CertIdentity != nil {
		if cs := tc.ConnectionState(); len(cs.VerifiedChains) > 0 {
			c.cert = &cs
		}
	}
	// Anonymous until AUTH (or HELLO AUTH) proves an identity; without a
	// verifier every caller stays anonymous, with full access.
	c.deauthenticate()
	return c
}

func (c *conn) serve() {
	defer c.nc.Close()
	defer func() {
		c.mu.Lock()
		c.unsubscribeAll()
		c.mu.Unlock()
	}()
	for {
		batch := c.rd.Buffered() == 0 // the next command starts a batch
		if batch {
			// One clock reading serves both deadlines: at -P 1 a batch is
			// a single command, and each reading is a visible share of it.
			now := time.Now()
			if !c.flushAt(now) || c.closing {
				return
			}
			if c.subscribed() {
				// A subscriber only listens: no idle timeout.
				if !c.readBy.IsZero() {
					c.readBy = time.Time{}
					c.nc.SetReadDeadline(c.readBy)
				}
			} else if c.readBy.IsZero() || dueBefore(c.readBy, now, c.s.cfg.IdleTimeout) {
				c.readBy = now.Add(c.s.cfg.IdleTimeout)
				c.nc.SetReadDeadline(c.readBy)
			}
			if c.s.life.ShuttingDown() {
				return
			}
		}
		args, err := c.rd.ReadCommand()
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) {
				c.mu.Lock()
				c.w.err("ERR " + pe.Error())
				c.mu.Unlock()
			}
			// The replies to the commands of a batch cut short (by a
			// shutdown's deadline, a frame left half sent) still go out.
			c.flush()
			return
		}
		c.mu.Lock()
		if batch && c.cert != nil {
			c.certify()
		}
		c.dispatch(args)
		big := len(c.w.b) >= flushAt
		c.mu.Unlock()
		if c.closing || big {
			if !c.flush() || c.closing {
				return
			}
		}
	}
}

// flush writes the replies held; false when the client is gone.
func (c *conn) flush() bool { return c.flushAt(time.Now()) }

// flushAt is flush with the clock already read.
func (c *conn) flushAt(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLockedAt(now)
}

func (c *conn) flushLocked() bool { return c.flushLockedAt(time.Now()) }

func (c *conn) flushLockedAt(now time.Time) bool {
	if len(c.w.b) == 0 {
		return true
	}
	if dueBefore(c.writeBy, now, c.s.cfg.WriteTimeout) {
		c.writeBy = now.Add(c.s.cfg.WriteTimeout)
		c.nc.SetWriteDeadline(c.writeBy)
	}
	_, err := c.nc.Write(c.w.b)
	if cap(c.w.b) > 1<<20 {
		c.w.b = nil // a huge batch's buffer is not kept for the connection's life
	} else {
		c.w.b = c.w.b[:0]
	}
	return err == nil
}

// dispatch runs or queues one command, writing its reply.
func (c *conn) dispatch(args [][]byte) {
	cmd := lookup(args[0])
	if cmd == nil {
		c.queueFailed()
		c.w.err(unknownCommand(args))
		return
	}
	if !c.authed && !cmd.beforeAuth {
		c.queueFailed()
		c.w.err(errNoAuth)
		return
	}
	if !cmd.arityOK(len(args)) {
		c.queueFailed()
		c.w.err("ERR wrong number of arguments for '" + cmd.name + "' command")
		return
	}
	if c.subscribed() && c.w.proto == 2 && !cmd.subscribedOK { // RESP3 carries replies and messages apart
		c.w.err("ERR Can't execute '" + cmd.name + "': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
		return
	}
	if c.multi && !cmd.control {
		c.enqueue(cmd, args)
		return
	}
	cmd.run(c, args)
}

// unknownCommand words the reply to a command no table has, as Redis does.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(clip(args[0], 128))
	b.WriteString("', with args beginning with: ")
	for _, a := range args[1:] {
		if b.Len() > 256 {
			break
		}
		b.WriteByte('\'')
		b.Write(clip(a, 128))
		b.WriteString("' ")
	}
	return b.String()
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// queueFailed marks an open MULTI as failed, so its EXEC answers
// EXECABORT, as a command refused while queuing does in Redis.
func (c *conn) queueFailed() {
	if c.multi {
		c.queueErr = true
	}
}

// enqueue keeps a copy of a command for EXEC.
func (c *conn) enqueue(cmd *command, args [][]byte) {
	if cmd.sim == nil {
		c.queueErr = true
		c.w.err("ERR Command not allowed inside a transaction")
		return
	}
	size := 0
	for _, a := range args {
		size += len(a)
	}
	if len(c.queued) >= 4*c.s.svc.BatchLimit() || c.queuedSize+size > 2*c.s.limits.MaxRequest {
		c.queueErr = true
		c.w.err("ERR " + policy.KindBadRequest.Code() + ": transaction too large: at most " +
			itoa(4*c.s.svc.BatchLimit()) + " commands")
		return
	}
	buf := make([]byte, 0, size)
	cp := make([][]byte, len(args))
	for i, a := range args {
		buf = append(buf, a...)
		cp[i] = buf[len(buf)-len(a):]
	}
	c.queued = append(c.queued, cp)
	c.queuedSize += size
	c.w.simple("QUEUED")
}

// runData runs a data command on its own: a read-only one with plain
// reads, one that writes through policy's Atomic, so that what it read
// still holds when its writes commit.
func (c *conn) runData(cmd *command, args [][]byte) {
	reads, writes := cmd.cost(args)
	if writes == 0 {
		var t *tx
		t = c.newTx(func(key string) (kv.Item, bool) {
			it, err := c.s.svc.Get(c.caller, key)
			if err != nil {
				var pe *policy.Error
				if !errors.As(err, &pe) || pe.Kind != policy.KindNotFound {
					if t.fail == nil {
						t.fail = err
					}
				}
				return kv.Item{}, false
			}
			return it, true
		})
		mark := len(c.w.b)
		cmd.sim(t, args)
		if t.fail != nil {
			c.w.b = c.w.b[:mark]
			c.w.err(errorLine(t.fail))
		}
		return
	}
	mark := len(c.w.b)
	_, err := c.s.svc.Atomic(c.caller, policy.AtomicRequest{Reads: reads, Writes: writes,
		Decide: func(read func(string) (kv.Item, bool)) ([]policy.AtomicOp, error) {
			c.w.b = c.w.b[:mark]
			t := c.newTx(read)
			cmd.sim(t, args)
			return t.ops(), nil
		}})
	if err != nil {
		c.w.b = c.w.b[:mark]
		c.w.err(errorLine(err))
	}
}

func cmdMulti(c *conn, args [][]byte) {
	if c.multi {
		c.w.err("ERR MULTI calls can not be nested")
		return
	}
	c.multi = true
	c.w.simple("OK")
}

func (c *conn) endMulti() {
	c.multi, c.queued, c.queuedSize, c.queueErr = false, nil, 0, false
	c.watched = nil
}

func cmdDiscard(c *conn, args [][]byte) {
	if !c.multi {
		c.w.err("ERR DISCARD without MULTI")
		return
	}
	c.endMulti()
	c.w.simple("OK")
}

func cmdExec(c *conn, args [][]byte) {
	if !c.multi {
		c.w.err("ERR EXEC without MULTI")
		return
	}
	queued, watched, failed := c.queued, c.watched, c.queueErr
	c.endMulti()
	if failed {
		c.w.err("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	reads, writes := 0, 0
	cmds := make([]*command, len(queued))
	for i, q := range queued {
		cmds[i] = lookup(q[0])
		r, w := cmds[i].cost(q)
		reads, writes = reads+r, writes+w
	}
	mark := len(c.w.b)
	_, err := c.s.svc.Atomic(c.caller, policy.AtomicRequest{Reads: reads, Writes: writes, Watch: watched,
		Decide: func(read func(string) (kv.Item, bool)) ([]policy.AtomicOp, error) {
			c.w.b = c.w.b[:mark]
			c.w.array(len(queued))
			t := c.newTx(read)
			for i, q := range queued {
				cmds[i].sim(t, q)
			}
			return t.ops(), nil
		}})
	if err != nil {
		c.w.b = c.w.b[:mark]
		var pe *policy.Error
		if errors.As(err, &pe) && pe.Kind == policy.KindCheckFailed {
			c.w.nullArray() // a watched key changed
			return
		}
		c.w.err(errorLine(err))
	}
}

func cmdWatch(c *conn, args [][]byte) {
	if c.multi {
		c.w.err("ERR WATCH inside MULTI is not allowed")
		return
	}
	if len(c.watched)+len(args)-1 > c.s.svc.BatchLimit() {
		c.w.err("ERR " + policy.KindBadRequest.Code() + ": too many watched keys: at most " + itoa(c.s.svc.BatchLimit()))
		return
	}
	for _, a := range args[1:] {
		key := string(a)
		it, err := c.s.svc.Get(c.caller, key)
		var pe *policy.Error
		if err != nil && !(errors.As(err, &pe) && pe.Kind == policy.KindNotFound) {
			c.w.err(errorLine(err))
			return
		}
		c.watched = append(c.watched, policy.Watched{Key: key, Version: it.Version})
	}
	c.w.simple("OK")
}

func cmdUnwatch(c *conn, args [][]byte) {
	c.watched = nil
	c.w.simple("OK")
}
