package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// extractTar writes a flattened filesystem tar (as ggcr's mutate.Extract
// produces, whiteouts already applied) into dir, for the ggcr contender,
// since ggcr has no extractor. It is minimal but safe: it works through an
// os.Root, so nothing is written outside dir, and refuses names and
// hardlink targets that climb out with "..". It sets modes, times and,
// when running as root, ownership, as the other contenders do; devices,
// fifos and xattrs are left out.
func extractTar(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	privileged := os.Geteuid() == 0
	tr := tar.NewReader(r)
	buf := make([]byte, 256<<10)
	type dirTime struct {
		name string
		h    *tar.Header
	}
	var dirs []dirTime
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name, err := localName(h.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		if parent := path.Dir(name); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return err
			}
		}
		mode := fs.FileMode(h.Mode).Perm() | modeBits(h.Mode)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, mode); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if err := root.Chmod(name, mode); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{name, h})
			continue
		case tar.TypeReg:
			if err := removeNonDir(root, name); err != nil {
				return err
			}
			f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(f, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if mode&^fs.ModePerm != 0 {
				if err := root.Chmod(name, mode); err != nil {
					return err
				}
			}
		case tar.TypeSymlink:
			if err := removeNonDir(root, name); err != nil {
				return err
			}
			if err := root.Symlink(h.Linkname, name); err != nil {
				return err
			}
			if privileged {
				if err := root.Lchown(name, h.Uid, h.Gid); err != nil {
					return err
				}
			}
			continue // no times on symlinks through os.Root
		case tar.TypeLink:
			target, err := localName(h.Linkname)
			if err != nil {
				return err
			}
			if err := removeNonDir(root, name); err != nil {
				return err
			}
			if err := root.Link(target, name); err != nil {
				return err
			}
			continue // a hardlink shares its target's metadata
		default:
			continue
		}
		if privileged {
			if err := root.Lchown(name, h.Uid, h.Gid); err != nil {
				return err
			}
		}
		if err := root.Chtimes(name, h.AccessTime, h.ModTime); err != nil {
			return err
		}
	}
	// Directory times last, once their content is in.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if privileged {
			if err := root.Lchown(d.name, d.h.Uid, d.h.Gid); err != nil {
				return err
			}
		}
		if err := root.Chtimes(d.name, d.h.AccessTime, d.h.ModTime); err != nil {
			return err
		}
	}
	return nil
}

// localName cleans a tar entry name into a path local to the root: a
// leading "/" is dropped, and a name that climbs out with ".." is refused.
func localName(n string) (string, error) {
	c := path.Clean("/" + strings.TrimLeft(n, "/"))
	c = strings.TrimPrefix(c, "/")
	if c == "" {
		return ".", nil
	}
	if strings.Contains("/"+n+"/", "/../") && !filepath.IsLocal(n) {
		return "", fmt.Errorf("unsafe tar entry %q: climbs out of the root", n)
	}
	return c, nil
}

// removeNonDir removes what is at name unless it is a directory or absent.
func removeNonDir(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return root.RemoveAll(name)
	}
	return root.Remove(name)
}

// modeBits maps the setuid, setgid and sticky bits of a tar mode to fs.FileMode.
func modeBits(m int64) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}
