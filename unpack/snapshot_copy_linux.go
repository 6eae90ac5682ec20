package unpack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// copyTree copies the tree under src into the empty directory dst, and
// src's own mode, owner, times and xattrs onto dst. It never follows a
// symlink: every name is opened relative to its directory with
// O_NOFOLLOW. File data is cloned (FICLONE) where the filesystem shares
// extents, and copied with copy_file_range otherwise. Hardlinked files
// stay hardlinked; ownership is kept when the process runs as root.
func copyTree(ctx context.Context, src, dst string) error {
	return copyTreeAs(ctx, src, dst, os.Geteuid() == 0)
}

// copyTreeAs is copyTree, copying ownership and lending no permissions
// when privileged, and the other way round when not.
func copyTreeAs(ctx context.Context, src, dst string, privileged bool) error {
	sf, err := openDirNoFollow(unix.AT_FDCWD, src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer sf.Close()
	df, err := openDirNoFollow(unix.AT_FDCWD, dst)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	defer df.Close()
	c := &treeCopier{
		ctx:        ctx,
		privileged: privileged,
		links:      map[fileKey]string{},
		dstRoot:    df,
		canClone:   true,
	}
	if err := c.copyDir(sf, df, ""); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(sf.Fd()), &st); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := c.copyMeta(sf, df, &st); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("copy to %s: times: %w", dst, err)
	}
	return nil
}

type fileKey struct{ dev, ino uint64 }

type treeCopier struct {
	ctx        context.Context
	privileged bool
	// links maps an inode linked more than once to the path, relative to
	// dstRoot, of its first copy.
	links    map[fileKey]string
	dstRoot  *os.File
	canClone bool
}

// copyDir copies the entries of the directory src into dst; rel is their
// path relative to the roots.
func (c *treeCopier) copyDir(src, dst *os.File, rel string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	names, err := src.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read %s: %w", relName(rel), err)
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, name := range names {
		p := path.Join(rel, name)
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if err := c.copyEntry(sfd, dfd, name, p, &st); err != nil {
			return err
		}
	}
	return nil
}

func (c *treeCopier) copyEntry(sfd, dfd int, name, p string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := c.copySubdir(sfd, dfd, name, p, st); err != nil {
			return err
		}
	case unix.S_IFREG:
		key := fileKey{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if first, ok := c.links[key]; ok {
				if err := unix.Linkat(int(c.dstRoot.Fd()), first, dfd, name, 0); err != nil {
					return fmt.Errorf("link %s to %s: %w", p, first, err)
				}
				return nil
			}
		}
		if err := c.copyFile(sfd, dfd, name, st); err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
		if st.Nlink > 1 {
			c.links[key] = p
		}
	case unix.S_IFLNK:
		target, err := readlinkat(sfd, name)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", p, err)
		}
		if err := unix.Symlinkat(target, dfd, name); err != nil {
			return fmt.Errorf("symlink %s: %w", p, err)
		}
		if c.privileged {
			if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("chown %s: %w", p, err)
			}
		}
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		if err := unix.Mknodat(dfd, name, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			if errors.Is(err, unix.EPERM) {
				err = fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
			}
			return fmt.Errorf("mknod %s: %w", p, err)
		}
		if c.privileged {
			if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("chown %s: %w", p, err)
			}
		}
		if err := unix.Fchmodat(dfd, name, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	default:
		// Sockets cannot come from a layer: nothing to keep.
		return nil
	}
	if err := unix.UtimesNanoAt(dfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("times of %s: %w", p, err)
	}
	return nil
}

// copySubdir copies the directory name and the tree below it.
func (c *treeCopier) copySubdir(sfd, dfd int, name, p string, st *unix.Stat_t) error {
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	restore, err := c.makeReadable(sfd, name, st, 0o500)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	err = c.copyOpenedDir(sfd, dfd, name, p, st)
	if rerr := restore(); err == nil && rerr != nil {
		err = fmt.Errorf("%s: %w", p, rerr)
	}
	return err
}

