package unpack

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/pullkit/pullkit/content"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."     // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs)
	whiteoutOpaque = ".wh..wh..opq" // empties its directory of lower content
	paxXattr       = "SCHILY.xattr."

	maxSymlinkHops = 40   // symlinks followed to resolve one name, as Linux's MAXSYMLINKS
	maxEntryName   = 4096 // bytes in an entry name or hardlink target, as Linux's PATH_MAX
	maxHeldDirs    = 256  // open directory handles kept between entries
)

// errNotOnPlatform reports an operation this platform does not provide.
var errNotOnPlatform = errors.New("not supported on this platform")

// The range of times a file may get: what nanoseconds since the Unix epoch
// can hold in an int64. Times outside are clamped to it.
var (
	minEntryTime = time.Unix(0, math.MinInt64)
	maxEntryTime = time.Unix(0, math.MaxInt64)
)

// applier applies the entries of one layer. Paths it keeps are resolved:
// relative to the root, slash-separated, free of symlinks, "." for the root.
type applier struct {
	root       *os.Root
	rootHandle *heldDir
	cfg        *applyConfig
	stream     *layerStream
	privileged bool
	buf        []byte

	handles  map[string]*heldDir    // open directories by resolved path
	dirs     map[string]string      // directory names as entries spell them → resolved path
	touched  map[string]struct{}    // resolved paths this layer created or replaced
	deferred map[string]deferredDir // resolved directories → mode and times set last

	skipped     []Skip
	entries     int64
	contentSize int64
}

// heldDir is an open directory under the root.
type heldDir struct {
	r *os.Root
	f *os.File // the directory itself, for *at system calls; nil until needed
}

// deferredDir is what a directory entry sets once the layer's content is in.
type deferredDir struct {
	mode         fs.FileMode
	atime, mtime time.Time
}

func newApplier(root *os.Root, cfg *applyConfig, stream *layerStream, buf []byte) *applier {
	return &applier{
		root:       root,
		rootHandle: &heldDir{r: root},
		cfg:        cfg,
		stream:     stream,
		privileged: !cfg.unprivileged && os.Geteuid() == 0,
		buf:        buf,
		handles:    make(map[string]*heldDir),
		dirs:       make(map[string]string),
		touched:    make(map[string]struct{}),
		deferred:   make(map[string]deferredDir),
	}
}

// applyTar applies every entry of the stream, up to the end-of-archive
// marker.
func (a *applier) applyTar(ctx context.Context) error {
	tr := tar.NewReader(a.stream)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return a.stream.wrapErr(err)
		}
		a.entries++
		if a.cfg.maxEntries > 0 && a.entries > a.cfg.maxEntries {
			return &content.LimitError{What: "layer tar entries", Limit: a.cfg.maxEntries, Got: a.entries}
		}
		if len(a.handles) > maxHeldDirs {
			a.closeHandles()
		}
		if err := a.entry(ctx, tr, hdr); err != nil {
			return err
		}
	}
}

// entry applies one tar entry.
func (a *applier) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // archive-wide PAX records; nothing to create
	}
	name, reason := cleanEntryName(hdr.Name)
	if reason != "" {
		return &UnsafeEntryError{Name: hdr.Name, Reason: reason}
	}
	if len(hdr.Name) > maxEntryName {
		return invalidEntryf("entry %.64q...: name longer than %d bytes", hdr.Name, maxEntryName)
	}
	if strings.HasPrefix(name, whiteoutMeta) && name != whiteoutOpaque {
		// aufs keeps its bookkeeping in .wh..wh.* directories at the top.
		a.skip(name, "aufs metadata")
		return nil
	}
	base := path.Base(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.wrap(hdr, "whiteout", a.whiteout(hdr, name))
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return &UnsafeEntryError{Name: hdr.Name, Reason: "replaces the root directory"}
		}
		return a.wrap(hdr, "directory", a.rootDir(hdr))
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		return a.wrap(hdr, "file", a.regular(ctx, tr, hdr, name))
	case tar.TypeDir:
		return a.wrap(hdr, "directory", a.directory(hdr, name))
	case tar.TypeSymlink:
		return a.wrap(hdr, "symlink", a.symlink(hdr, name))
	case tar.TypeLink:
		return a.hardlink(hdr, name)
	case tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
		return a.wrap(hdr, "special file", a.special(hdr, name))
	}
	a.skip(name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
	return nil
}

