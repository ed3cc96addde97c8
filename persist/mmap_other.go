//go:build !linux

package persist

import "os"

// Other systems write the journal with write(2).

func allocateFile(*os.File, int64, int64) error { return errNoMmap }

func mapFile(*os.File, int64, int64) ([]byte, error) { return nil, errNoMmap }

func unmapFile([]byte) error { return nil }

const canPopulate = false

func populateWrite([]byte) error { return errNoPopulate }
