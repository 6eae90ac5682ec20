//go:build !linux

package pagecache

// StartWriteback returns ErrUnsupported: the fsync at commit does the
// writing here.
func StartWriteback(fd uintptr, off, n int64) error { return ErrUnsupported }

// WaitAndDrop does nothing here.
func WaitAndDrop(fd uintptr, off, n int64) {}

// Drop does nothing here.
func Drop(fd uintptr, off, n int64) {}

// Resident returns ErrUnsupported: nothing here says what is cached.
func Resident(path string) (int64, error) { return 0, ErrUnsupported }

// AlwaysCached reports true: nothing here says what is cached, or drops it.
func AlwaysCached(string) (bool, error) { return true, nil }