// wrap names the entry in err, leaving errors that already do alone.
func (a *applier) wrap(hdr *tar.Header, kind string, err error) error {
	if err == nil {
		return nil
	}
	var unsafe *UnsafeEntryError
	var limit *content.LimitError
	if errors.As(err, &unsafe) || errors.As(err, &limit) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%s %q: %w", kind, hdr.Name, err)
}

// cleanEntryName makes an entry name relative to the root: leading slashes are
// dropped (an absolute name is read from the root, as a container sees it)
// and "." and ".." are resolved lexically. It returns a reason instead when
// the name climbs out of the root.
func cleanEntryName(name string) (string, string) {
	n := path.Clean(strings.TrimLeft(name, "/"))
	if n == ".." || strings.HasPrefix(n, "../") {
		return "", "climbs out of the root with .."
	}
	return n, ""
}

// place resolves the directory that will hold name, creating what is
// missing, and returns it with the entry's base name and resolved path.
func (a *applier) place(name string) (*heldDir, string, string, error) {
	parent, _, err := a.resolveDir(path.Dir(name), true)
	if err != nil {
		return nil, "", "", err
	}
	h, err := a.handle(parent)
	if err != nil {
		return nil, "", "", err
	}
	a.touchTree(parent)
	base := path.Base(name)
	return h, base, path.Join(parent, base), nil
}

// touchTree marks the resolved directory p and those above it as part of
// this layer: the layer has entries in them, so a whiteout or opaque
// marker of this layer keeps them, and only removes their lower content.
func (a *applier) touchTree(p string) {
	for ; p != "."; p = path.Dir(p) {
		a.touched[p] = struct{}{}
	}
}

// resolveDir resolves the directory name as a container would see it:
// symlinks are followed with the root as "/", and ".." stops at the root.
// When create is set, missing directories are created (mode 0755);
// otherwise ok is false when one is missing.
func (a *applier) resolveDir(name string, create bool) (p string, ok bool, err error) {
	links := 0
	return a.resolve(name, create, &links)
}

func (a *applier) resolve(name string, create bool, links *int) (string, bool, error) {
	if name == "." {
		return ".", true, nil
	}
	if p, ok := a.dirs[name]; ok {
		return p, true, nil
	}
	parent, ok, err := a.resolve(path.Dir(name), create, links)
	if err != nil || !ok {
		return "", ok, err
	}
	h, err := a.handle(parent)
	if err != nil {
		return "", false, err
	}
	base := path.Base(name)
	p := path.Join(parent, base)
	fi, err := h.r.Lstat(base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !create {
			return "", false, nil
		}
		if err := h.r.Mkdir(base, 0o755); err != nil {
			return "", false, err
		}
		if err := h.r.Chmod(base, 0o755); err != nil { // undo the umask
			return "", false, err
		}
		a.touched[p] = struct{}{}
	case err != nil:
		return "", false, err
	case fi.Mode()&fs.ModeSymlink != 0:
		*links++
		if *links > maxSymlinkHops {
			return "", false, invalidEntryf("resolve %s: too many levels of symbolic links", name)
		}
		target, err := h.r.Readlink(base)
		if err != nil {
			return "", false, err
		}
		if path.IsAbs(target) {
			target = path.Clean(target)
		} else {
			target = path.Join("/", parent, target)
		}
		target = strings.TrimPrefix(target, "/")
		if target == "" {
			target = "."
		}
		real, ok, err := a.resolve(target, create, links)
		if err != nil || !ok {
			return "", ok, err
		}
		p = real
	case !fi.IsDir():
		return "", false, invalidEntryf("resolve %s: %s is not a directory", name, p)
	}
	a.dirs[name] = p
	return p, true, nil
}

