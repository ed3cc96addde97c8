package persist

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// LockSuffix is appended to the snapshot path to name the lock file.
const LockSuffix = ".lock"

// Lock is the exclusive claim of one process on a snapshot path and the
// journal generations beside it. Two servers on one path would each cut
// and rewrite files the other has mapped and relies on: acknowledged
// writes vanish, and the mapped journal of one faults when the other
// truncates it.
type Lock struct {
	f    *os.File
	path string
}

// LockedError says that another holder has the lock.
type LockedError struct {
	// LockFile is the lock file's path.
	LockFile string
	// PID is the process that wrote the lock file last, or 0 when it has
	// not written its PID yet. It may be this process, for a second
	// server embedded beside the first.
	PID int
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("%s is held by process %d", e.LockFile, e.PID)
	}
	return fmt.Sprintf("%s is held by another process", e.LockFile)
}

// AcquireLock takes the lock of the snapshot path path, creating the lock
// file beside it, and writes this process's ID into it. It fails at once
// with a *LockedError while another Lock (in any process, this one
// included) holds it. The lock is held until Release, or until the
// process ends, whichever comes first, so a crash never leaves it held.
//
// The lock file is left behind on release: removing it would let a new
// holder lock a fresh file while a third opener still waits on the old one.
func AcquireLock(path string) (*Lock, error) {
	name := path + LockSuffix
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	held, err := lockFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock file %s: %w", name, err)
	}
	if held {
		raw, _ := os.ReadFile(name)
		pid, _ := strconv.Atoi(string(bytes.TrimSpace(raw)))
		f.Close()
		return nil, &LockedError{LockFile: name, PID: pid}
	}
	// The PID is only for the message another starter prints, so failing
	// to record it is not worth refusing to start over.
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, path: name}, nil
}

// Release gives the lock up. It may be called more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the lock
	l.f = nil
	return err
}
