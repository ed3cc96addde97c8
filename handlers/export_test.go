package handlers

// SetPreGrow turns growStack on or off for a benchmark and returns a
// function that restores the previous setting.
func SetPreGrow(on bool) (restore func()) {
	old := preGrow
	preGrow = on
	return func() { preGrow = old }
}
