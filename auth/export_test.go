package auth

import "time"

// SetClock replaces the clock c reads token lifetimes with.
func SetClock(c *Client, now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}
