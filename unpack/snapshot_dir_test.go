//go:build linux

package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func newTestDirectory(t *testing.T) *Directory {
	t.Helper()
	d, err := NewDirectory(t.TempDir())
	if err != nil {
		t.Fatalf("NewDirectory() error = %v", err)
	}
	return d
}

// mustPrepare prepares key on parent and returns its directory.
func mustPrepare(t *testing.T, sn Snapshotter, key, parent string, opts ...SnapshotOption) string {
	t.Helper()
	mounts, err := sn.Prepare(context.Background(), key, parent, opts...)
	if err != nil {
		t.Fatalf("Prepare(%q, %q) error = %v", key, parent, err)
	}
	dir, err := mountDir(mounts)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// mustLayer prepares key on parent, writes files (name → content) in it
// and commits it as name.
func mustLayer(t *testing.T, sn Snapshotter, name, parent string, files map[string]string) {
	t.Helper()
	key := "active-" + name
	dir := mustPrepare(t, sn, key, parent)
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := sn.Commit(context.Background(), name, key); err != nil {
		t.Fatalf("Commit(%q, %q) error = %v", name, key, err)
	}
}

func TestDirectoryLifecycle(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)

	before := time.Now().Add(-time.Second)
	mounts, err := d.Prepare(ctx, "a", "", WithLabels(map[string]string{"x": "1"}))
	if err != nil {
		t.Fatalf("Prepare() error = %v", err)
	}
	if len(mounts) != 1 || mounts[0].Type != "bind" || !slices.Equal(mounts[0].Options, []string{"rbind", "rw"}) || !filepath.IsAbs(mounts[0].Source) {
		t.Fatalf("Prepare() mounts = %+v, want one rbind,rw bind mount of an absolute directory", mounts)
	}
	if got, err := d.Mounts(ctx, "a"); err != nil || !slices.EqualFunc(got, mounts, mountEqual) {
		t.Fatalf("Mounts(a) = %+v, %v, want %+v", got, err, mounts)
	}
	info, err := d.Stat(ctx, "a")
	if err != nil || info.Kind != KindActive || info.Name != "a" || info.Parent != "" || info.Labels["x"] != "1" || info.Created.Before(before) || !info.Updated.Equal(info.Created) {
		t.Fatalf("Stat(a) = %+v, %v", info, err)
	}
	if err := os.WriteFile(filepath.Join(mounts[0].Source, "f"), []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(ctx, "c1", "a", WithLabels(map[string]string{"y": "2"})); err != nil {
		t.Fatalf("Commit() error = %v", err)
	}
	if _, err := d.Stat(ctx, "a"); !errdefs.IsNotFound(err) {
		t.Fatalf("Stat(a) after commit error = %v, want NotFound", err)
	}
	info, err = d.Stat(ctx, "c1")
	if err != nil || info.Kind != KindCommitted || info.Labels["x"] != "1" || info.Labels["y"] != "2" {
		t.Fatalf("Stat(c1) = %+v, %v, want committed with both labels", info, err)
	}

	// A child starts as a copy of its parent, which it cannot change.
	dir := mustPrepare(t, d, "b", "c1")
	if got, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(got) != "one" {
		t.Fatalf("child f = %q, %v, want the parent's", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(ctx, "c2", "b"); err != nil {
		t.Fatal(err)
	}
	if got := viewTree(t, d, "c1")["f"]; got.String() != treeFile("one", 0o644).String() {
		t.Fatalf("parent f = %v after the child changed it", got)
	}

	// A view of a committed snapshot is its directory, read-only.
	vm, err := d.View(ctx, "v", "c2")
	if err != nil {
		t.Fatalf("View() error = %v", err)
	}
	if len(vm) != 1 || !slices.Equal(vm[0].Options, []string{"rbind", "ro"}) {
		t.Fatalf("View() mounts = %+v, want rbind,ro", vm)
	}
	if got, err := os.ReadFile(filepath.Join(vm[0].Source, "f")); err != nil || string(got) != "two" {
		t.Fatalf("view f = %q, %v", got, err)
	}
	if u, err := d.Usage(ctx, "v"); err != nil || u != (Usage{}) {
		t.Fatalf("Usage(view) = %+v, %v, want zero: it has no tree of its own", u, err)
	}
	ev, err := d.View(ctx, "empty-view", "")
	if err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(ev[0].Source); err != nil || len(entries) != 0 {
		t.Fatalf("empty view holds %v, %v", entries, err)
	}

	var walked []string
	if err := d.Walk(ctx, func(_ context.Context, info Info) error {
		walked = append(walked, fmt.Sprintf("%s:%s:%s", info.Name, info.Kind, info.Parent))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"c1:committed:", "c2:committed:c1", "empty-view:view:", "v:view:c2"}
	if !slices.Equal(walked, want) {
		t.Fatalf("Walk() = %v, want %v", walked, want)
	}

	// Remove children before parents.
	for _, key := range []string{"v", "empty-view", "c2", "c1"} {
		if err := d.Remove(ctx, key); err != nil {
			t.Fatalf("Remove(%s) error = %v", key, err)
		}
	}
	if trees, _ := os.ReadDir(filepath.Join(d.root, dirSnapshotsDir)); len(trees) != 0 {
		t.Fatalf("trees left after removing everything: %v", trees)
	}
}

func mountEqual(a, b Mount) bool {
	return a.Type == b.Type && a.Source == b.Source && slices.Equal(a.Options, b.Options)
}

func TestDirectoryErrors(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)
	mustLayer(t, d, "base", "", map[string]string{"f": "x"})
	mustLayer(t, d, "top", "base", nil)
	mustPrepare(t, d, "active", "base")
	if _, err := d.View(ctx, "view", "base"); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"stat missing", func() error { _, err := d.Stat(ctx, "nope"); return err }, errdefs.ErrNotFound},
		{"stat empty key", func() error { _, err := d.Stat(ctx, ""); return err }, errdefs.ErrInvalidArgument},
		{"usage missing", func() error { _, err := d.Usage(ctx, "nope"); return err }, errdefs.ErrNotFound},
		{"mounts missing", func() error { _, err := d.Mounts(ctx, "nope"); return err }, errdefs.ErrNotFound},
		{"mounts of committed", func() error { _, err := d.Mounts(ctx, "base"); return err }, errdefs.ErrFailedPrecondition},
		{"prepare existing active", func() error { _, err := d.Prepare(ctx, "active", ""); return err }, errdefs.ErrAlreadyExists},
		{"prepare existing committed", func() error { _, err := d.Prepare(ctx, "base", ""); return err }, errdefs.ErrAlreadyExists},
		{"prepare missing parent", func() error { _, err := d.Prepare(ctx, "new", "nope"); return err }, errdefs.ErrNotFound},
		{"prepare on active parent", func() error { _, err := d.Prepare(ctx, "new", "active"); return err }, errdefs.ErrInvalidArgument},
		{"view on view", func() error { _, err := d.View(ctx, "new", "view"); return err }, errdefs.ErrInvalidArgument},
		{"view existing", func() error { _, err := d.View(ctx, "view", "base"); return err }, errdefs.ErrAlreadyExists},
		{"commit missing", func() error { return d.Commit(ctx, "new", "nope") }, errdefs.ErrNotFound},
		{"commit view", func() error { return d.Commit(ctx, "new", "view") }, errdefs.ErrFailedPrecondition},
		{"commit committed", func() error { return d.Commit(ctx, "new", "base") }, errdefs.ErrFailedPrecondition},
		{"commit to existing name", func() error { return d.Commit(ctx, "top", "active") }, errdefs.ErrAlreadyExists},
		{"commit to itself", func() error { return d.Commit(ctx, "active", "active") }, errdefs.ErrAlreadyExists},
		{"commit empty name", func() error { return d.Commit(ctx, "", "active") }, errdefs.ErrInvalidArgument},
		{"remove missing", func() error { return d.Remove(ctx, "nope") }, errdefs.ErrNotFound},
		{"remove parent of committed", func() error { return d.Remove(ctx, "base") }, errdefs.ErrFailedPrecondition},
		{"cancelled", func() error { _, err := d.Prepare(cancelled, "new", "base"); return err }, context.Canceled},
		{"option error", func() error {
			_, err := d.Prepare(ctx, "new", "", func(*Info) error { return errdefs.ErrInvalidArgument })
			return err
		}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
	// Failed calls changed nothing: the active snapshot survives its
	// failed commits, and nothing was created.
	if info, err := d.Stat(ctx, "active"); err != nil || info.Kind != KindActive {
		t.Fatalf("Stat(active) = %+v, %v", info, err)
	}
	if _, err := d.Stat(ctx, "new"); !errdefs.IsNotFound(err) {
		t.Fatalf("Stat(new) error = %v, want NotFound", err)
	}
	if trees, _ := os.ReadDir(filepath.Join(d.root, dirSnapshotsDir)); len(trees) != 3 { // base, top, active
		t.Fatalf("%d trees, want 3", len(trees))
	}
	// base is the parent of the view and of the active snapshot too.
	for _, key := range []string{"top", "view"} {
		if err := d.Remove(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Remove(ctx, "base"); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), `"active"`) {
		t.Fatalf("Remove(base) error = %v, want FailedPrecondition naming the active child", err)
	}
}

func TestDirectoryCopyKeepsMetadata(t *testing.T) {
	for _, privileged := range []bool{false, true} {
		t.Run(fmt.Sprintf("privileged=%v", privileged), func(t *testing.T) {
			if privileged {
				skipUnlessRoot(t)
			}
			src := t.TempDir()
			xattrs := userXattrsSupported(t, src)
			mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
			entries := []tarEntry{
				tarDir("dir", 0o755, tarMtime(mtime)),
				tarFile("dir/file", "content", 0o640, tarMtime(mtime)),
				tarFile("dir/setuid", "s", 0o4755),
				tarDir("readonly", 0o555),
				tarFile("readonly/f", "ro", 0o444),
				tarHardlink("readonly/link", "dir/file"),
				tarHardlink("other-link", "dir/file"),
				tarSymlink("abs", "/etc/passwd", tarMtime(mtime)),
				tarSymlink("rel", "../../outside"),
				tarFifo("fifo", 0o620),
				tarDir("sticky", 0o1777),
			}
			if xattrs {
				entries = append(entries, tarFile("xattr", "x", 0o644, tarXattr("user.k", "v")))
			}
			if os.Geteuid() == 0 {
				// Entries their owner may not read: the copy lends itself
				// permission when unprivileged. (Only root may read them to
				// check the copy.)
				entries = append(entries,
					tarFile("secret", "shadow", 0o000),
					tarDir("locked", 0o000),
					tarFile("locked/inside", "i", 0o000),
					tarFile("owned", "o", 0o644, tarOwner(1234, 5678)),
					tarDevice(tar.TypeChar, "null", 1, 3))
			}
			if _, err := Apply(context.Background(), src, bytes.NewReader(tarLayer(t, entries...))); err != nil {
				t.Fatal(err)
			}
			before := readTreeStates(t, src)

			dst := filepath.Join(t.TempDir(), "copy")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := copyTreeAs(context.Background(), src, dst, privileged); err != nil {
				t.Fatalf("copyTree() error = %v", err)
			}
			// The source is unchanged, lent permissions included.
			if diffs := diffTreeStates(before, readTreeStates(t, src)); len(diffs) > 0 {
				t.Fatalf("source changed:\n%s", strings.Join(diffs, "\n"))
			}
			got := readTreeStates(t, dst)
			for p, want := range before {
				g, ok := got[p]
				if !ok {
					t.Errorf("%s: missing from the copy", p)
					continue
				}
				wantNode := want.treeNode
				if !privileged && os.Geteuid() == 0 {
					wantNode.UID, wantNode.GID = 0, 0 // not copied
				}
				if g.treeNode.String() != wantNode.String() || g.Nlink != want.Nlink || !g.Mtime.Equal(want.Mtime) {
					t.Errorf("%s: copy is %v nlink=%d mtime=%v, want %v nlink=%d mtime=%v", p, g.treeNode, g.Nlink, g.Mtime, wantNode, want.Nlink, want.Mtime)
				}
			}
			for p := range got {
				if _, ok := before[p]; !ok {
					t.Errorf("%s: in the copy only", p)
				}
			}
			if inodeOf(t, filepath.Join(dst, "dir/file")) != inodeOf(t, filepath.Join(dst, "other-link")) ||
				inodeOf(t, filepath.Join(dst, "dir/file")) != inodeOf(t, filepath.Join(dst, "readonly/link")) {
				t.Error("hardlinks were not kept in the copy")
			}
			if inodeOf(t, filepath.Join(dst, "dir/file")) == inodeOf(t, filepath.Join(src, "dir/file")) {
				t.Error("the copy shares an inode with the source")
			}
			// The copy can be removed, read-only and locked directories too.
			if err := removeTree(dst); err != nil {
				t.Fatalf("removeTree() error = %v", err)
			}
			if err := removeTree(src); err != nil {
				t.Fatalf("removeTree() error = %v", err)
			}
		})
	}
}

func TestDirectoryUsage(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)
	dir := mustPrepare(t, d, "a", "")
	body := bytes.Repeat([]byte("x"), 64<<10)
	for _, name := range []string{"f1", "f2"} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "f1"), filepath.Join(dir, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	u, err := d.Usage(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// The root, f1 (linked twice, counted once), f2 and sub.
	if u.Inodes != 4 {
		t.Errorf("Usage().Inodes = %d, want 4", u.Inodes)
	}
	if u.Size < 2*int64(len(body)) || u.Size > 3*int64(len(body)) {
		t.Errorf("Usage().Size = %d, want about %d", u.Size, 2*len(body))
	}
	if err := d.Commit(ctx, "c", "a"); err != nil {
		t.Fatal(err)
	}
	if uc, err := d.Usage(ctx, "c"); err != nil || uc != u {
		t.Errorf("Usage(committed) = %+v, %v, want %+v", uc, err, u)
	}
}

func TestDirectoryReopen(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := NewDirectory(root)
	if err != nil {
		t.Fatal(err)
	}
	mustLayer(t, d, "sha256:base", "", map[string]string{"f": "x"})
	mustPrepare(t, d, "work", "sha256:base", WithLabels(map[string]string{"k": "v"}))

	d2, err := NewDirectory(root)
	if err != nil {
		t.Fatal(err)
	}
	info, err := d2.Stat(ctx, "work")
	if err != nil || info.Kind != KindActive || info.Parent != "sha256:base" || info.Labels["k"] != "v" {
		t.Fatalf("Stat(work) after reopening = %+v, %v", info, err)
	}
	if got := viewTree(t, d2, "sha256:base")["f"]; got.Type != "file" {
		t.Fatalf("base after reopening: f = %v", got)
	}
}

func TestDirectoryRecovery(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := NewDirectory(root)
	if err != nil {
		t.Fatal(err)
	}
	// A Commit interrupted between writing the committed record and
	// removing the active one.
	mustPrepare(t, d, "active", "")
	m, err := d.readMeta("active")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := d.writeMeta(dirMeta{Key: "done", ID: m.ID, Kind: KindCommitted.String(), Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	// Before recovery, removing the active record keeps the shared tree.
	if err := d.writeMeta(dirMeta{Key: "active-again", ID: m.ID, Kind: KindActive.String(), Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, "active-again"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(d.snapshotDir(m.ID)); err != nil {
		t.Fatalf("Remove of a record sharing a tree removed the tree: %v", err)
	}
	// A Prepare interrupted during its copy, a Remove interrupted during
	// its deletion (trees without records), and a metadata file half
	// written.
	orphan := filepath.Join(root, dirSnapshotsDir, "orphan")
	if err := os.MkdirAll(filepath.Join(orphan, "ro"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(orphan, "ro"), 0o500); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, dirMetadataDir, dirTempPrefix+"123")
	if err := os.WriteFile(tmp, []byte(`{"key":`), 0o600); err != nil {
		t.Fatal(err)
	}
	// A tree another process is copying right now: it holds the lock.
	busy := filepath.Join(root, dirSnapshotsDir, "busy")
	if err := os.Mkdir(busy, 0o755); err != nil {
		t.Fatal(err)
	}
	lf, err := lockFileExclusive(busy)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()

	d2, err := NewDirectory(root)
	if err != nil {
		t.Fatalf("NewDirectory() error = %v", err)
	}
	if _, err := d2.Stat(ctx, "active"); !errdefs.IsNotFound(err) {
		t.Errorf("Stat(active) error = %v, want NotFound: the commit is completed", err)
	}
	if info, err := d2.Stat(ctx, "done"); err != nil || info.Kind != KindCommitted {
		t.Errorf("Stat(done) = %+v, %v, want committed", info, err)
	}
	for _, p := range []string{orphan, tmp} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived recovery: %v", p, err)
		}
	}
	if _, err := os.Lstat(busy); err != nil {
		t.Errorf("the tree being copied was removed: %v", err)
	}
}

// TestDirectorySharedRoot runs two Directory values on one root, which
// share nothing but the file lock, as two processes would.
func TestDirectorySharedRoot(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	var ds [2]*Directory
	for i := range ds {
		d, err := NewDirectory(root)
		if err != nil {
			t.Fatal(err)
		}
		ds[i] = d
	}
	mustLayer(t, ds[0], "base", "", map[string]string{"f": "x"})

	const rounds = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		wins    = map[string]int{}
		errs    []error
		results = make(chan error, 2*rounds)
	)
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				key := fmt.Sprintf("k-%d-%d", i, r)
				if _, err := d.Prepare(ctx, key, "base"); err != nil {
					results <- err
					continue
				}
				name := fmt.Sprintf("name-%d", r)
				err := d.Commit(ctx, name, key)
				switch {
				case err == nil:
					mu.Lock()
					wins[name]++
					mu.Unlock()
				case errdefs.IsAlreadyExists(err):
					if err := d.Remove(ctx, key); err != nil {
						results <- err
					}
				default:
					results <- err
				}
			}
		}()
	}
	wg.Wait()
	close(results)
	for err := range results {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	for r := range rounds {
		if n := wins[fmt.Sprintf("name-%d", r)]; n != 1 {
			t.Errorf("name-%d committed %d times, want once", r, n)
		}
	}
	if keys := activeKeys(t, ds[1]); len(keys) != 0 {
		t.Errorf("active snapshots left: %v", keys)
	}
	trees, _ := os.ReadDir(filepath.Join(root, dirSnapshotsDir))
	if len(trees) != rounds+1 {
		t.Errorf("%d trees, want %d", len(trees), rounds+1)
	}
}

// TestDirectoryRemoveDuringPrepare checks that a parent removed while a
// child's copy runs fails that Prepare, leaving nothing behind.
func TestDirectoryRemoveDuringPrepare(t *testing.T) {
	ctx := context.Background()
	d := newTestDirectory(t)
	mustLayer(t, d, "base", "", map[string]string{"f": "x"})
	m, err := d.readMeta("base")
	if err != nil {
		t.Fatal(err)
	}
	// Hold the parent's tree lock, as a copy in progress does, and remove
	// the parent: the record goes at once, the tree once the lock is free.
	lf, err := lockFileExclusive(d.snapshotDir(m.ID))
	if err != nil {
		t.Fatal(err)
	}
	removed := make(chan error, 1)
	go func() { removed <- d.Remove(ctx, "base") }()
	for {
		if _, err := d.Stat(ctx, "base"); errdefs.IsNotFound(err) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := d.Prepare(ctx, "child", "base"); !errdefs.IsNotFound(err) {
		t.Fatalf("Prepare() on a removed parent error = %v, want NotFound", err)
	}
	lf.Close()
	if err := <-removed; err != nil {
		t.Fatalf("Remove() error = %v", err)
	}
	if trees, _ := os.ReadDir(filepath.Join(d.root, dirSnapshotsDir)); len(trees) != 0 {
		t.Fatalf("trees left: %v", trees)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindUnknown: "unknown", KindView: "view", KindActive: "active", KindCommitted: "committed", 42: "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
		if k != 42 && parseKind(want) != k {
			t.Errorf("parseKind(%q) = %v, want %v", want, parseKind(want), k)
		}
	}
}
