//go:build !linux || journal_write

package persist

import "os"

// Other systems write the journal with write(2), and so does a Linux build
// with the journal_write tag, for the tests that must cover that path.

func allocateFile(*os.File, int64, int64) error { return errNoMmap }

// noSpace is false here: without a preallocated window only a disk too full
// for the journal's magic fails a start, and the error numbers that say so
// differ by system (Plan 9 has none), so such a start still fails.
func noSpace(error) bool { return false }

func mapFile(*os.File, int64, int64) ([]byte, error) { return nil, errNoMmap }

func unmapFile([]byte) error { return nil }

const canPopulate = false

func populateWrite([]byte) error { return errNoPopulate }
