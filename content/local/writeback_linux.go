//go:build linux

package local

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeback asks the kernel to start writing bytes [from, to) of f to disk
// without waiting for them, then waits until bytes [prev, from), whose
// writeback an earlier call started, are on disk, and drops them from the
// page cache (see dropCacheRange). So the dirty bytes of a file stay under two
// windows, the fsync at commit has little left to do, and a blob holds at
// most two windows of page cache while it is written. It reports false
// when the file system refuses: the caller stops asking, and relies on the
// fsync alone. Write errors are not reported here: the fsync at commit
// reports them.
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
			if unix.SyncFileRange(int(fd), prev, from-prev,
				unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER) == nil {
				_ = unix.Fadvise(int(fd), prev, from-prev, unix.FADV_DONTNEED)
			}
		}
	})
	return ok && cerr == nil
}

// dropCacheRange drops bytes [from, to) of f from the page cache, or from
// from to the end when to is 0; dirty pages stay. A blob is written once
// and read seldom (an unpack reads each layer once), so its pages would
// only crowd the cache, and count against the memory cgroup of the process
// that pulls; the pages freed are the next ones the writes reuse. Errors
// are ignored: it is advice.
func dropCacheRange(f *os.File, from, to int64) {
	n := int64(0)
	if to > 0 {
		n = to - from
	}
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.Fadvise(int(fd), from, n, unix.FADV_DONTNEED) })
	}
}
