package unpack

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pullkit/pullkit/internal/pagecache"
)

// fdTree is the Linux tree: raw directory descriptors kept in a
// least-recently-used cache, and *at system calls on single names with
// O_NOFOLLOW or AT_SYMLINK_NOFOLLOW, so that each file costs the calls GNU
// tar makes or fewer. A directory missing from the cache is opened with
// openat2(2) and RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS from its nearest open
// ancestor, one system call that cannot leave the root; without openat2 it
// is opened one component at a time with O_NOFOLLOW, as [os.Root] does.
// Rare operations (removing trees, listing a directory) go through the
// [os.Root].
type fdTree struct {
	root    *os.Root
	rootDir fdDir // the root itself, never in the cache
	max     int   // directories kept open
	dirs    map[string]*fdDir
	lru     fdDir // sentinel of the list of open directories, most recent first

	umask      fs.FileMode // the process's, read when the tree is made
	umaskOK    bool
	euid, egid int
}

// fdDir is an open directory, and what files created in it get.
type fdDir struct {
	path       string
	fd         int
	info       newEntryRule
	prev, next *fdDir
}

// newEntryRule says what owner and permission bits the system gives a new
// entry in a directory.
type newEntryRule struct {
	checked bool
	known   bool        // false: a default ACL, or the umask is unknown
	gid     int         // group of new entries
	setgid  bool        // new directories inherit the setgid bit
	umask   fs.FileMode // cleared from the permission bits asked for
}

// openat2State is 0 until openat2 is tried, then 1 when it works and 2
// when the kernel (or a seccomp filter) refuses it.
var openat2State atomic.Int32

func newTree(root *os.Root) (tree, error) {
	if forceRootTree {
		return newRootTree(root), nil
	}
	f, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var fd int
	if err := controlFd(f, "fcntl", root.Name(), func(rfd int) error {
		var err error
		fd, err = unix.FcntlInt(uintptr(rfd), unix.F_DUPFD_CLOEXEC, 0)
		return err
	}); err != nil {
		return nil, err
	}
	t := &fdTree{root: root, rootDir: fdDir{path: ".", fd: fd}, max: heldDirLimit(), dirs: make(map[string]*fdDir)}
	t.lru.prev, t.lru.next = &t.lru, &t.lru
	t.umask, t.umaskOK = processUmask()
	t.euid, t.egid = os.Geteuid(), os.Getegid()
	return t, nil
}

// heldDirLimit is how many directories one Apply keeps open: an eighth of
// the descriptors the process may open, so that several Apply calls at once
// leave room for everything else, from 64 to 4096.
func heldDirLimit() int {
	return int(min(max(openFileLimit()/8, 64), 4096))
}

// fileBudget is how many files one Apply keeps open while writers finish
// them: a sixteenth of the descriptors the process may open, from 16 to
// 512.
func (t *fdTree) fileBudget() int {
	return int(min(max(openFileLimit()/16, 16), 512))
}

// openFileLimit is the process's soft limit of open files (Go raises it to
// the hard limit at start), or 1024 when unknown.
func openFileLimit() uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	return rl.Cur
}

// dir returns the open directory at p.
func (t *fdTree) dir(p string) (*fdDir, error) {
	if p == "." {
		return &t.rootDir, nil
	}
	if d, ok := t.dirs[p]; ok {
		t.unlink(d)
		t.pushFront(d)
		return d, nil
	}
	// Start from the nearest open ancestor.
	base, baseFD := ".", t.rootDir.fd
	for a := path.Dir(p); a != "."; a = path.Dir(a) {
		if d, ok := t.dirs[a]; ok {
			base, baseFD = a, d.fd
			break
		}
	}
	rest := p
	if base != "." {
		rest = p[len(base)+1:]
	}
	fd, err := openDirBeneath(baseFD, rest)
	if errors.Is(err, errNoOpenat2) {
		// One component at a time, keeping each directory open.
		for _, c := range strings.Split(rest, "/") {
			next := path.Join(base, c)
			if d, ok := t.dirs[next]; ok {
				base, baseFD = next, d.fd
				continue
			}
			cfd, err := openDirAt(baseFD, c)
			if err != nil {
				return nil, &os.PathError{Op: "openat", Path: next, Err: err}
			}
			d := t.add(next, cfd)
			base, baseFD = next, d.fd
		}
		return t.dirs[p], nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: p, Err: err}
	}
	return t.add(p, fd), nil
}

