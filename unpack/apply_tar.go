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
	t          tree
	cfg        *applyConfig
	stream     *layerStream
	privileged bool
	buf        []byte

	dirs     map[string]string      // directory names as entries spell them → resolved path
	touched  map[string]struct{}    // resolved paths this layer created or replaced
	deferred map[string]deferredDir // resolved directories → mode and times set last

	w *fileWriter // writes file content beside the applier; nil: inline

	skipped     []Skip
	entries     int64
	contentSize int64
}

// deferredDir is what a directory entry sets once the layer's content is in.
type deferredDir struct {
	mode         fs.FileMode
	atime, mtime time.Time
}

func newApplier(t tree, cfg *applyConfig, stream *layerStream, buf []byte) *applier {
	var w *fileWriter
	if n := writerCount(); n > 0 && t.asyncFiles() {
		w = newFileWriter(n, t.fileBudget())
	}
	return &applier{
		w:          w,
		t:          t,
		cfg:        cfg,
		stream:     stream,
		privileged: !cfg.unprivileged && os.Geteuid() == 0,
		buf:        buf,
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
		if a.w != nil {
			if err := a.w.failed(); err != nil {
				return err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return a.stopWriters()
		}
		if err != nil {
			return a.stream.wrapErr(err)
		}
		a.entries++
		if a.cfg.maxEntries > 0 && a.entries > a.cfg.maxEntries {
			return &content.LimitError{What: "layer tar entries", Limit: a.cfg.maxEntries, Got: a.entries}
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
func (a *applier) place(name string) (dir, base, p string, err error) {
	dir, _, err = a.resolveDir(path.Dir(name), true)
	if err != nil {
		return "", "", "", err
	}
	a.touchTree(dir)
	base = path.Base(name)
	return dir, base, path.Join(dir, base), nil
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
	base := path.Base(name)
	p := path.Join(parent, base)
	fi, err := a.t.lstat(parent, base)
	switch {
	case isNotExist(err):
		if !create {
			return "", false, nil
		}
		ne, err := a.t.mkdir(parent, base, 0o755)
		if err != nil {
			return "", false, err
		}
		if !ne.known || ne.mode != 0o755 { // undo the umask
			if err := a.t.chmod(parent, base, 0o755); err != nil {
				return "", false, err
			}
		}
		a.touched[p] = struct{}{}
	case err != nil:
		return "", false, err
	case fi.isSymlink():
		*links++
		if *links > maxSymlinkHops {
			return "", false, invalidEntryf("resolve %s: too many levels of symbolic links", name)
		}
		target, err := a.t.readlink(parent, base)
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
	case !fi.isDir():
		return "", false, invalidEntryf("resolve %s: %s is not a directory", name, p)
	}
	a.dirs[name] = p
	return p, true, nil
}

// forget drops what is known about paths at and below the removed
// resolved path p, and every resolved name, since one may have gone
// through p.
func (a *applier) forget(p string, wasDir bool) {
	clear(a.dirs)
	if wasDir {
		a.t.forget(p)
	}
}

// remove removes base (resolved path p) from dir, whatever it is.
func (a *applier) remove(dir, base, p string, fi entryInfo) error {
	if fi.isDir() {
		err := a.t.removeAll(dir, base)
		a.forget(p, true)
		return err
	}
	if err := a.t.remove(dir, base); err != nil && !isNotExist(err) {
		return err
	}
	if fi.isSymlink() {
		a.forget(p, false)
	}
	return nil
}

// clearPath removes whatever is at base in dir, so an entry can take its
// place. Existing files are never written through: they may be hardlinks.
func (a *applier) clearPath(dir, base, p string) error {
	fi, err := a.t.lstat(dir, base)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return a.remove(dir, base, p, fi)
}

// retryCleared runs create, which fails with fs.ErrExist when something is
// at base already; it then clears base and runs create again. Trying first
// saves a system call for each new file, the common case.
func retryCleared[T any](a *applier, dir, base, p string, create func() (T, error)) (T, error) {
	v, err := create()
	if errors.Is(err, fs.ErrExist) {
		if err := a.clearPath(dir, base, p); err != nil {
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
	p := path.Join(dir, target)
	fi, err := a.t.lstat(dir, target)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, ok := a.touched[p]; ok {
		// This layer put p there: it survives, but a directory loses
		// what lower layers had in it.
		if fi.isDir() {
			return a.clearLower(p)
		}
		return nil
	}
	return a.remove(dir, target, p, fi)
}

// clearLower removes from the resolved directory p everything this layer
// did not create, recursively through the directories it did.
func (a *applier) clearLower(p string) error {
	names, err := a.t.readDirNames(p)
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, n := range names {
		child := path.Join(p, n)
		fi, err := a.t.lstat(p, n)
		if err != nil {
			return err
		}
		if _, ok := a.touched[child]; ok {
			if fi.isDir() {
				if err := a.clearLower(child); err != nil {
					return err
				}
			}
			continue
		}
		if err := a.remove(p, n, child, fi); err != nil {
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
	dir, base, p, err := a.place(name)
	if err != nil {
		return err
	}
	if a.cfg.ahead != nil {
		if f := a.cfg.ahead.take(a.entries); f != nil {
			return a.linkAhead(f, hdr, name, dir, base, p)
		}
	}
	async := a.w != nil && !hasEntryXattrs(hdr)
	if async {
		a.w.reserve()
	}
	// The file gets its permission bits when it is created, the setuid,
	// setgid and sticky bits once its content and owner are set.
	var ne newEntry
	f, err := retryCleared(a, dir, base, p, func() (fileHandle, error) {
		f, created, err := a.t.create(dir, base, entryMode(hdr).Perm())
		ne = created
		return f, err
	})
	if err != nil {
		if async {
			a.w.unreserve()
		}
		return err
	}
	a.touched[p] = struct{}{}
	if async {
		return a.writeAsync(ctx, f, tr, hdr, ne)
	}
	return a.finishFile(f, hdr, name, ne, a.copy(ctx, f, tr))
}

// finishFile sets the owner, mode, xattrs and times of the regular file f,
// unless putting its content in failed with err, and closes it.
func (a *applier) finishFile(f fileHandle, hdr *tar.Header, name string, ne newEntry, err error) error {
	if err == nil {
		err = a.fileMeta(f, hdr, name, ne)
	}
	if err == nil {
		err = f.utimes(entryTimes(hdr))
	}
	if cerr := f.close(); err == nil {
		err = cerr
	}
	return err
}

// linkAhead puts in place a regular file whose content was decompressed
// ahead into the unnamed file f (see aheadLayer), by linking f there, or
// by copying it where the tree cannot link it, and then sets the file's
// owner, mode, xattrs and times. It closes f.
func (a *applier) linkAhead(f *os.File, hdr *tar.Header, name, dir, base, p string) error {
	defer f.Close()
	var h fileHandle
	var ne newEntry // unknown for a linked file: f was not created there
	err := errNoLink
	if lt, ok := a.t.(unnamedLinker); ok {
		h, err = retryCleared(a, dir, base, p, func() (fileHandle, error) { return lt.linkUnnamed(f, dir, base) })
	}
	copyIn := errors.Is(err, errNoLink)
	if copyIn {
		h, err = retryCleared(a, dir, base, p, func() (fileHandle, error) {
			h, created, err := a.t.create(dir, base, entryMode(hdr).Perm())
			ne = created
			return h, err
		})
	}
	if err != nil {
		return err
	}
	a.touched[p] = struct{}{}
	if copyIn {
		_, err = io.CopyBuffer(h, io.NewSectionReader(f, 0, hdr.Size), a.buf)
	}
	return a.finishFile(h, hdr, name, ne, err)
}

// writeAsync hands the content of the file f, and what is left to set on
// it, to the writers. It decides here, in stream order, what the writers
// will do: the ownership mapping is the caller's function.
func (a *applier) writeAsync(ctx context.Context, f fileHandle, tr *tar.Reader, hdr *tar.Header, ne newEntry) error {
	pf := &pendingFile{f: f, meta: fileMetaPlan{name: hdr.Name, mode: entryMode(hdr)}}
	uid, gid, chown, err := a.owner(hdr)
	if err != nil {
		f.close()
		a.w.unreserve()
		return err
	}
	pf.meta.chown = chown && !(ne.known && ne.uid == uid && ne.gid == gid)
	pf.meta.uid, pf.meta.gid = uid, gid
	pf.meta.chmod = !ne.known || ne.mode != pf.meta.mode
	pf.meta.atime, pf.meta.mtime = entryTimes(hdr)
	return a.w.write(pf, tr, ctx.Err, a.stream.wrapErr)
}

// stopWriters waits for the writers to finish every file and stops them;
// it returns the first error of a writer. It may be called more than once.
func (a *applier) stopWriters() error {
	if a.w == nil {
		return nil
	}
	err := a.w.wait()
	a.w = nil
	return err
}

// copy streams the entry's content into f through the shared buffer,
// filling it before each write: decompressors hand out small pieces.
func (a *applier) copy(ctx context.Context, f fileHandle, r io.Reader) error {
	for {
		n, rerr := io.ReadFull(r, a.buf)
		if n > 0 {
			if _, err := f.Write(a.buf[:n]); err != nil {
				return err
			}
		}
		switch rerr {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return nil
		default:
			return a.stream.wrapErr(rerr)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// fileMeta sets the owner, mode and xattrs of a regular file, in the order
// that keeps them: chown clears setuid and setgid bits and file
// capabilities. It leaves out a chown or chmod that would change nothing
// in the file the system just created, as ne describes it.
func (a *applier) fileMeta(f fileHandle, hdr *tar.Header, name string, ne newEntry) error {
	if uid, gid, ok, err := a.owner(hdr); err != nil {
		return err
	} else if ok && !(ne.known && ne.uid == uid && ne.gid == gid) {
		if err := f.chown(uid, gid); err != nil {
			return err
		}
	}
	if mode := entryMode(hdr); !ne.known || ne.mode != mode {
		if err := f.chmod(mode); err != nil {
			return err
		}
	}
	return a.xattrs(name, hdr, f, "")
}

// directory creates a directory, or keeps the one there with its content
// and updates its metadata. Mode and times are set at the end of the
// layer, once its content is in.
func (a *applier) directory(hdr *tar.Header, name string) error {
	dir, base, p, err := a.place(name)
	if err != nil {
		return err
	}
	fi, err := a.t.lstat(dir, base)
	exists := err == nil
	switch {
	case isNotExist(err):
	case err != nil:
		return err
	case !fi.isDir():
		if err := a.remove(dir, base, p, fi); err != nil {
			return err
		}
		exists = false
	}
	owner := fi
	if !exists {
		ne, err := a.t.mkdir(dir, base, 0o700)
		if err != nil {
			return err
		}
		owner = entryInfo{uid: -1, gid: -1}
		if ne.known {
			owner.uid, owner.gid = ne.uid, ne.gid
		}
	} else if perm := fi.mode.Perm(); !a.privileged && perm&0o700 != 0o700 {
		// Keep the directory writable for the rest of the layer.
		if err := a.t.chmod(dir, base, perm|0o700); err != nil {
			return err
		}
	}
	a.touched[p] = struct{}{}
	a.dirs[name] = p
	return a.dirEntryMeta(p, hdr, name, owner)
}

// rootDir applies a directory entry that names the root itself: its
// metadata only.
func (a *applier) rootDir(hdr *tar.Header) error {
	return a.dirEntryMeta(".", hdr, ".", entryInfo{uid: -1, gid: -1})
}

// dirEntryMeta sets the owner and xattrs of the resolved directory p, whose
// owner cur says when known, and defers its mode and times.
func (a *applier) dirEntryMeta(p string, hdr *tar.Header, name string, cur entryInfo) error {
	uid, gid, chown, err := a.owner(hdr)
	if err != nil {
		return err
	}
	chown = chown && !(cur.uid == uid && cur.gid == gid)
	if chown || hasEntryXattrs(hdr) {
		f, err := a.t.openDir(p)
		if err != nil {
			return err
		}
		if chown {
			err = f.chown(uid, gid)
		}
		if err == nil {
			err = a.xattrs(name, hdr, f, "")
		}
		if cerr := f.close(); err == nil {
			err = cerr
		}
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
	dir, base, p, err := a.place(name)
	if err != nil {
		return err
	}
	if _, err := retryCleared(a, dir, base, p, func() (struct{}, error) {
		return struct{}{}, a.t.symlink(hdr.Linkname, dir, base)
	}); err != nil {
		return err
	}
	a.touched[p] = struct{}{}
	if uid, gid, ok, err := a.owner(hdr); err != nil {
		return err
	} else if ok {
		if err := a.t.lchown(dir, base, uid, gid); err != nil {
			return err
		}
	}
	if err := a.xattrs(name, hdr, nil, "symlinks"); err != nil {
		return err
	}
	atime, mtime := entryTimes(hdr)
	return a.t.lutimes(dir, base, atime, mtime)
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
	tbase := path.Base(target)
	tp := path.Join(tdir, tbase)
	fi, err := a.t.lstat(tdir, tbase)
	switch {
	case isNotExist(err):
		return invalidEntryf("hardlink %q: target %q does not exist", hdr.Name, hdr.Linkname)
	case err != nil:
		return fmt.Errorf("hardlink %q to %q: %w", hdr.Name, hdr.Linkname, err)
	case fi.isDir():
		return invalidEntryf("hardlink %q: target %q is a directory", hdr.Name, hdr.Linkname)
	}
	dir, base, p, err := a.place(name)
	if err != nil {
		return fmt.Errorf("hardlink %q: %w", hdr.Name, err)
	}
	a.touched[p] = struct{}{}
	if p == tp {
		return nil // a link to itself: already there
	}
	if err := a.clearPath(dir, base, p); err != nil {
		return fmt.Errorf("hardlink %q: %w", hdr.Name, err)
	}
	if err := a.t.link(tdir, tbase, dir, base); err != nil {
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
	dir, base, p, err := a.place(name)
	if err != nil {
		return err
	}
	if err := a.clearPath(dir, base, p); err != nil {
		return err
	}
	err = a.t.mknod(dir, base, hdr.Typeflag, 0o600, hdr.Devmajor, hdr.Devminor)
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
		if err := a.t.lchown(dir, base, uid, gid); err != nil {
			return err
		}
	}
	if err := a.t.chmod(dir, base, entryMode(hdr)); err != nil {
		return err
	}
	if err := a.xattrs(name, hdr, nil, kind+"s"); err != nil {
		return err
	}
	atime, mtime := entryTimes(hdr)
	return a.t.lutimes(dir, base, atime, mtime)
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
func (a *applier) xattrs(name string, hdr *tar.Header, f fileHandle, kind string) error {
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
		err := f.setxattr(k, []byte(hdr.PAXRecords[paxXattr+k]))
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
		if p != "." {
			fi, err := a.t.lstat(path.Dir(p), path.Base(p))
			if isNotExist(err) {
				continue // replaced later in the layer
			}
			if err != nil {
				return fmt.Errorf("directory %q: %w", p, err)
			}
			if !fi.isDir() {
				continue
			}
		}
		f, err := a.t.openDir(p)
		if err != nil {
			return fmt.Errorf("directory %q: %w", p, err)
		}
		err = f.chmod(m.mode)
		if err == nil {
			err = f.utimes(m.atime, m.mtime)
		}
		if cerr := f.close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("directory %q: %w", p, err)
		}
	}
	return nil
}

// entryMode returns the permission and setuid, setgid and sticky bits of an
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
