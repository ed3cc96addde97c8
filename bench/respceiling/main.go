// Command respceiling is the Go ceiling that bench/resp.sh measures beside
// rendezvous and redis-server: the least a Go server in the usual shape (a
// goroutine per connection, buffered reads, one write per batch of
// pipelined commands) must do to answer redis-benchmark's SET and GET. It
// keeps values in a map under one RWMutex and nothing else: no TTL, no
// limits beyond a bulk string's size, no auth, no journal, no change feed.
// It reads each argument into a slice of its own, as a plain reader does
// (rendezvous's reader reuses one buffer), so it is a ceiling in what it
// leaves out, not the fastest possible parser.
//
// What it answers: SET key value (+OK), GET key (the value, or a null
// bulk), PING (+PONG), CONFIG GET names (each with an empty value:
// redis-benchmark asks for save and appendonly), anything else +OK. A
// malformed frame closes the connection.
//
// It logs `msg=listening addr=HOST:PORT` as rendezvous does, so -addr
// 127.0.0.1:0 picks a free port that a script can read back. With
// -tls-cert and -tls-key it serves TLS only, with crypto/tls's defaults,
// as the ceiling of bench/resp.sh's TLS=1 runs.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
)

// maxBulk matches rendezvous's default --max-value-size.
const maxBulk = 64 << 10

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	certFile := flag.String("tls-cert", "", "serve TLS with this certificate (PEM)")
	keyFile := flag.String("tls-key", "", "and this key (PEM)")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		slog.Error("listen", "err", err)
		os.Exit(1)
	}
	if *certFile != "" || *keyFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			slog.Error("tls", "err", err)
			os.Exit(1)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	slog.Info("listening", "addr", ln.Addr().String())
	var st store
	st.m = map[string][]byte{}
	for {
		nc, err := ln.Accept()
		if err != nil {
			slog.Error("accept", "err", err)
			os.Exit(1)
		}
		go serve(nc, &st)
	}
}

type store struct {
	mu sync.RWMutex
	m  map[string][]byte
}

var errFrame = errors.New("malformed frame")

func serve(nc net.Conn, st *store) {
	defer nc.Close()
	rd := bufio.NewReaderSize(nc, 16<<10)
	var out []byte
	var args [][]byte
	for {
		var err error
		args, err = readCommand(rd, args[:0])
		if err != nil {
			return
		}
		out = answer(out, args, st)
		// The replies of a pipelined batch go out together, once the
		// batch read is used up.
		if rd.Buffered() == 0 {
			if _, err := nc.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

func answer(out []byte, args [][]byte, st *store) []byte {
	switch {
	case len(args) == 3 && bytes.EqualFold(args[0], []byte("SET")):
		st.mu.Lock()
		st.m[string(args[1])] = bytes.Clone(args[2])
		st.mu.Unlock()
		return append(out, "+OK\r\n"...)
	case len(args) == 2 && bytes.EqualFold(args[0], []byte("GET")):
		st.mu.RLock()
		v, ok := st.m[string(args[1])]
		st.mu.RUnlock()
		if !ok {
			return append(out, "$-1\r\n"...)
		}
		return appendBulk(out, v)
	case len(args) >= 1 && bytes.EqualFold(args[0], []byte("PING")):
		return append(out, "+PONG\r\n"...)
	case len(args) >= 3 && bytes.EqualFold(args[0], []byte("CONFIG")):
		// Each name asked for with an empty value: no save points, no
		// append-only file.
		out = append(out, '*')
		out = strconv.AppendInt(out, int64(2*(len(args)-2)), 10)
		out = append(out, "\r\n"...)
		for _, name := range args[2:] {
			out = appendBulk(out, name)
			out = append(out, "$0\r\n\r\n"...)
		}
		return out
	}
	return append(out, "+OK\r\n"...)
}

func appendBulk(out, v []byte) []byte {
	out = append(out, '$')
	out = strconv.AppendInt(out, int64(len(v)), 10)
	out = append(out, "\r\n"...)
	out = append(out, v...)
	return append(out, "\r\n"...)
}

// readCommand reads one array of bulk strings, or an inline command (a
// line of words, as redis-cli's PING typed by hand). The slices point into
// rd's buffer or fresh copies, valid until the next call.
func readCommand(rd *bufio.Reader, args [][]byte) ([][]byte, error) {
	line, err := readLine(rd)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 || line[0] != '*' {
		return append(args, bytes.Fields(bytes.Clone(line))...), nil
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 1 || n > 1024 {
		return nil, errFrame
	}
	for range n {
		line, err := readLine(rd)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 || line[0] != '$' {
			return nil, errFrame
		}
		size, err := strconv.Atoi(string(line[1:]))
		if err != nil || size < 0 || size > maxBulk {
			return nil, errFrame
		}
		b := make([]byte, size+2)
		if _, err := io.ReadFull(rd, b); err != nil {
			return nil, err
		}
		args = append(args, b[:size])
	}
	return args, nil
}

func readLine(rd *bufio.Reader) ([]byte, error) {
	line, err := rd.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(line[:len(line)-1], []byte("\r")), nil
}