// handle returns the open directory at the resolved path p.
func (a *applier) handle(p string) (*heldDir, error) {
	if p == "." {
		return a.rootHandle, nil
	}
	if h, ok := a.handles[p]; ok {
		return h, nil
	}
	var r *os.Root
	var err error
	if parent, ok := a.handles[path.Dir(p)]; ok {
		r, err = parent.r.OpenRoot(path.Base(p))
	} else {
		r, err = a.root.OpenRoot(p)
	}
	if err != nil {
		return nil, err
	}
	h := &heldDir{r: r}
	a.handles[p] = h
	return h, nil
}

// dir returns the directory of h opened as a file, for *at system calls.
func (h *heldDir) dir() (*os.File, error) {
	if h.f == nil {
		f, err := h.r.Open(".")
		if err != nil {
			return nil, err
		}
		h.f = f
	}
	return h.f, nil
}

func (h *heldDir) close(closeRoot bool) {
	if h.f != nil {
		h.f.Close()
		h.f = nil
	}
	if closeRoot {
		h.r.Close()
	}
}

// closeHandles closes every open directory but the root.
func (a *applier) closeHandles() {
	for _, h := range a.handles {
		h.close(true)
	}
	clear(a.handles)
	a.rootHandle.close(false)
}

// forget drops what is known about paths at and below the removed
// resolved path p, and every resolved name, since one may have gone
// through p.
func (a *applier) forget(p string, wasDir bool) {
	clear(a.dirs)
	if !wasDir {
		return
	}
	for k, h := range a.handles {
		if k == p || strings.HasPrefix(k, p+"/") {
			h.close(true)
			delete(a.handles, k)
		}
	}
}

// remove removes base (resolved path p) from h, whatever it is.
func (a *applier) remove(h *heldDir, base, p string, fi fs.FileInfo) error {
	if fi.IsDir() {
		err := h.r.RemoveAll(base)
		a.forget(p, true)
		return err
	}
	if err := h.r.Remove(base); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		a.forget(p, false)
	}
	return nil
}