func (c *treeCopier) copyOpenedDir(sfd, dfd int, name, p string, st *unix.Stat_t) error {
	sub, err := openDirNoFollow(sfd, name)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer sub.Close()
	dsub, err := openDirNoFollow(dfd, name)
	if err != nil {
		return fmt.Errorf("open copy of %s: %w", p, err)
	}
	defer dsub.Close()
	if err := c.copyDir(sub, dsub, p); err != nil {
		return err
	}
	if err := c.copyMeta(sub, dsub, st); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// copyFile copies the regular file name, its data, xattrs, owner and mode.
func (c *treeCopier) copyFile(sfd, dfd int, name string, st *unix.Stat_t) error {
	restore, err := c.makeReadable(sfd, name, st, 0o400)
	if err != nil {
		return err
	}
	sf, err := openatFile(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if rerr := restore(); err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	defer sf.Close()
	df, err := openatFile(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer df.Close()
	if err := c.copyData(sf, df); err != nil {
		return err
	}
	if err := c.copyMeta(sf, df, st); err != nil {
		return err
	}
	return df.Close()
}

// makeReadable gives the owner the permission bits need (0o400 to read a
// file, 0o500 to list a directory) on the source entry name when it lacks
// them and the process owns it without being root, and returns what puts
// the mode back. Images hold such entries: /etc/shadow is mode 0 on some
// distributions. The caller holds the source tree's lock, so no other
// copy sees the changed mode.
func (c *treeCopier) makeReadable(dirfd int, name string, st *unix.Stat_t, need uint32) (restore func() error, err error) {
	noop := func() error { return nil }
	if c.privileged || st.Mode&need == need || int(st.Uid) != os.Geteuid() {
		return noop, nil
	}
	if err := unix.Fchmodat(dirfd, name, st.Mode&0o7777|need, 0); err != nil {
		return noop, fmt.Errorf("make readable: %w", err)
	}
	return func() error {
		if err := unix.Fchmodat(dirfd, name, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("restore mode: %w", err)
		}
		return nil
	}, nil
}

// copyData clones sf into df where the filesystem can, and copies it
// otherwise: io.Copy between two *os.File uses copy_file_range.
func (c *treeCopier) copyData(sf, df *os.File) error {
	if c.canClone {
		err := unix.IoctlFileClone(int(df.Fd()), int(sf.Fd()))
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EXDEV) {
			// EOPNOTSUPP, EINVAL, ENOTTY: this filesystem does not clone;
			// stop asking.
			c.canClone = false
		}
	}
	for {
		_, err := io.Copy(df, sf)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// copyMeta gives the open dst the xattrs, owner and mode of the open src,
// described by st. Owner before mode: chown clears setuid and setgid.
func (c *treeCopier) copyMeta(src, dst *os.File, st *unix.Stat_t) error {
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if c.privileged {
		if err := unix.Fchown(int(dst.Fd()), int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(int(dst.Fd()), st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// copyXattrs copies the extended attributes of src onto dst, but
// security.selinux, which belongs to the host's policy.
func copyXattrs(src, dst *os.File) error {
	names, err := flistxattr(int(src.Fd()))
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return fmt.Errorf("list xattrs: %w", err)
	}
	for _, k := range names {
		if k == "security.selinux" {
			continue
		}
		v, err := fgetxattr(int(src.Fd()), k)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get xattr %s: %w", k, err)
		}
		if err := unix.Fsetxattr(int(dst.Fd()), k, v, 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	return nil
}

func flistxattr(fd int) ([]string, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := unix.Flistxattr(fd, buf)
		if errors.Is(err, unix.ERANGE) {
			size *= 4
			if size > 1<<20 {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, k := range strings.Split(string(buf[:n]), "\x00") {
			if k != "" {
				names = append(names, k)
			}
		}
		return names, nil
	}
}

func fgetxattr(fd int, key string) ([]byte, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := unix.Fgetxattr(fd, key, buf)
		if errors.Is(err, unix.ERANGE) {
			size *= 4
			if size > 1<<20 {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// openDirNoFollow opens the directory name relative to dirfd, refusing a
// symlink.
func openDirNoFollow(dirfd int, name string) (*os.File, error) {
	return openatFile(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
}

func openatFile(dirfd int, name string, flags int, mode uint32) (*os.File, error) {
	var fd int
	err := retryOnEINTR(func() (err error) {
		fd, err = unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, mode)
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func relName(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// diskUsage walks dir and adds up the blocks and inodes of what it holds,
// dir included, each inode once.
func diskUsage(ctx context.Context, dir string) (Usage, error) {
	f, err := openDirNoFollow(unix.AT_FDCWD, dir)
	if err != nil {
		return Usage{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Usage{}, err
	}
	u := Usage{Size: st.Blocks * 512, Inodes: 1}
	seen := map[fileKey]bool{}
	err = usageOf(ctx, f, seen, &u)
	return u, err
}

func usageOf(ctx context.Context, dir *os.File, seen map[fileKey]bool, u *Usage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return err
	}
	fd := int(dir.Fd())
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		key := fileKey{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if seen[key] {
				continue
			}
			seen[key] = true
		}
		u.Inodes++
		u.Size += st.Blocks * 512
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			sub, err := openDirNoFollow(fd, name)
			if err != nil {
				return err
			}
			err = usageOf(ctx, sub, seen, u)
			sub.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}
