package unpack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// Directory is a Snapshotter that keeps each snapshot as a plain directory
// and needs no privileges: no mount is ever made. Prepare copies the
// parent's tree into the new snapshot's directory (with reflinks where the
// filesystem has them, copy_file_range otherwise), so that committed
// snapshots never change; it is the model of containerd's "native"
// snapshotter.
//
// The mounts it returns are one bind mount of that directory: {Type:
// "bind", Source: dir, Options: ["rbind", "rw"]} for an active snapshot,
// "ro" instead of "rw" for a view. A caller without privileges uses Source
// as the root filesystem directly; a view of a committed snapshot is its
// directory, which nothing enforces read-only then.
//
// Under the root directory given to [NewDirectory], "metadata" holds one
// small JSON file per snapshot (kind, parent, labels, times), each
// replaced atomically, and "snapshots" holds the trees. Changes to the
// metadata are made under an exclusive flock(2) on "lock", so several
// processes may share one root; copies and removals of trees run outside
// it. A process that dies in the middle of Prepare, Commit or Remove leaves
// no snapshot half made: the next NewDirectory on the root finishes or
// undoes what it left. (Where flock(2) is missing, on Windows among others,
// one process at a time may use a root.)
//
// A Directory is safe for concurrent use by multiple goroutines.
type Directory struct {
	root string
	// mu serializes this process's changes to the metadata, so that only
	// one goroutine at a time waits on the file lock.
	mu sync.Mutex
}

var _ Snapshotter = (*Directory)(nil)

const (
	dirLockFile     = "lock"
	dirMetadataDir  = "metadata"
	dirSnapshotsDir = "snapshots"
	dirTempPrefix   = ".tmp-"
)

