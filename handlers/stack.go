package handlers

// A connection's goroutine starts with a small stack that the runtime
// doubles, by copying, whenever a call needs more. A write goes about ten
// frames deep before the store's lock (handler, policy, store, B-tree,
// journal), and a CPU profile of SETs over fresh connections showed the
// copy there, at the deepest point, as 6 to 9% of the server's time: each
// growth walks and adjusts every frame on the stack. Taking the same
// growth at the top of a write handler, with five frames to adjust instead
// of about ten, cut that share by half and more (see BenchmarkSetNewConn);
// a kept-alive connection keeps its grown stack, so there it costs only
// the zeroing of the pad.

// stackPad is sized so that the growth it causes leaves room for the
// rest of a write: net/http's connection loop uses about 1.3 KiB below
// the handler and the write path about 4 KiB more.
const stackPad = 3 << 10

// preGrow can be turned off by benchmarks, to measure what it buys.
var preGrow = true

// padIndex is read at run time, so the pad cannot be optimised away.
var padIndex int

// growStack makes sure the calling goroutine has a few KiB of stack left
// before it descends into a write. Its result means nothing; returning it
// keeps the pad alive without a shared variable to write.
//
//go:noinline
func growStack() byte {
	var pad [stackPad]byte
	return pad[padIndex&(stackPad-1)]
}
