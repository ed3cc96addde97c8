//go:build unix

package tlsconf

import (
	"os"
	"syscall"
)

// inode is fi's inode number: a renewal that renames a new file over the
// old one changes it even when size and modification time match.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
