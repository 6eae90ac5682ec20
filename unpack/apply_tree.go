package unpack

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// tree carries out the applier's changes under the root. Every dir argument
// is a resolved directory path: relative to the root, slash-separated,
// clean, free of symlinks, "." for the root itself. Every name argument is
// one path component, never "." or "..". No method follows a symlink at
// name, and none reaches outside the root, whatever a path holds.
//
// Two implementations exist: one on file descriptors for Linux, with fewer
// system calls, and a portable one on [os.Root]; both are tested on Linux.
type tree interface {
	lstat(dir, name string) (entryInfo, error)
	readlink(dir, name string) (string, error)
	// mkdir creates a directory with mode perm as the umask and the
	// parent directory leave it, which it returns.
	mkdir(dir, name string, perm fs.FileMode) (newEntry, error)
	// create creates a regular file for writing; it fails with
	// fs.ErrExist when something is at name.
	create(dir, name string, perm fs.FileMode) (fileHandle, newEntry, error)
	symlink(target, dir, name string) error
	link(targetDir, targetName, dir, name string) error
	// mknod creates a fifo or device with the permission bits of mode.
	mknod(dir, name string, typeflag byte, mode fs.FileMode, major, minor int64) error
	// chmod sets the mode of a directory, fifo or device at name.
	chmod(dir, name string, mode fs.FileMode) error
	lchown(dir, name string, uid, gid int) error
	lutimes(dir, name string, atime, mtime time.Time) error
	// remove removes a file, a symlink or an empty directory.
	remove(dir, name string) error
	removeAll(dir, name string) error
	readDirNames(dir string) ([]string, error)
	// openDir opens the directory dir itself, to change its metadata.
	openDir(dir string) (fileHandle, error)
	// forget drops what is held open or known at and below dir, which was
	// removed or replaced.
	forget(dir string)
	sync() error
	// asyncFiles reports whether a file's content, owner, mode and times
	// may be set from another goroutine while the tree changes paths.
	asyncFiles() bool
	// fileBudget is how many files, beside the directories the tree
	// holds, the applier may keep open at once.
	fileBudget() int
	close()
}

// unnamedLinker is a tree that can give an unnamed file (see unnamedFile)
// a name, as the files of a layer decompressed ahead get theirs.
type unnamedLinker interface {
	// linkUnnamed links f at name in dir and returns a handle on it, to
	// set its metadata; closing the handle leaves f open. It fails with
	// fs.ErrExist when something is at name, and with errNoLink when f
	// cannot become a file there just as a file created there would.
	linkUnnamed(f *os.File, dir, name string) (fileHandle, error)
}

// errNoLink says that an unnamed file cannot be linked where asked; its
// content is then copied into a file created there.
var errNoLink = errors.New("unnamed file cannot be linked here")

// fileHandle is an open file or directory whose metadata the applier sets.
type fileHandle interface {
	Write(p []byte) (int, error)
	writeAt(p []byte, off int64) (int, error)
	chown(uid, gid int) error
	chmod(mode fs.FileMode) error
	setxattr(key string, value []byte) error
	// utimes sets the access and modification times; an implementation may
	// defer it to close.
	utimes(atime, mtime time.Time) error
	close() error
}

// entryInfo describes an existing entry.
type entryInfo struct {
	mode     fs.FileMode
	uid, gid int // -1 when the platform does not say
}

func (e entryInfo) isDir() bool     { return e.mode.IsDir() }
func (e entryInfo) isSymlink() bool { return e.mode&fs.ModeSymlink != 0 }

// newEntry is the owner and mode the system gave an entry just created,
// when the tree knows them, so that the applier can leave out a chown or
// chmod that would change nothing.
type newEntry struct {
	known    bool
	uid, gid int
	mode     fs.FileMode // permission bits, and setgid for directories
}

// forceRootTree makes Apply use the portable tree on every platform. Tests
// set it to cover that implementation on Linux.
var forceRootTree = false

// rootTree is the portable tree: an [os.Root] for each directory it holds
// open.
type rootTree struct {
	root    *os.Root
	handles map[string]*rootHandle // open directories by resolved path
}

type rootHandle struct {
	r *os.Root
	f *os.File // the directory itself, for *at system calls; nil until needed
}

func newRootTree(root *os.Root) *rootTree {
	return &rootTree{root: root, handles: make(map[string]*rootHandle)}
}

// handle returns the open directory at dir.
func (t *rootTree) handle(dir string) (*rootHandle, error) {
	if h, ok := t.handles[dir]; ok {
		return h, nil
	}
	if len(t.handles) >= maxHeldDirs {
		t.closeHandles()
	}
	var h *rootHandle
	if dir == "." {
		h = &rootHandle{r: t.root}
	} else {
		var r *os.Root
		var err error
		if parent, ok := t.handles[path.Dir(dir)]; ok {
			r, err = parent.r.OpenRoot(path.Base(dir))
		} else {
			r, err = t.root.OpenRoot(dir)
		}
		if err != nil {
			return nil, err
		}
		h = &rootHandle{r: r}
	}
	t.handles[dir] = h
	return h, nil
}

// dirFile returns the directory of h opened as a file, for *at system calls.
func (h *rootHandle) dirFile() (*os.File, error) {
	if h.f == nil {
		f, err := h.r.Open(".")
		if err != nil {
			return nil, err
		}
		h.f = f
	}
	return h.f, nil
}

