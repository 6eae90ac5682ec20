package pagecache

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

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

// alwaysCached reports whether dir's file system keeps files in the page
// cache for good (tmpfs).
func alwaysCached(dir string) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return false, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return fs.Type == unix.TMPFS_MAGIC, nil
}