var errNoOpenat2 = errors.New("openat2 not available")

// openDirBeneath opens the directory rel under dirfd, following no symlink
// and never resolving to a place outside dirfd.
func openDirBeneath(dirfd int, rel string) (int, error) {
	if openat2State.Load() == 2 {
		return -1, errNoOpenat2
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	var fd int
	err := retryOnEINTR(func() error {
		var err error
		fd, err = unix.Openat2(dirfd, rel, &how)
		return err
	})
	switch {
	case err == unix.ENOSYS || (err == unix.EPERM && openat2State.Load() == 0):
		// Not in this kernel, or refused by a seccomp filter.
		openat2State.Store(2)
		return -1, errNoOpenat2
	case err == unix.EAGAIN:
		// A rename raced the lookup; the walk does not need to retry.
		return -1, errNoOpenat2
	case err != nil:
		return -1, err
	}
	openat2State.Store(1)
	return fd, nil
}

// openDirAt opens the directory name in dirfd, not following a symlink.
func openDirAt(dirfd int, name string) (int, error) {
	var fd int
	err := retryOnEINTR(func() error {
		var err error
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// add caches the open directory fd at p, closing the least recently used
// one when the cache is full.
func (t *fdTree) add(p string, fd int) *fdDir {
	if len(t.dirs) >= t.max {
		old := t.lru.prev
		t.unlink(old)
		delete(t.dirs, old.path)
		unix.Close(old.fd)
	}
	d := &fdDir{path: p, fd: fd}
	t.dirs[p] = d
	t.pushFront(d)
	return d
}

func (t *fdTree) unlink(d *fdDir) {
	d.prev.next, d.next.prev = d.next, d.prev
	d.prev, d.next = nil, nil
}

func (t *fdTree) pushFront(d *fdDir) {
	d.prev, d.next = &t.lru, t.lru.next
	t.lru.next.prev = d
	t.lru.next = d
}

// rule returns what the system gives new entries in d, looking once.
func (t *fdTree) rule(d *fdDir) newEntryRule {
	if !d.info.checked {
		d.info = t.lookRule(d.fd)
	}
	return d.info
}

func (t *fdTree) lookRule(fd int) newEntryRule {
	r := newEntryRule{checked: true}
	if !t.umaskOK {
		return r
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return r
	}
	// A default ACL, not the umask, decides the mode of new entries.
	_, err := unix.Fgetxattr(fd, "system.posix_acl_default", nil)
	if !errors.Is(err, unix.ENODATA) && !isXattrUnsupported(err) {
		return r
	}
	r.known, r.umask, r.gid = true, t.umask, t.egid
	if st.Mode&unix.S_ISGID != 0 {
		r.gid, r.setgid = int(st.Gid), true
	}
	return r
}

// forgetRule drops what is known of the directory at p, whose mode, owner
// or ACL changed.
func (t *fdTree) forgetRule(p string) {
	if p == "." {
		t.rootDir.info = newEntryRule{}
	} else if d, ok := t.dirs[p]; ok {
		d.info = newEntryRule{}
	}
}

func (t *fdTree) lstat(dir, name string) (entryInfo, error) {
	d, err := t.dir(dir)
	if err != nil {
		return entryInfo{}, err
	}
	var st unix.Stat_t
	if err := retryOnEINTR(func() error { return unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return entryInfo{}, &os.PathError{Op: "lstat", Path: path.Join(dir, name), Err: err}
	}
	return entryInfo{mode: statMode(st.Mode), uid: int(st.Uid), gid: int(st.Gid)}, nil
}

func (t *fdTree) readlink(dir, name string) (string, error) {
	d, err := t.dir(dir)
	if err != nil {
		return "", err
	}
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		var n int
		err := retryOnEINTR(func() error {
			var err error
			n, err = unix.Readlinkat(d.fd, name, buf)
			return err
		})
		if err != nil {
			return "", &os.PathError{Op: "readlinkat", Path: path.Join(dir, name), Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func (t *fdTree) mkdir(dir, name string, perm fs.FileMode) (newEntry, error) {
	d, err := t.dir(dir)
	if err != nil {
		return newEntry{}, err
	}
	if err := retryOnEINTR(func() error { return unix.Mkdirat(d.fd, name, uint32(perm.Perm())) }); err != nil {
		return newEntry{}, &os.PathError{Op: "mkdirat", Path: path.Join(dir, name), Err: err}
	}
	r := t.rule(d)
	if !r.known {
		return newEntry{}, nil
	}
	ne := newEntry{known: true, uid: t.euid, gid: r.gid, mode: perm.Perm() &^ r.umask}
	if r.setgid {
		ne.mode |= fs.ModeSetgid
	}
	return ne, nil
}

func (t *fdTree) create(dir, name string, perm fs.FileMode) (fileHandle, newEntry, error) {
	d, err := t.dir(dir)
	if err != nil {
		return nil, newEntry{}, err
	}
	var fd int
	err = retryOnEINTR(func() error {
		var err error
		fd, err = unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return nil, newEntry{}, &os.PathError{Op: "openat", Path: path.Join(dir, name), Err: err}
	}
	f := &fdFile{fd: fd, name: path.Join(dir, name)}
	r := t.rule(d)
	if !r.known {
		return f, newEntry{}, nil
	}
	return f, newEntry{known: true, uid: t.euid, gid: r.gid, mode: perm.Perm() &^ r.umask}, nil
}

// linkUnnamed links the unnamed file f at name in dir: linkat(2) of the
// descriptor itself, which needs CAP_DAC_READ_SEARCH, else of its
// /proc/self/fd link. It refuses (errNoLink) where a file created there
// would get another group, or a default ACL, than f has, and where linkat
// fails for any reason but an existing name (another file system, no
// /proc): creating the file reports what is wrong with the place, if
// anything.
func (t *fdTree) linkUnnamed(f *os.File, dir, name string) (fileHandle, error) {
	d, err := t.dir(dir)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	var st unix.Stat_t
	if r := t.rule(d); !r.known || unix.Fstat(fd, &st) != nil || int(st.Gid) != r.gid {
		return nil, errNoLink
	}
	err = retryOnEINTR(func() error { return unix.Linkat(fd, "", d.fd, name, unix.AT_EMPTY_PATH) })
	if err == unix.ENOENT || err == unix.EPERM {
		err = retryOnEINTR(func() error {
			return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), d.fd, name, unix.AT_SYMLINK_FOLLOW)
		})
	}
	switch {
	case err == unix.EEXIST:
		return nil, &os.LinkError{Op: "linkat", Old: f.Name(), New: path.Join(dir, name), Err: err}
	case err != nil:
		return nil, errNoLink
	}
	return &fdFile{fd: fd, name: path.Join(dir, name), borrowed: true}, nil
}

func (t *fdTree) symlink(target, dir, name string) error {
	d, err := t.dir(dir)
	if err != nil {
		return err
	}
	if err := retryOnEINTR(func() error { return unix.Symlinkat(target, d.fd, name) }); err != nil {
		return &os.LinkError{Op: "symlinkat", Old: target, New: path.Join(dir, name), Err: err}
	}
	return nil
}

func (t *fdTree) link(targetDir, targetName, dir, name string) error {
	td, err := t.dir(targetDir)
	if err != nil {
		return err
	}
	tfd := td.fd
	d, err := t.dir(dir)
	if err != nil {
		return err
	}
	if err := retryOnEINTR(func() error { return unix.Linkat(tfd, targetName, d.fd, name, 0) }); err != nil {
		return &os.LinkError{Op: "linkat", Old: path.Join(targetDir, targetName), New: path.Join(dir, name), Err: err}
	}
	return nil
}

func (t *fdTree) mknod(dir, name string, typeflag byte, mode fs.FileMode, major, minor int64) error {
	d, err := t.dir(dir)
	if err != nil {
		return err
	}
	var kind uint32
	switch typeflag {
	case '6': // tar.TypeFifo
		kind = unix.S_IFIFO
	case '3': // tar.TypeChar
		kind = unix.S_IFCHR
	case '4': // tar.TypeBlock
		kind = unix.S_IFBLK
	}
	dev := int(unix.Mkdev(uint32(major), uint32(minor)))
	if err := retryOnEINTR(func() error { return unix.Mknodat(d.fd, name, kind|uint32(mode.Perm()), dev) }); err != nil {
		return &os.PathError{Op: "mknodat", Path: path.Join(dir, name), Err: err}
	}
	return nil
}

// chmod sets the mode of name without following a symlink there:
// fchmodat2 with AT_SYMLINK_NOFOLLOW, else an O_PATH descriptor of the entry
// changed through /proc/self/fd, which names the inode, not a path; without
// /proc, through the [os.Root], which may follow a symlink, but not out of
// the root.
func (t *fdTree) chmod(dir, name string, mode fs.FileMode) error {
	d, err := t.dir(dir)
	if err != nil {
		return err
	}
	t.forgetRule(path.Join(dir, name))
	m := unixMode(mode)
	err = retryOnEINTR(func() error { return unix.Fchmodat(d.fd, name, m, unix.AT_SYMLINK_NOFOLLOW) })
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS || err == unix.EPERM {
		var pfd int
		if err = retryOnEINTR(func() error {
			var err error
			pfd, err = unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		}); err == nil {
			var st unix.Stat_t
			if err = unix.Fstat(pfd, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
			if err == nil {
				err = unix.Chmod("/proc/self/fd/"+strconv.Itoa(pfd), m)
				if err == unix.ENOENT {
					err = t.root.Chmod(path.Join(dir, name), mode)
				}
			}
			unix.Close(pfd)
		}
	}
	if err != nil {
		return &os.PathError{Op: "chmod", Path: path.Join(dir, name), Err: err}
	}
	return nil
}

func (t *fdTree) lchown(dir, name string, uid, gid int) error {
	d, err := t.dir(dir)
	if err != nil {
		return err
	}
	t.forgetRule(path.Join(dir, name))
	if err := retryOnEINTR(func() error { return unix.Fchownat(d.fd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return &os.PathError{Op: "lchown", Path: path.Join(dir, name), Err: err}
	}
	return nil
}

func (t *fdTree) lutimes(dir, name string, atime, mtime time.Time) error {
	d, err := t.dir(dir)
	if err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := retryOnEINTR(func() error { return unix.UtimesNanoAt(d.fd, name, ts, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return &os.PathError{Op: "utimensat", Path: path.Join(dir, name), Err: err}
	}
	return nil
}

func (t *fdTree) remove(dir, name string) error {
	d, err := t.dir(dir)
	if err != nil {
		return err
	}
	err = retryOnEINTR(func() error { return unix.Unlinkat(d.fd, name, 0) })
	if err == unix.EISDIR || err == unix.EPERM {
		err = retryOnEINTR(func() error { return unix.Unlinkat(d.fd, name, unix.AT_REMOVEDIR) })
	}
	if err != nil {
		return &os.PathError{Op: "unlinkat", Path: path.Join(dir, name), Err: err}
	}
	return nil
}

func (t *fdTree) removeAll(dir, name string) error {
	p := path.Join(dir, name)
	t.forget(p)
	return t.root.RemoveAll(p)
}

func (t *fdTree) readDirNames(dir string) ([]string, error) {
	f, err := t.root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (t *fdTree) openDir(dir string) (fileHandle, error) {
	d, err := t.dir(dir)
	if err != nil {
		return nil, err
	}
	t.forgetRule(dir)
	// The cache owns the descriptor: closing the handle keeps it open.
	return &fdFile{fd: d.fd, name: dir, borrowed: true}, nil
}

func (t *fdTree) forget(dir string) {
	for p, d := range t.dirs {
		if p == dir || (dir != "." && strings.HasPrefix(p, dir+"/")) {
			t.unlink(d)
			delete(t.dirs, p)
			unix.Close(d.fd)
		}
	}
}

func (t *fdTree) sync() error {
	if err := retryOnEINTR(func() error { return unix.Syncfs(t.rootDir.fd) }); err != nil {
		return &os.PathError{Op: "syncfs", Path: t.root.Name(), Err: err}
	}
	return nil
}

func (t *fdTree) asyncFiles() bool { return true }

func (t *fdTree) close() {
	for _, d := range t.dirs {
		unix.Close(d.fd)
	}
	clear(t.dirs)
	t.lru.prev, t.lru.next = &t.lru, &t.lru
	unix.Close(t.rootDir.fd)
}

// fdFile is an open file or directory descriptor.
type fdFile struct {
	fd       int
	name     string
	borrowed bool // owned by the directory cache: close leaves it open
}

func (f *fdFile) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(f.fd, p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &os.PathError{Op: "write", Path: f.name, Err: err}
		}
		if m == 0 {
			return n, &os.PathError{Op: "write", Path: f.name, Err: unix.EIO}
		}
		n += m
	}
	return n, nil
}

func (f *fdFile) writeAt(p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pwrite(f.fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return max(n, 0), &os.PathError{Op: "pwrite", Path: f.name, Err: err}
		}
		return n, nil
	}
}

func (f *fdFile) chown(uid, gid int) error {
	return f.wrap("fchown", retryOnEINTR(func() error { return unix.Fchown(f.fd, uid, gid) }))
}

func (f *fdFile) chmod(mode fs.FileMode) error {
	return f.wrap("fchmod", retryOnEINTR(func() error { return unix.Fchmod(f.fd, unixMode(mode)) }))
}

func (f *fdFile) setxattr(key string, value []byte) error {
	return f.wrap("fsetxattr", retryOnEINTR(func() error { return unix.Fsetxattr(f.fd, key, value, 0) }))
}

// utimes sets the times of the descriptor itself: utimensat(fd, NULL, ...),
// which is futimens(3).
func (f *fdFile) utimes(atime, mtime time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	return f.wrap("futimens", retryOnEINTR(func() error {
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(f.fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	}))
}

func (f *fdFile) close() error {
	if f.borrowed {
		return nil
	}
	// close(2) is not retried on EINTR: the descriptor is gone either way.
	return f.wrap("close", unix.Close(f.fd))
}

// startWriteback starts the writeback of bytes [off, off+n) of the file.
func (f *fdFile) startWriteback(off, n int64) bool {
	return !f.borrowed && pagecache.StartWriteback(uintptr(f.fd), off, n) == nil
}

// dropWritten waits until bytes [off, off+n) of the file are on disk and
// drops them from the page cache.
func (f *fdFile) dropWritten(off, n int64) {
	if !f.borrowed {
		pagecache.WaitAndDrop(uintptr(f.fd), off, n)
	}
}

func (f *fdFile) wrap(op string, err error) error {
	if err != nil {
		return &os.PathError{Op: op, Path: f.name, Err: err}
	}
	return nil
}

// unixMode converts the permission and setuid, setgid and sticky bits of
// mode to the system's.
func unixMode(mode fs.FileMode) uint32 {
	m := uint32(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		m |= unix.S_ISUID
	}
	if mode&fs.ModeSetgid != 0 {
		m |= unix.S_ISGID
	}
	if mode&fs.ModeSticky != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

// statMode converts a stat mode to an fs.FileMode.
func statMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// processUmask returns the process's umask, read from /proc/self/status
// (Linux 4.7 and later) without changing it; false when it cannot be read.
func processUmask() (fs.FileMode, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return 0, false
			}
			return fs.FileMode(m) & fs.ModePerm, true
		}
	}
	return 0, false
}
