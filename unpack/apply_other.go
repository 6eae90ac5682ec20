//go:build !linux

package unpack

import (
	"os"
	"time"
)

// mknodIn is not provided here: fifos and devices are reported skipped.
func mknodIn(dir *os.File, name string, typeflag byte, major, minor int64) error {
	return errNotOnPlatform
}

// lutimesIn is not provided here: symlinks keep the time they were created.
func lutimesIn(dir *os.File, name string, atime, mtime time.Time) error { return nil }

// fsetxattr is not provided here: xattrs are reported skipped.
func fsetxattr(f *os.File, key string, value []byte) error { return errNotOnPlatform }

func isXattrUnsupported(err error) bool { return false }

// syncfsRoot flushes the root directory itself: without syncfs(2), that is
// the most this platform offers cheaply.
func syncfsRoot(r *os.Root) error {
	f, err := r.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// newTree returns the portable tree: the descriptor-based one is Linux's.
func newTree(root *os.Root) (tree, error) { return newRootTree(root), nil }

// setPipeSize does nothing here: pipes keep the system's size.
func setPipeSize(f *os.File, n int) {}

// unnamedFile is not provided here: without O_TMPFILE, a file would have
// a name that a crash could leave behind, so layers are not decompressed
// ahead.
func unnamedFile(dir string) (*os.File, error) { return nil, errNotOnPlatform }

// openFileLimit is not looked up here: there are no unnamed files to keep
// open (see unnamedFile), and 1024 is the common default.
func openFileLimit() uint64 { return 1024 }