// clearPath removes whatever is at base in h, so an entry can take its
// place. Existing files are never written through: they may be hardlinks.
func (a *applier) clearPath(h *heldDir, base, p string) error {
	fi, err := h.r.Lstat(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return a.remove(h, base, p, fi)
}

// retryCleared runs create, which fails with fs.ErrExist when something is
// at base already; it then clears base and runs create again. Trying first
// saves a system call for each new file, the common case.
func retryCleared[T any](a *applier, h *heldDir, base, p string, create func() (T, error)) (T, error) {
	v, err := create()
	if errors.Is(err, fs.ErrExist) {
		if err := a.clearPath(h, base, p); err != nil {
			return v, err
		}
		v, err = create()
	}
	return v, err
}

// whiteout applies a ".wh." entry: it removes what lower layers put at the
// path it names, or in the directory it marks opaque, and keeps what this
// layer created there.
func (a *applier) whiteout(hdr *tar.Header, name string) error {
	base := path.Base(name)
	if base == whiteoutOpaque {
		dir, ok, err := a.resolveDir(path.Dir(name), false)
		if err != nil || !ok {
			return err
		}
		a.touchTree(dir)
		return a.clearLower(dir)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		a.skip(name, "aufs metadata")
		return nil
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		return &UnsafeEntryError{Name: hdr.Name, Reason: fmt.Sprintf("whiteout of %q", target)}
	}
	dir, ok, err := a.resolveDir(path.Dir(name), false)
	if err != nil || !ok {
		return err
	}
	a.touchTree(dir)
	h, err := a.handle(dir)
	if err != nil {
		return err
	}
	p := path.Join(dir, target)
	fi, err := h.r.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, ok := a.touched[p]; ok {
		// This layer put p there: it survives, but a directory loses
		// what lower layers had in it.
		if fi.IsDir() {
			return a.clearLower(p)
		}
		return nil
	}
	return a.remove(h, target, p, fi)
}

// clearLower removes from the resolved directory p everything this layer
// did not create, recursively through the directories it did.
func (a *applier) clearLower(p string) error {
	h, err := a.handle(p)
	if err != nil {
		return err
	}
	f, err := h.r.Open(".")
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, n := range names {
		child := path.Join(p, n)
		fi, err := h.r.Lstat(n)
		if err != nil {
			return err
		}
		if _, ok := a.touched[child]; ok {
			if fi.IsDir() {
				if err := a.clearLower(child); err != nil {
					return err
				}
			}
			continue
		}
		if err := a.remove(h, n, child, fi); err != nil {
			return err
		}
	}
	return nil
}

// regular writes a regular file, streaming its content.
func (a *applier) regular(ctx context.Context, tr *tar.Reader, hdr *tar.Header, name string) error {
	a.contentSize += hdr.Size
	if max := a.cfg.maxSize; max > 0 && a.contentSize > max {
		return &content.LimitError{What: "layer file content", Limit: max, Got: a.contentSize}
	}
	h, base, p, err := a.place(name)
	if err != nil {
		return err
	}
	f, err := retryCleared(a, h, base, p, func() (*os.File, error) {
		return h.r.OpenFile(base, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	})
	if err != nil {
		return err
	}
	a.touched[p] = struct{}{}
	err = a.copy(ctx, f, tr)
	if err == nil {
		err = a.fileMeta(f, hdr, name)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	atime, mtime := entryTimes(hdr)
	return h.r.Chtimes(base, atime, mtime)
}

// copy streams the entry's content into f through the shared buffer.
func (a *applier) copy(ctx context.Context, f *os.File, r io.Reader) error {
	for {
		n, rerr := r.Read(a.buf)
		if n > 0 {
			if _, err := f.Write(a.buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return a.stream.wrapErr(rerr)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// fileMeta sets the owner, mode and xattrs of a regular file, in the order
// that keeps them: chown clears setuid and setgid bits and file
// capabilities.
func (a *applier) fileMeta(f *os.File, hdr *tar.Header, name string) error {
	if uid, gid, ok, err := a.owner(hdr); err != nil {
		return err
	} else if ok {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err := f.Chmod(entryMode(hdr)); err != nil {
		return err
	}
	return a.xattrs(name, hdr, f, "")
}

// directory creates a directory, or keeps the one there with its content
// and updates its metadata. Mode and times are set at the end of the
// layer, once its content is in.
func (a *applier) directory(hdr *tar.Header, name string) error {
	h, base, p, err := a.place(name)
	if err != nil {
		return err
	}
	fi, err := h.r.Lstat(base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fi = nil
	case err != nil:
		return err
	case !fi.IsDir():
		if err := a.remove(h, base, p, fi); err != nil {
			return err
		}
		fi = nil
	}
	if fi == nil {
		if err := h.r.Mkdir(base, 0o700); err != nil {
			return err
		}
	} else if perm := fi.Mode().Perm(); !a.privileged && perm&0o700 != 0o700 {
		// Keep the directory writable for the rest of the layer.
		if err := h.r.Chmod(base, perm|0o700); err != nil {
			return err
		}
	}
	a.touched[p] = struct{}{}
	a.dirs[name] = p
	return a.dirEntryMeta(h.r, base, p, hdr, name)
}

// rootDir applies a directory entry that names the root itself: its
// metadata only.
func (a *applier) rootDir(hdr *tar.Header) error {
	return a.dirEntryMeta(a.root, ".", ".", hdr, ".")
}

func (a *applier) dirEntryMeta(r *os.Root, base, p string, hdr *tar.Header, name string) error {
	if uid, gid, ok, err := a.owner(hdr); err != nil {
		return err
	} else if ok {
		if err := r.Lchown(base, uid, gid); err != nil {
			return err
		}
	}
	if hasEntryXattrs(hdr) {
		f, err := r.Open(base)
		if err != nil {
			return err
		}
		err = a.xattrs(name, hdr, f, "")
		f.Close()
		if err != nil {
			return err
		}
	}
	atime, mtime := entryTimes(hdr)
	a.deferred[p] = deferredDir{mode: entryMode(hdr), atime: atime, mtime: mtime}
	return nil
}

// symlink creates a symlink; its target is kept as written, and may dangle
// or be absolute.
func (a *applier) symlink(hdr *tar.Header, name string) error {
	h, base, p, err := a.place(name)
	if err != nil {
		return err
	}
	if _, err := retryCleared(a, h, base, p, func() (struct{}, error) {
		return struct{}{}, h.r.Symlink(hdr.Linkname, base)
	}); err != nil {
		return err
	}
	a.touched[p] = struct{}{}
	if uid, gid, ok, err := a.owner(hdr); err != nil {
		return err
	} else if ok {
		if err := h.r.Lchown(base, uid, gid); err != nil {
			return err
		}
	}
	if err := a.xattrs(name, hdr, nil, "symlinks"); err != nil {
		return err
	}
	dir, err := h.dir()
	if err != nil {
		return err
	}
	atime, mtime := entryTimes(hdr)
	return lutimesIn(dir, base, atime, mtime)
}

// hardlink links name to a file already in the root, from a lower layer or
// earlier in this one. The file's metadata is left as it is.
func (a *applier) hardlink(hdr *tar.Header, name string) error {
	target, reason := cleanEntryName(hdr.Linkname)
	switch {
	case reason != "":
		return &UnsafeEntryError{Name: hdr.Name, Reason: "hardlink target " + reason}
	case target == ".":
		return &UnsafeEntryError{Name: hdr.Name, Reason: "hardlink to the root directory"}
	case len(hdr.Linkname) > maxEntryName:
		return invalidEntryf("hardlink %q: target longer than %d bytes", hdr.Name, maxEntryName)
	}
	tdir, ok, err := a.resolveDir(path.Dir(target), false)
	if err != nil {
		return fmt.Errorf("hardlink %q to %q: %w", hdr.Name, hdr.Linkname, err)
	}
	if !ok {
		return invalidEntryf("hardlink %q: target %q does not exist", hdr.Name, hdr.Linkname)
	}
	tp := path.Join(tdir, path.Base(target))
	fi, err := a.root.Lstat(tp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return invalidEntryf("hardlink %q: target %q does not exist", hdr.Name, hdr.Linkname)
	case err != nil:
		return fmt.Errorf("hardlink %q to %q: %w", hdr.Name, hdr.Linkname, err)
	case fi.IsDir():
		return invalidEntryf("hardlink %q: target %q is a directory", hdr.Name, hdr.Linkname)
	}
	h, base, p, err := a.place(name)
	if err != nil {
		return fmt.Errorf("hardlink %q: %w", hdr.Name, err)
	}
	a.touched[p] = struct{}{}
	if p == tp {
		return nil // a link to itself: already there
	}
	if err := a.clearPath(h, base, p); err != nil {
		return fmt.Errorf("hardlink %q: %w", hdr.Name, err)
	}
	if err := a.root.Link(tp, p); err != nil {
		return fmt.Errorf("hardlink %q to %q: %w", hdr.Name, hdr.Linkname, err)
	}
	return nil
}

// special creates a fifo, or a char or block device when privileged.
func (a *applier) special(hdr *tar.Header, name string) error {
	kind := map[byte]string{tar.TypeFifo: "fifo", tar.TypeChar: "char device", tar.TypeBlock: "block device"}[hdr.Typeflag]
	device := hdr.Typeflag != tar.TypeFifo
	if device && !a.privileged {
		a.skip(name, kind+": unprivileged")
		return nil
	}
	h, base, p, err := a.place(name)
	if err != nil {
		return err
	}
	if err := a.clearPath(h, base, p); err != nil {
		return err
	}
	dir, err := h.dir()
	if err != nil {
		return err
	}
	err = mknodIn(dir, base, hdr.Typeflag, hdr.Devmajor, hdr.Devminor)
	switch {
	case errors.Is(err, errNotOnPlatform):
		a.skip(name, kind+": "+errNotOnPlatform.Error())
		return nil
	case device && errors.Is(err, fs.ErrPermission):
		// Root in a user namespace may not create devices.
		a.skip(name, kind+": not permitted")
		return nil
	case err != nil:
		return err
	}
	a.touched[p] = struct{}{}
	if uid, gid, ok, err := a.owner(hdr); err != nil {
		return err
	} else if ok {
		if err := h.r.Lchown(base, uid, gid); err != nil {
			return err
		}
	}
	if err := h.r.Chmod(base, entryMode(hdr)); err != nil {
		return err
	}
	if err := a.xattrs(name, hdr, nil, kind+"s"); err != nil {
		return err
	}
	atime, mtime := entryTimes(hdr)
	return h.r.Chtimes(base, atime, mtime)
}

// owner returns the owner an entry gets, and false when ownership is not
// applied.
func (a *applier) owner(hdr *tar.Header) (uid, gid int, ok bool, err error) {
	if !a.privileged {
		return 0, 0, false, nil
	}
	uid, gid = hdr.Uid, hdr.Gid
	if a.cfg.ownership != nil {
		if uid, gid, err = a.cfg.ownership(uid, gid); err != nil {
			return 0, 0, false, fmt.Errorf("map owner %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
	}
	return uid, gid, true, nil
}

func hasEntryXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			return true
		}
	}
	return false
}

// xattrs sets the entry's extended attributes on f, those it may: user.*
// and POSIX ACLs always, security.capability when privileged. Others
// (trusted.*, security.selinux, ...) are left out and reported, as are all
// of them when f is nil (symlinks and special files, named by kind) or the
// filesystem does not support them.
func (a *applier) xattrs(name string, hdr *tar.Header, f *os.File, kind string) error {
	var keys []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			keys = append(keys, strings.TrimPrefix(k, paxXattr))
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "user."), k == "system.posix_acl_access", k == "system.posix_acl_default":
		case k == "security.capability":
			if !a.privileged {
				a.skip(name, "xattr "+k+": unprivileged")
				continue
			}
		default:
			a.skip(name, "xattr "+k+": namespace not applied")
			continue
		}
		if f == nil {
			a.skip(name, "xattr "+k+": not applied to "+kind)
			continue
		}
		err := fsetxattr(f, k, []byte(hdr.PAXRecords[paxXattr+k]))
		switch {
		case err == nil:
		case errors.Is(err, errNotOnPlatform), isXattrUnsupported(err):
			a.skip(name, "xattr "+k+": not supported by the filesystem")
		case errors.Is(err, fs.ErrPermission):
			a.skip(name, "xattr "+k+": not permitted")
		default:
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	return nil
}

func (a *applier) skip(name, reason string) {
	a.skipped = append(a.skipped, Skip{Name: name, Reason: reason})
}

// finish sets the mode and times of the directories this layer named,
// deepest first, now that nothing more is written into them.
func (a *applier) finish() error {
	paths := slices.Sorted(maps.Keys(a.deferred))
	slices.Reverse(paths) // "a/b" sorts after "a": children first
	for _, p := range paths {
		m := a.deferred[p]
		fi, err := a.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // replaced later in the layer
		}
		if err != nil {
			return fmt.Errorf("directory %q: %w", p, err)
		}
		if !fi.IsDir() {
			continue
		}
		if err := a.root.Chmod(p, m.mode); err != nil {
			return fmt.Errorf("directory %q: %w", p, err)
		}
		if err := a.root.Chtimes(p, m.atime, m.mtime); err != nil {
			return fmt.Errorf("directory %q: %w", p, err)
		}
	}
	return nil
}

// close releases the open directories.
func (a *applier) close() { a.closeHandles() }

// fileMode returns the permission and setuid, setgid and sticky bits of an
// entry.
func entryMode(hdr *tar.Header) fs.FileMode {
	m := fs.FileMode(hdr.Mode) & fs.ModePerm
	if hdr.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// entryTimes returns the access and modification times an entry sets,
// clamped to what the system calls can represent. A missing access time is
// the modification time.
func entryTimes(hdr *tar.Header) (atime, mtime time.Time) {
	mtime = clampEntryTime(hdr.ModTime)
	atime = mtime
	if !hdr.AccessTime.IsZero() {
		atime = clampEntryTime(hdr.AccessTime)
	}
	return atime, mtime
}

func clampEntryTime(t time.Time) time.Time {
	switch {
	case t.Before(minEntryTime):
		return minEntryTime
	case t.After(maxEntryTime):
		return maxEntryTime
	}
	return t
}