// dirMeta is the metadata file of one snapshot.
type dirMeta struct {
	Key string `json:"key"`
	// ID names the snapshot's directory under "snapshots". It is empty for
	// a view of a committed snapshot, which uses its parent's directory.
	ID      string            `json:"id,omitempty"`
	Kind    string            `json:"kind"`
	Parent  string            `json:"parent,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	Updated time.Time         `json:"updated"`
}

func (m dirMeta) info() Info {
	return Info{
		Kind:    parseKind(m.Kind),
		Name:    m.Key,
		Parent:  m.Parent,
		Labels:  maps.Clone(m.Labels),
		Created: m.Created,
		Updated: m.Updated,
	}
}

// NewDirectory opens the directory snapshotter rooted at root, creating
// the directory if needed, and cleans up after any process that died
// while changing it: an interrupted Commit is completed, and the trees of
// interrupted Prepare and Remove calls are deleted.
//
// An empty root is an error that matches errdefs.ErrInvalidArgument.
func NewDirectory(root string) (*Directory, error) {
	if root == "" {
		return nil, fmt.Errorf("directory snapshotter: empty root: %w", errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("directory snapshotter %s: %w", root, err)
	}
	for _, sub := range []string{dirMetadataDir, dirSnapshotsDir} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o700); err != nil {
			return nil, fmt.Errorf("directory snapshotter %s: %w", root, err)
		}
	}
	lf, err := os.OpenFile(filepath.Join(abs, dirLockFile), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("directory snapshotter %s: %w", root, err)
	}
	lf.Close()
	d := &Directory{root: abs}
	if err := d.locked(d.recoverLocked); err != nil {
		return nil, fmt.Errorf("directory snapshotter %s: recover: %w", root, err)
	}
	return d, nil
}

// Stat returns the Info of the snapshot key, or an error that matches
// errdefs.ErrNotFound.
func (d *Directory) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(ctx, "stat", key); err != nil {
		return Info{}, err
	}
	m, err := d.readMeta(key)
	if err != nil {
		return Info{}, fmt.Errorf("stat: %w", err)
	}
	return m.info(), nil
}

// Usage returns the disk space and inodes of the snapshot key's
// directory, found by walking it: a tree copied from a parent counts in
// full, reflinked or not, and a view of a committed snapshot, which has no
// directory of its own, takes nothing. It honours ctx while it walks.
func (d *Directory) Usage(ctx context.Context, key string) (Usage, error) {
	if err := checkKey(ctx, "usage", key); err != nil {
		return Usage{}, err
	}
	m, err := d.readMeta(key)
	if err != nil {
		return Usage{}, fmt.Errorf("usage: %w", err)
	}
	if m.ID == "" {
		return Usage{}, nil
	}
	u, err := diskUsage(ctx, d.snapshotDir(m.ID))
	if err != nil {
		return Usage{}, fmt.Errorf("usage of snapshot %q: %w", key, err)
	}
	return u, nil
}

// Mounts returns the bind mount of the active snapshot or view key. A
// committed snapshot has no mounts: that is an error that matches
// errdefs.ErrFailedPrecondition.
func (d *Directory) Mounts(ctx context.Context, key string) ([]Mount, error) {
	if err := checkKey(ctx, "mounts", key); err != nil {
		return nil, err
	}
	m, err := d.readMeta(key)
	if err != nil {
		return nil, fmt.Errorf("mounts: %w", err)
	}
	mounts, err := d.mounts(m)
	if err != nil {
		return nil, fmt.Errorf("mounts of snapshot %q: %w", key, err)
	}
	return mounts, nil
}

func (d *Directory) mounts(m dirMeta) ([]Mount, error) {
	switch parseKind(m.Kind) {
	case KindActive:
		return bindMount(d.snapshotDir(m.ID), "rw"), nil
	case KindView:
		if m.ID != "" {
			return bindMount(d.snapshotDir(m.ID), "ro"), nil
		}
		pm, err := d.readMeta(m.Parent)
		if err != nil {
			return nil, fmt.Errorf("parent: %w", err)
		}
		return bindMount(d.snapshotDir(pm.ID), "ro"), nil
	}
	return nil, fmt.Errorf("%s snapshot: only active snapshots and views have mounts: %w", m.Kind, errdefs.ErrFailedPrecondition)
}

func bindMount(dir, mode string) []Mount {
	return []Mount{{Type: "bind", Source: dir, Options: []string{"rbind", mode}}}
}

// Prepare creates the active snapshot key as a copy of the committed
// snapshot parent (of nothing when parent is ""), and returns its bind
// mount. The copy keeps modes, times, extended attributes, hardlinks,
// symlinks, fifos and devices, and ownership when the process runs as
// root; it honours ctx. The tree can be large: the copy runs outside the
// metadata lock, so other calls proceed meanwhile.
//
// A key that exists is an error that matches errdefs.ErrAlreadyExists; a
// parent that does not exist, errdefs.ErrNotFound, and one that is not
// committed, errdefs.ErrInvalidArgument.
func (d *Directory) Prepare(ctx context.Context, key, parent string, opts ...SnapshotOption) ([]Mount, error) {
	return d.create(ctx, KindActive, key, parent, opts)
}

// View creates the view key of the committed snapshot parent and returns a
// read-only bind mount of the parent's own directory: nothing is copied.
// With parent "", the view is an empty directory of its own. Errors are
// those of Prepare.
func (d *Directory) View(ctx context.Context, key, parent string, opts ...SnapshotOption) ([]Mount, error) {
	return d.create(ctx, KindView, key, parent, opts)
}

func (d *Directory) create(ctx context.Context, kind Kind, key, parent string, opts []SnapshotOption) ([]Mount, error) {
	op := "prepare"
	if kind == KindView {
		op = "view"
	}
	if err := checkKey(ctx, op, key); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	info := Info{}
	for _, o := range opts {
		if err := o(&info); err != nil {
			return nil, fmt.Errorf("%s snapshot %q: %w", op, key, err)
		}
	}
	m := dirMeta{Key: key, Kind: kind.String(), Parent: parent, Labels: info.Labels, Created: now, Updated: now}

	var (
		parentID string
		dirLock  io.Closer // held while the new tree has no metadata
		dir      string
	)
	defer func() {
		if dirLock != nil {
			dirLock.Close()
		}
	}()
	copying := false
	err := d.locked(func() error {
		if err := d.checkNew(key); err != nil {
			return err
		}
		if parent != "" {
			pm, err := d.readCommitted(parent)
			if err != nil {
				return err
			}
			parentID = pm.ID
		}
		if kind == KindView && parent != "" {
			return d.writeMeta(m)
		}
		m.ID = newSnapshotID()
		dir = d.snapshotDir(m.ID)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
			return err
		}
		lf, err := lockFileExclusive(dir)
		if err != nil {
			return err
		}
		dirLock = lf
		if parent == "" {
			return d.writeMeta(m)
		}
		copying = true
		return nil
	})
	if err == nil && copying {
		// Copies of one parent take turns: a copy may have to lend the
		// owner read permission on an entry for a moment (see copyTree).
		var pl io.Closer
		if pl, err = lockFileExclusive(d.snapshotDir(parentID)); err == nil {
			err = copyTree(ctx, d.snapshotDir(parentID), dir)
			pl.Close()
		}
		if err == nil {
			err = d.locked(func() error {
				// The parent may have gone, or been remade, while the
				// copy ran outside the lock; so may key have appeared.
				if err := d.checkNew(key); err != nil {
					return err
				}
				pm, err := d.readCommitted(parent)
				if err != nil {
					return err
				}
				if pm.ID != parentID {
					return fmt.Errorf("parent %q was replaced during the copy: %w", parent, errdefs.ErrAborted)
				}
				return d.writeMeta(m)
			})
		}
	}
	if err != nil {
		if dir != "" {
			err = withCleanup(err, removeTree(dir))
		}
		return nil, fmt.Errorf("%s snapshot %q: %w", op, key, err)
	}
	mounts, err := d.mounts(m)
	if err != nil {
		return nil, fmt.Errorf("%s snapshot %q: %w", op, key, err)
	}
	return mounts, nil
}

// Commit turns the active snapshot key into the committed snapshot name,
// keeping its directory, parent and labels (plus those opts add), and
// removes key. A missing key is an error that matches
// errdefs.ErrNotFound; a view or committed key,
// errdefs.ErrFailedPrecondition; a name that exists,
// errdefs.ErrAlreadyExists, and key is then left as it was.
func (d *Directory) Commit(ctx context.Context, name, key string, opts ...SnapshotOption) error {
	if err := checkKey(ctx, "commit", key); err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("commit snapshot %q: empty name: %w", key, errdefs.ErrInvalidArgument)
	}
	err := d.locked(func() error {
		m, err := d.readMeta(key)
		if err != nil {
			return err
		}
		if parseKind(m.Kind) != KindActive {
			return fmt.Errorf("snapshot %q is %s, not active: %w", key, m.Kind, errdefs.ErrFailedPrecondition)
		}
		if err := d.checkNew(name); err != nil {
			return err
		}
		info := Info{Labels: maps.Clone(m.Labels)}
		for _, o := range opts {
			if err := o(&info); err != nil {
				return err
			}
		}
		now := time.Now().UTC()
		c := dirMeta{Key: name, ID: m.ID, Kind: KindCommitted.String(), Parent: m.Parent, Labels: info.Labels, Created: now, Updated: now}
		// Written before key's is removed: a crash in between leaves two
		// records of one tree, which recovery settles for the committed one.
		if err := d.writeMeta(c); err != nil {
			return err
		}
		return d.removeMeta(key)
	})
	if err != nil {
		return fmt.Errorf("commit snapshot %q as %q: %w", key, name, err)
	}
	return nil
}

// Remove deletes the snapshot key and its directory. A missing key is an
// error that matches errdefs.ErrNotFound, and a snapshot that is the parent
// of another, errdefs.ErrFailedPrecondition. The key is gone when the
// metadata lock is released; its tree is deleted after that, once any
// Prepare copying from it has finished.
func (d *Directory) Remove(ctx context.Context, key string) error {
	if err := checkKey(ctx, "remove", key); err != nil {
		return err
	}
	var dir string
	err := d.locked(func() error {
		m, err := d.readMeta(key)
		if err != nil {
			return err
		}
		metas, err := d.listMeta()
		if err != nil {
			return err
		}
		shared := false
		for _, c := range metas {
			if c.Parent == key {
				return fmt.Errorf("snapshot %q is the parent of %q: %w", key, c.Key, errdefs.ErrFailedPrecondition)
			}
			// Until recovery settles an interrupted Commit, its active
			// and committed records share one tree.
			shared = shared || (c.Key != key && c.ID != "" && c.ID == m.ID)
		}
		if m.ID != "" && !shared {
			dir = d.snapshotDir(m.ID)
		}
		return d.removeMeta(key)
	})
	if err != nil {
		return fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	if dir == "" {
		return nil
	}
	// The key is gone; the tree goes once no copy of it runs. Holding its
	// lock tells NewDirectory's recovery, elsewhere, to leave it to us.
	lf, err := lockFileExclusive(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // recovery in another process deleted it meanwhile
	}
	if err != nil {
		return fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	defer lf.Close()
	if err := removeTree(dir); err != nil {
		return fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	return nil
}

// Walk calls fn with the Info of every snapshot, sorted by key. It reads
// the metadata first and calls fn outside the lock, so fn may call d.
func (d *Directory) Walk(ctx context.Context, fn WalkFunc) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("walk snapshots: %w", err)
	}
	var metas []dirMeta
	if err := d.locked(func() (err error) {
		metas, err = d.listMeta()
		return err
	}); err != nil {
		return fmt.Errorf("walk snapshots: %w", err)
	}
	slices.SortFunc(metas, func(a, b dirMeta) int { return strings.Compare(a.Key, b.Key) })
	for _, m := range metas {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("walk snapshots: %w", err)
		}
		if err := fn(ctx, m.info()); err != nil {
			return err
		}
	}
	return nil
}

// checkKey checks a key argument and ctx.
func checkKey(ctx context.Context, op, key string) error {
	if key == "" {
		return fmt.Errorf("%s snapshot: empty key: %w", op, errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s snapshot %q: %w", op, key, err)
	}
	return nil
}

// locked runs fn holding the process mutex and the file lock.
func (d *Directory) locked(fn func() error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	lf, err := lockFileExclusive(filepath.Join(d.root, dirLockFile))
	if err != nil {
		return err
	}
	defer lf.Close()
	return fn()
}

func (d *Directory) snapshotDir(id string) string {
	return filepath.Join(d.root, dirSnapshotsDir, id)
}

// metaPath names key's metadata file by a hash of the key, so that any
// key makes a safe file name.
func (d *Directory) metaPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(d.root, dirMetadataDir, hex.EncodeToString(sum[:])+".json")
}

// readMeta reads key's metadata, or fails with an error that matches
// errdefs.ErrNotFound.
func (d *Directory) readMeta(key string) (dirMeta, error) {
	b, err := os.ReadFile(d.metaPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return dirMeta{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	if err != nil {
		return dirMeta{}, fmt.Errorf("snapshot %q: %w", key, err)
	}
	m, err := decodeMeta(b)
	if err != nil {
		return dirMeta{}, fmt.Errorf("snapshot %q: %w", key, err)
	}
	if m.Key != key {
		return dirMeta{}, fmt.Errorf("snapshot %q: metadata names %q: %w", key, m.Key, errdefs.ErrDataLoss)
	}
	return m, nil
}

func decodeMeta(b []byte) (dirMeta, error) {
	var m dirMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return dirMeta{}, fmt.Errorf("decode metadata: %w: %w", err, errdefs.ErrDataLoss)
	}
	if parseKind(m.Kind) == KindUnknown || m.Key == "" || (m.ID == "" && (m.Kind != KindView.String() || m.Parent == "")) {
		return dirMeta{}, fmt.Errorf("metadata of %q is incomplete: %w", m.Key, errdefs.ErrDataLoss)
	}
	return m, nil
}

// readCommitted reads the metadata of parent, which must be committed.
func (d *Directory) readCommitted(parent string) (dirMeta, error) {
	pm, err := d.readMeta(parent)
	if err != nil {
		return dirMeta{}, fmt.Errorf("parent: %w", err)
	}
	if parseKind(pm.Kind) != KindCommitted {
		return dirMeta{}, fmt.Errorf("parent %q is %s, not committed: %w", parent, pm.Kind, errdefs.ErrInvalidArgument)
	}
	return pm, nil
}

// checkNew fails with errdefs.ErrAlreadyExists when key names a snapshot.
func (d *Directory) checkNew(key string) error {
	_, err := os.Lstat(d.metaPath(key))
	switch {
	case err == nil:
		return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	return err
}

// writeMeta replaces m's metadata file atomically: a temporary file,
// synced, renamed over it, and the directory synced.
func (d *Directory) writeMeta(m dirMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	dir := filepath.Join(d.root, dirMetadataDir)
	f, err := os.CreateTemp(dir, dirTempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, d.metaPath(m.Key))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func (d *Directory) removeMeta(key string) error {
	if err := os.Remove(d.metaPath(key)); err != nil {
		return err
	}
	return syncDir(filepath.Join(d.root, dirMetadataDir))
}

// listMeta reads every metadata file; temporary files are skipped.
func (d *Directory) listMeta() ([]dirMeta, error) {
	dir := filepath.Join(d.root, dirMetadataDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	metas := make([]dirMeta, 0, len(entries))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), dirTempPrefix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		m, err := decodeMeta(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		metas = append(metas, m)
	}
	return metas, nil
}

// recoverLocked settles what a process that died under the lock, or while
// copying or removing a tree, left behind.
func (d *Directory) recoverLocked() error {
	mdir := filepath.Join(d.root, dirMetadataDir)
	entries, err := os.ReadDir(mdir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), dirTempPrefix) {
			if err := os.Remove(filepath.Join(mdir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	metas, err := d.listMeta()
	if err != nil {
		return err
	}
	// A tree with two records is an interrupted Commit: keep the committed one.
	byID := map[string][]dirMeta{}
	for _, m := range metas {
		if m.ID != "" {
			byID[m.ID] = append(byID[m.ID], m)
		}
	}
	for _, ms := range byID {
		if len(ms) < 2 || !slices.ContainsFunc(ms, func(m dirMeta) bool { return m.Kind == KindCommitted.String() }) {
			continue
		}
		for _, m := range ms {
			if m.Kind == KindActive.String() {
				if err := d.removeMeta(m.Key); err != nil {
					return err
				}
			}
		}
	}
	// A tree without a record is an interrupted Prepare or Remove, unless a
	// live process holds its lock because it is copying or deleting it.
	trees, err := os.ReadDir(filepath.Join(d.root, dirSnapshotsDir))
	if err != nil {
		return err
	}
	for _, t := range trees {
		if _, ok := byID[t.Name()]; ok {
			continue
		}
		dir := d.snapshotDir(t.Name())
		lf, err := tryLockExclusive(dir)
		if err != nil {
			return err
		}
		if lf == nil {
			continue
		}
		err = removeTree(dir)
		lf.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// newSnapshotID returns a fresh random directory name.
func newSnapshotID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// syncDir flushes a directory's entries to stable storage.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// withCleanup returns err, saying so when cleaning up after it failed too.
func withCleanup(err, cerr error) error {
	if cerr == nil {
		return err
	}
	return fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
}

// removeTree deletes path and everything below it, making directories
// writable where a layer left them read-only for their owner.
func removeTree(path string) error {
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}
