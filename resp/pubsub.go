package resp

// subscription is a connection's keyspace-notification subscriptions.
type subscription struct {
	channels map[string]bool
	patterns map[string]bool
}

func (c *conn) subscribed() bool {
	return c.sub != nil && len(c.sub.channels)+len(c.sub.patterns) > 0
}

func (c *conn) unsubscribeAll() {}
