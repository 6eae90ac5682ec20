package registrytest

import (
	"net"
	"syscall"
	"time"
	"unsafe"
)

// waitSent waits until the kernel has sent everything written to c and the
// peer has acknowledged it (the SIOCOUTQ queue is empty), or until stop
// is closed. A peer that closes its end empties the queue too.
func waitSent(c *net.TCPConn, stop <-chan struct{}) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	pause := 100 * time.Microsecond
	for {
		var queued int32
		var errno syscall.Errno
		if err := raw.Control(func(fd uintptr) {
			_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&queued)))
		}); err != nil || errno != 0 || queued == 0 {
			return
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return
		}
		pause = min(2*pause, 20*time.Millisecond)
	}
}
