//go:build linux && !journal_write

package persist

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// allocateFile reserves disk blocks for [off, off+n) of f, growing the file
// to cover it. Filesystems without fallocate report errNoMmap: a sparse
// file would turn a full disk into a SIGBUS.
func allocateFile(f *os.File, off, n int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, off, n)
		switch {
		case err == nil:
			return nil
		case err == syscall.EINTR:
			continue
		case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
			return fmt.Errorf("%w: fallocate: %v", errNoMmap, err)
		}
		return fmt.Errorf("fallocate: %w", err)
	}
}

// noSpace reports whether err says the disk or the user's quota is full,
// which passes once space is freed, unlike a permission or I/O error.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func mapFile(f *os.File, off, n int64) ([]byte, error) {
	data, err := syscall.Mmap(int(f.Fd()), off, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		if errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("%w: mmap: %v", errNoMmap, err)
		}
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return data, nil
}

func unmapFile(data []byte) error { return syscall.Munmap(data) }

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): fault the pages
// of a range in as if written, without changing their contents.
const madvPopulateWrite = 23

// canPopulate says whether populateWrite may work here.
const canPopulate = true

// populateWrite faults data in for writing. Kernels before 5.14 answer
// errNoPopulate.
func populateWrite(data []byte) error {
	err := syscall.Madvise(data, madvPopulateWrite)
	if err == syscall.EINVAL {
		return errNoPopulate
	}
	return err
}
