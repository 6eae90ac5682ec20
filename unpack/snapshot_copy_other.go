//go:build !linux

package unpack

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/containerd/errdefs"
)

// copyTree copies the tree under src into the empty directory dst through
// os.Root, so that no symlink is followed out of either: directories,
// regular files, symlinks, modes and modification times. Outside Linux,
// hardlinked files are copied as separate files, extended attributes and
// ownership are not copied, and fifos and devices are an error that
// matches errdefs.ErrNotImplemented (Apply does not create them there).
func copyTree(ctx context.Context, src, dst string) error {
	sr, err := os.OpenRoot(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer sr.Close()
	dr, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	defer dr.Close()
	if err := copyRootDir(ctx, sr, dr, "."); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// copyRootDir copies the entries of dir, then dir's mode and times.
func copyRootDir(ctx context.Context, sr, dr *os.Root, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := sr.Open(dir)
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		fi, err := sr.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := dr.Mkdir(p, 0o700); err != nil {
				return err
			}
			if err := copyRootDir(ctx, sr, dr, p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := copyRootFile(sr, dr, p, fi); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := sr.Readlink(p)
			if err != nil {
				return err
			}
			if err := dr.Symlink(target, p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: %v files are not copied on this platform: %w", p, fi.Mode().Type(), errdefs.ErrNotImplemented)
		}
	}
	fi, err := sr.Lstat(dir)
	if err != nil {
		return err
	}
	if err := dr.Chmod(dir, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return dr.Chtimes(dir, fi.ModTime(), fi.ModTime())
}

func copyRootFile(sr, dr *os.Root, p string, fi fs.FileInfo) error {
	in, err := sr.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := dr.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := dr.Chmod(p, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return dr.Chtimes(p, fi.ModTime(), fi.ModTime())
}

// diskUsage walks dir and adds up the sizes of what it holds, dir
// included. Outside Linux, sizes are file lengths, not allocated blocks,
// and hardlinks count once per name.
func diskUsage(ctx context.Context, dir string) (Usage, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return Usage{}, err
	}
	defer r.Close()
	var u Usage
	err = fs.WalkDir(r.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		u.Inodes++
		if fi.Mode().IsRegular() {
			u.Size += fi.Size()
		}
		return nil
	})
	return u, err
}
