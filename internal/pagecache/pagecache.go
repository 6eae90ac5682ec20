// Package pagecache keeps written files out of the page cache: it starts
// the writeback of a range, waits for it, and drops the range, for
// content/local's blobs and unpack's large files. A file written once and
// read seldom would otherwise crowd the cache, count against the memory
// cgroup of the process that wrote it, and, where the system is slow to
// hand out pages it has not used lately (a VM whose balloon takes free
// memory back), make every new write cost more. It also tells how much of
// a file is in the cache ([Resident]), for tests.
//
// Everything here is advice to the kernel: outside Linux it does nothing,
// and [StartWriteback] reports that, so that callers stop asking.
package pagecache

import "errors"

// ErrUnsupported is returned where the system offers no such control
// (outside Linux), or the file system refuses it.
var ErrUnsupported = errors.New("page cache control: not supported here")
