package unpack

import (
	"archive/tar"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// mknodIn creates a fifo or device node called name in dir, with mode
// 0600 until the caller sets the entry's mode.
func mknodIn(dir *os.File, name string, typeflag byte, major, minor int64) error {
	var mode uint32
	switch typeflag {
	case tar.TypeFifo:
		mode = unix.S_IFIFO
	case tar.TypeChar:
		mode = unix.S_IFCHR
	case tar.TypeBlock:
		mode = unix.S_IFBLK
	}
	dev := unix.Mkdev(uint32(major), uint32(minor))
	return controlFd(dir, "mknodat", name, func(fd int) error {
		return unix.Mknodat(fd, name, mode|0o600, int(dev))
	})
}

// lutimesIn sets the times of name in dir without following a symlink.
func lutimesIn(dir *os.File, name string, atime, mtime time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	return controlFd(dir, "utimensat", name, func(fd int) error {
		return unix.UtimesNanoAt(fd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// fsetxattr sets an extended attribute on the open file f.
func fsetxattr(f *os.File, key string, value []byte) error {
	return controlFd(f, "fsetxattr", f.Name(), func(fd int) error {
		return unix.Fsetxattr(fd, key, value, 0)
	})
}

func isXattrUnsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

// syncfsRoot flushes the filesystem that holds r.
func syncfsRoot(r *os.Root) error {
	f, err := r.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	return controlFd(f, "syncfs", r.Name(), unix.Syncfs)
}

// controlFd runs fn on the descriptor of f and returns its error as an
// *os.PathError.
func controlFd(f *os.File, op, name string, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = retryOnEINTR(func() error { return fn(int(fd)) })
	}); err != nil {
		return err
	}
	if ferr != nil {
		return &os.PathError{Op: op, Path: name, Err: ferr}
	}
	return nil
}

func retryOnEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}

// setPipeSize asks for a pipe buffer of n bytes, ignoring a refusal.
func setPipeSize(f *os.File, n int) {
	controlFd(f, "fcntl", f.Name(), func(fd int) error {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, n)
		return err
	})
}

// unnamedFile creates a file with no name in dir's file system
// (O_TMPFILE): it is not visible until it is linked into place (see
// fdTree.linkUnnamed), and is gone once closed unlinked, a crash included.
// File systems without O_TMPFILE refuse it.
func unnamedFile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir+"/(unnamed)"), nil
}
