//go:build !linux

package registrytest

import "net"

// waitSent would wait for the peer to receive what was written to c; this
// platform offers no portable way, so it returns at once.
func waitSent(c *net.TCPConn, stop <-chan struct{}) {}
