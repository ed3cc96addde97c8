package resp

import "testing"

// Every command has its documentation, and every documented name is a
// command.
func TestDocsCoverCommands(t *testing.T) {
	for name := range commands {
		if _, ok := docs[name]; !ok {
			t.Errorf("%s has no entry in docs", name)
		}
	}
	for name := range docs {
		if commands[name] == nil {
			t.Errorf("docs describe %s, which is no command", name)
		}
	}
}
