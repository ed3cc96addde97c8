//go:build !unix

package persist

import "os"

// lockFile does not lock elsewhere: only Unix systems have flock(2), and
// the server is run on them. The lock file still records the PID.
func lockFile(*os.File) (held bool, err error) { return false, nil }
