//go:build linux

package local

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeback asks the kernel to start writing bytes [from, to) of f to disk
// without waiting for them, then waits until bytes [prev, from), whose
// writeback an earlier call started, are on disk. So the dirty bytes of a
// file stay under two windows, and the fsync at commit has little left to
// do. It reports false when the file system refuses: the caller stops
// asking, and relies on the fsync alone. Write errors are not reported
// here: the fsync at commit reports them.
func writeback(f *os.File, prev, from, to int64) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := true
	cerr := rc.Control(func(fd uintptr) {
		if err := unix.SyncFileRange(int(fd), from, to-from, unix.SYNC_FILE_RANGE_WRITE); err != nil {
			ok = false
			return
		}
		if from > prev {
			_ = unix.SyncFileRange(int(fd), prev, from-prev,
				unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		}
	})
	return ok && cerr == nil
}
