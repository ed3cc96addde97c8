package kvconnect

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"time"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// watchWriteTimeout bounds each frame's write, so a client that stopped
// reading cannot hold the stream forever.
const watchWriteTimeout = 30 * time.Second

var octetStream = []string{"application/octet-stream"}

// watch streams WatchOutput frames: at once one with every key, then one
// after each change of a watched key (several changes may merge into
// one), with a zero-length ping while nothing changes. It ends when the
// client goes, the server stops or the token no longer stands (expired,
// or its access token revoked); clients reconnect.
func (h *Handler) watch(w http.ResponseWriter, r *http.Request, c policy.Caller, body []byte) error {
	keys, err := decodeWatch(body)
	if err != nil {
		return err
	}
	tw, err := h.svc.TupleWatch(c, keys)
	if err != nil {
		return err
	}
	defer tw.Close()
	rc := http.NewResponseController(w)
	// The API's read and write timeouts are for requests, not streams.
	rc.SetReadDeadline(time.Time{})
	w.Header()["Content-Type"] = octetStream
	w.Header()["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(http.StatusOK)
	send := func(msg []byte) bool {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(msg)))
		rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
		if _, err := w.Write(n[:]); err != nil {
			return false
		}
		if _, err := w.Write(msg); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// standing reports whether the stream's token still stands for a
	// caller: a stream ends once its token expires or its access token is
	// revoked, and the client's reconnect then learns why.
	standing := func() bool {
		sub, err := h.tokens.Verify(bearer(r), h.cfg.Now())
		if err == nil {
			_, err = h.caller(r, sub)
		}
		return err == nil
	}
	last := encodeWatchOutput(tw.Read())
	if !send(last) {
		return nil
	}
	for {
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Ping)
		err := tw.Wait(ctx)
		cancel()
		switch {
		case !standing():
			return nil
		case err == nil:
			frame := encodeWatchOutput(tw.Read())
			if bytes.Equal(frame, last) {
				continue // what woke it changed nothing a client sees
			}
			last = frame
			if !send(frame) {
				return nil
			}
		case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
			if !send(nil) {
				return nil
			}
		default:
			// The client went, the server stops, or the watch fell
			// behind: the status is sent already, so the stream ends.
			return nil
		}
	}
}
