package server_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/server"
)

// Both groupings are refused by kv.Grouping's one range check, with its
// reason, and the refusal names the length that is out of range.
func TestValidateGroupings(t *testing.T) {
	for _, bad := range []kv.Grouping{{V4: 0, V6: 64}, {V4: 33, V6: 64}, {V4: 24, V6: 0}, {V4: 24, V6: 129}} {
		want := bad.Validate()
		var ge *kv.GroupingError
		require.ErrorAs(t, want, &ge, "%+v", bad)
		for field, set := range map[string]func(*server.Config){
			"ClientGrouping":  func(c *server.Config) { c.ClientGrouping = bad },
			"NetworkGrouping": func(c *server.Config) { c.NetworkGrouping = bad },
		} {
			cfg := server.DefaultConfig()
			set(&cfg)
			err := cfg.Validate()
			var ce *server.ConfigError
			require.ErrorAs(t, err, &ce, "%s %+v", field, bad)
			assert.Equal(t, field+"."+ge.Field, ce.Field)
			assert.Equal(t, ge.Bits, ce.Value)
			assert.ErrorIs(t, err, ge.Err, "kv's reason")
			assert.Equal(t, fmt.Sprintf("server: invalid %s.%s %d: %v", field, ge.Field, ge.Bits, ge.Err), err.Error())
		}
	}
	cfg := server.DefaultConfig()
	cfg.ClientGrouping, cfg.NetworkGrouping = kv.Grouping{V4: 1, V6: 1}, kv.Grouping{V4: 32, V6: 128}
	assert.NoError(t, cfg.Validate(), "every length in range is accepted")
}
