//go:build unix

package server

import "syscall"

// openFileLimit returns the process's soft limit of open files, which the
// Go runtime has already raised to the hard limit at start-up.
func openFileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	// Cur is a uint64 on most systems and an int64 on FreeBSD, where a
	// negative value means unlimited.
	if int64(r.Cur) < 0 {
		return 0, false
	}
	return uint64(r.Cur), true
}