func (t *rootTree) closeHandles() {
	for dir, h := range t.handles {
		if h.f != nil {
			h.f.Close()
		}
		if dir != "." {
			h.r.Close()
		}
	}
	clear(t.handles)
}

func (t *rootTree) lstat(dir, name string) (entryInfo, error) {
	h, err := t.handle(dir)
	if err != nil {
		return entryInfo{}, err
	}
	fi, err := h.r.Lstat(name)
	if err != nil {
		return entryInfo{}, err
	}
	return entryInfo{mode: fi.Mode(), uid: -1, gid: -1}, nil
}

func (t *rootTree) readlink(dir, name string) (string, error) {
	h, err := t.handle(dir)
	if err != nil {
		return "", err
	}
	return h.r.Readlink(name)
}

func (t *rootTree) mkdir(dir, name string, perm fs.FileMode) (newEntry, error) {
	h, err := t.handle(dir)
	if err != nil {
		return newEntry{}, err
	}
	return newEntry{}, h.r.Mkdir(name, perm)
}

func (t *rootTree) create(dir, name string, perm fs.FileMode) (fileHandle, newEntry, error) {
	h, err := t.handle(dir)
	if err != nil {
		return nil, newEntry{}, err
	}
	// Owner-only until the applier sets perm, which it always does here.
	f, err := h.r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, newEntry{}, err
	}
	return &rootFile{f: f, r: h.r, name: name}, newEntry{}, nil
}

func (t *rootTree) symlink(target, dir, name string) error {
	h, err := t.handle(dir)
	if err != nil {
		return err
	}
	return h.r.Symlink(target, name)
}

func (t *rootTree) link(targetDir, targetName, dir, name string) error {
	return t.root.Link(path.Join(targetDir, targetName), path.Join(dir, name))
}

func (t *rootTree) mknod(dir, name string, typeflag byte, mode fs.FileMode, major, minor int64) error {
	f, err := t.dirFile(dir)
	if err != nil {
		return err
	}
	return mknodIn(f, name, typeflag, major, minor)
}

// dirFile returns the directory dir opened as a file, for *at system calls.
func (t *rootTree) dirFile(dir string) (*os.File, error) {
	h, err := t.handle(dir)
	if err != nil {
		return nil, err
	}
	return h.dirFile()
}

func (t *rootTree) chmod(dir, name string, mode fs.FileMode) error {
	h, err := t.handle(dir)
	if err != nil {
		return err
	}
	return h.r.Chmod(name, mode)
}

func (t *rootTree) lchown(dir, name string, uid, gid int) error {
	h, err := t.handle(dir)
	if err != nil {
		return err
	}
	return h.r.Lchown(name, uid, gid)
}

func (t *rootTree) lutimes(dir, name string, atime, mtime time.Time) error {
	f, err := t.dirFile(dir)
	if err != nil {
		return err
	}
	return lutimesIn(f, name, atime, mtime)
}

func (t *rootTree) remove(dir, name string) error {
	h, err := t.handle(dir)
	if err != nil {
		return err
	}
	return h.r.Remove(name)
}

func (t *rootTree) removeAll(dir, name string) error {
	h, err := t.handle(dir)
	if err != nil {
		return err
	}
	return h.r.RemoveAll(name)
}

func (t *rootTree) readDirNames(dir string) ([]string, error) {
	h, err := t.handle(dir)
	if err != nil {
		return nil, err
	}
	f, err := h.r.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (t *rootTree) openDir(dir string) (fileHandle, error) {
	f, err := t.root.Open(dir)
	if err != nil {
		return nil, err
	}
	return &rootFile{f: f, r: t.root, name: dir}, nil
}

func (t *rootTree) forget(dir string) {
	for k, h := range t.handles {
		if k == dir || (dir != "." && strings.HasPrefix(k, dir+"/")) {
			if h.f != nil {
				h.f.Close()
			}
			if k != "." {
				h.r.Close()
			}
			delete(t.handles, k)
		}
	}
}

func (t *rootTree) sync() error { return syncfsRoot(t.root) }

// asyncFiles is false: a file's times are set by name once it is closed,
// when a later entry may have replaced it.
func (t *rootTree) asyncFiles() bool { return false }

func (t *rootTree) fileBudget() int { return 1 }

func (t *rootTree) close() { t.closeHandles() }

// rootFile is a file or directory opened through an [os.Root]; its times
// are set by name once it is closed.
type rootFile struct {
	f            *os.File
	r            *os.Root
	name         string
	setTimes     bool
	atime, mtime time.Time
}

func (f *rootFile) Write(p []byte) (int, error)              { return f.f.Write(p) }
func (f *rootFile) writeAt(p []byte, off int64) (int, error) { return f.f.WriteAt(p, off) }
func (f *rootFile) chown(uid, gid int) error                 { return f.f.Chown(uid, gid) }
func (f *rootFile) chmod(mode fs.FileMode) error             { return f.f.Chmod(mode) }
func (f *rootFile) setxattr(k string, v []byte) error        { return fsetxattr(f.f, k, v) }

func (f *rootFile) utimes(atime, mtime time.Time) error {
	f.setTimes, f.atime, f.mtime = true, atime, mtime
	return nil
}

func (f *rootFile) close() error {
	err := f.f.Close()
	if err == nil && f.setTimes {
		err = f.r.Chtimes(f.name, f.atime, f.mtime)
	}
	return err
}

// isNotExist reports whether err says an entry is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
