package local

import (
	"os"

	"github.com/pullkit/pullkit/internal/pagecache"
)

// writeback asks the kernel to start writing bytes [from, to) of f to disk
// without waiting for them, then waits until bytes [prev, from), whose
// writeback an earlier call started, are on disk, and drops them from the
// page cache. So the dirty bytes of a file stay under two windows, the
// fsync at commit has little left to do, and a blob holds at most two
// windows of page cache while it is written. It reports false when the
// file system refuses (or the system has no such control): the caller
// stops asking, and relies on the fsync alone. Write errors are not
// reported here: the fsync at commit reports them.
func writeback(f *os.File, prev, from, to int64) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := true
	cerr := rc.Control(func(fd uintptr) {
		if pagecache.StartWriteback(fd, from, to-from) != nil {
			ok = false
			return
		}
		if from > prev {
			pagecache.WaitAndDrop(fd, prev, from-prev)
		}
	})
	return ok && cerr == nil
}

// dropCacheRange drops bytes [from, to) of f from the page cache, or from
// from to the end when to is 0; dirty pages stay. A blob is written once
// and read seldom (an unpack reads each layer once), so its pages would
// only crowd the cache, and count against the memory cgroup of the process
// that pulls; the pages freed are the next ones the writes reuse.
func dropCacheRange(f *os.File, from, to int64) {
	n := int64(0)
	if to > 0 {
		n = to - from
	}
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { pagecache.Drop(fd, from, n) })
	}
}
