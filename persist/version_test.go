package persist

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// The store's counter can be ahead of every item it still holds (the newest
// keys were deleted); the snapshot must carry the counter, not just the
// items' maximum, or versions would repeat after a restart.
func TestWriteFileVersionKeepsCounterAboveItems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rendezvous.db")
	items := []ttlstore.Item{{Key: "a", Value: []byte("1"), Version: 3}, {Key: "b", Value: []byte("2"), Version: 5}}
	_, err := WriteFileVersion(path, 42, iterateOver(items))
	require.NoError(t, err)
	var got []ttlstore.Item
	st, err := ReadFile(path, collect(&got))
	require.NoError(t, err)
	assert.Equal(t, uint64(42), st.MaxVersion)
	assert.Len(t, got, 2)

	// A counter below the items' maximum does not lower it.
	_, err = WriteFileVersion(path, 1, iterateOver(items))
	require.NoError(t, err)
	st, err = ReadFile(path, collect(&got))
	require.NoError(t, err)
	assert.Equal(t, uint64(5), st.MaxVersion)
}

func TestWriteFileRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rendezvous.db")
	stale := filepath.Join(dir, ".rendezvous.db.tmp-123456")
	require.NoError(t, os.WriteFile(stale, []byte("half a snapshot"), 0o600))
	other := filepath.Join(dir, "unrelated.tmp")
	require.NoError(t, os.WriteFile(other, []byte("keep me"), 0o600))

	_, err := WriteFile(path, iterateOver(nil))
	require.NoError(t, err)
	_, err = os.Stat(stale)
	assert.True(t, os.IsNotExist(err), "a crashed writer's temp file is removed")
	_, err = os.Stat(other)
	assert.NoError(t, err, "files that are not our temp files stay")
}
