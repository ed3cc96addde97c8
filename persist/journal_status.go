package persist

// Err returns the write error that makes the journal refuse new records,
// or nil while it is healthy.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}
