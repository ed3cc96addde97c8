//go:build !unix

package server

// openFileLimit reports no limit where the system has none to read.
func openFileLimit() (uint64, bool) { return 0, false }
