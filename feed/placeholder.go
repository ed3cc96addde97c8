package feed

// Feed is a placeholder so dependants compile; DELETE THIS FILE when the
// real Feed type is written.
type Feed struct{}
