package pagecache

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// StartWriteback starts writing bytes [off, off+n) of the file fd to disk
// without waiting for them (sync_file_range(2), SYNC_FILE_RANGE_WRITE). n
// == 0 means to the end of the file. An error means the file system
// refuses: later calls for the file will too.
func StartWriteback(fd uintptr, off, n int64) error {
	return retry(func() error { return unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE) })
}

// WaitAndDrop waits until bytes [off, off+n) of fd are on disk, starting
// the writeback of any not yet started, then drops them from the page
// cache. n == 0 means to the end of the file. Errors are ignored: write
// errors surface at fsync, and the rest is advice.
func WaitAndDrop(fd uintptr, off, n int64) {
	const wait = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
	if retry(func() error { return unix.SyncFileRange(int(fd), off, n, wait) }) == nil {
		Drop(fd, off, n)
	}
}

// Drop drops bytes [off, off+n) of fd from the page cache, or from off to
// the end when n == 0 (posix_fadvise(2), POSIX_FADV_DONTNEED). Dirty pages
// stay. It is advice: errors are ignored.
func Drop(fd uintptr, off, n int64) {
	_ = unix.Fadvise(int(fd), off, n, unix.FADV_DONTNEED)
}

func retry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// Resident returns how many bytes of the file at path are in the page
// cache, from mincore(2) on a read-only mapping of it. Reading it this way
// does not bring pages in.
func Resident(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0, err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, &os.PathError{Op: "mmap", Path: path, Err: err}
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return 0, &os.PathError{Op: "mincore", Path: path, Err: errno}
	}
	var n int64
	for i, v := range vec {
		if v&1 != 0 {
			n += min(int64(page), fi.Size()-int64(i)*int64(page))
		}
	}
	return n, nil
}

// AlwaysCached reports whether dir's file system keeps files in the page
// cache for good (tmpfs), where dropping them does nothing.
func AlwaysCached(dir string) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return false, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return fs.Type == unix.TMPFS_MAGIC, nil
}
