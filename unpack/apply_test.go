//go:build linux

package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/internal/compresstest"
)

// applyLayers applies each layer in turn and returns the last result.
func applyLayers(t *testing.T, root string, layers [][]tarEntry, opts ...ApplyOption) ApplyResult {
	t.Helper()
	var res ApplyResult
	for i, l := range layers {
		var err error
		res, err = Apply(context.Background(), root, bytes.NewReader(tarLayer(t, l...)), opts...)
		if err != nil {
			t.Fatalf("Apply(layer %d) error = %v", i, err)
		}
	}
	return res
}

func TestApplyLayers(t *testing.T) {
	long := strings.Repeat("long-directory-name/", 8) + strings.Repeat("f", 120)
	capability := string([]byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // cap_net_raw+ep

	tests := []struct {
		name    string
		root    bool // needs privileges
		xattrs  bool // needs user.* xattrs
		opts    []ApplyOption
		layers  [][]tarEntry
		want    map[string]treeNode
		skipped []Skip // of the last layer
		check   func(t *testing.T, root string)
	}{
		{
			name: "files, directories and symlinks",
			layers: [][]tarEntry{{
				tarDir("a", 0o750),
				tarFile("a/f", "hello", 0o640),
				tarSymlink("a/rel", "f"),
				tarSymlink("abs", "/a/f"),
				tarSymlink("dangling", "does/not/exist"),
				tarFile("implicit/parent/file", "x", 0o600),
			}},
			want: map[string]treeNode{
				"a":                    treeDir(0o750),
				"a/f":                  treeFile("hello", 0o640),
				"a/rel":                treeSymlink("f"),
				"abs":                  treeSymlink("/a/f"),
				"dangling":             treeSymlink("does/not/exist"),
				"implicit":             treeDir(0o755),
				"implicit/parent":      treeDir(0o755),
				"implicit/parent/file": treeFile("x", 0o600),
			},
		},
		{
			name: "whiteouts remove lower files and directories",
			layers: [][]tarEntry{
				{tarFile("a/f", "f", 0o644), tarFile("a/g", "g", 0o644), tarFile("d/x", "x", 0o644), tarFile("d/sub/y", "y", 0o644)},
				{tarWhiteout("a/.wh.f"), tarWhiteout(".wh.d"), tarWhiteout(".wh.missing"), tarWhiteout("nodir/.wh.x")},
			},
			want: map[string]treeNode{
				"a":   treeDir(0o755),
				"a/g": treeFile("g", 0o644),
			},
		},
		{
			name: "opaque directory hides lower content",
			layers: [][]tarEntry{
				{tarDir("d", 0o755), tarFile("d/a", "a", 0o644), tarFile("d/sub/b", "b", 0o644), tarFile("other", "o", 0o644)},
				{tarDir("d", 0o711), tarWhiteout("d/.wh..wh..opq"), tarFile("d/c", "c", 0o644)},
			},
			want: map[string]treeNode{
				"d":     treeDir(0o711),
				"d/c":   treeFile("c", 0o644),
				"other": treeFile("o", 0o644),
			},
		},
		{
			name: "opaque marker after the layer's own entries",
			layers: [][]tarEntry{
				{tarFile("d/old", "old", 0o644), tarFile("d/sub/old", "old", 0o644)},
				{tarFile("d/new", "new", 0o644), tarFile("d/sub/new", "new", 0o644), tarWhiteout("d/.wh..wh..opq")},
			},
			want: map[string]treeNode{
				"d":         treeDir(0o755),
				"d/new":     treeFile("new", 0o644),
				"d/sub":     treeDir(0o755),
				"d/sub/new": treeFile("new", 0o644),
			},
		},
		{
			name: "an opaque directory keeps the layer's subdirectories, emptied of lower content",
			layers: [][]tarEntry{
				{tarFile("d/sub/x", "x", 0o644), tarFile("d/sub/y", "y", 0o644), tarFile("d/gone", "g", 0o644)},
				{tarWhiteout("d/sub/.wh.x"), tarWhiteout("d/.wh..wh..opq")},
			},
			want: map[string]treeNode{"d": treeDir(0o755), "d/sub": treeDir(0o755)},
		},
		{
			name: "a file survives its own layer's whiteout after it",
			layers: [][]tarEntry{
				{tarFile("f", "old", 0o644)},
				{tarFile("f", "new", 0o600), tarWhiteout(".wh.f")},
			},
			want: map[string]treeNode{"f": treeFile("new", 0o600)},
		},
		{
			name: "a whiteout before the layer's own file",
			layers: [][]tarEntry{
				{tarFile("f", "old", 0o644)},
				{tarWhiteout(".wh.f"), tarFile("f", "new", 0o600)},
			},
			want: map[string]treeNode{"f": treeFile("new", 0o600)},
		},
		{
			name: "a directory whited out and recreated",
			layers: [][]tarEntry{
				{tarFile("d/x", "x", 0o644)},
				{tarWhiteout(".wh.d"), tarDir("d", 0o700), tarFile("d/y", "y", 0o644)},
			},
			want: map[string]treeNode{"d": treeDir(0o700), "d/y": treeFile("y", 0o644)},
		},
		{
			name: "a directory recreated then whited out",
			layers: [][]tarEntry{
				{tarFile("d/x", "x", 0o644)},
				{tarDir("d", 0o700), tarFile("d/y", "y", 0o644), tarWhiteout(".wh.d")},
			},
			want: map[string]treeNode{"d": treeDir(0o700), "d/y": treeFile("y", 0o644)},
		},
		{
			name: "hardlinks within a layer",
			layers: [][]tarEntry{{
				tarFile("f", "shared", 0o644),
				tarHardlink("h1", "f"),
				tarHardlink("sub/h2", "/f"),
			}},
			want: map[string]treeNode{
				"f":      treeFile("shared", 0o644),
				"h1":     treeFile("shared", 0o644),
				"sub":    treeDir(0o755),
				"sub/h2": treeFile("shared", 0o644),
			},
			check: func(t *testing.T, root string) {
				ino := inodeOf(t, filepath.Join(root, "f"))
				for _, p := range []string{"h1", "sub/h2"} {
					if got := inodeOf(t, filepath.Join(root, p)); got != ino {
						t.Errorf("%s: inode %d, want %d (same as f)", p, got, ino)
					}
				}
			},
		},
		{
			name: "a hardlink to a lower file leaves its metadata",
			layers: [][]tarEntry{
				{tarFile("f", "lower", 0o600)},
				{tarHardlink("h", "f", tarMtime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), tarOwner(5, 5))},
			},
			want: map[string]treeNode{"f": treeFile("lower", 0o600), "h": treeFile("lower", 0o600)},
			check: func(t *testing.T, root string) {
				if inodeOf(t, filepath.Join(root, "f")) != inodeOf(t, filepath.Join(root, "h")) {
					t.Error("h is not a hardlink to f")
				}
				fi, err := os.Stat(filepath.Join(root, "f"))
				if err != nil {
					t.Fatal(err)
				}
				if !fi.ModTime().Equal(tarTime) {
					t.Errorf("f mtime = %v, want %v (unchanged by the hardlink entry)", fi.ModTime(), tarTime)
				}
			},
		},
		{
			name: "a hardlink keeps the old content when its target is replaced",
			layers: [][]tarEntry{
				{tarFile("f", "v1", 0o644)},
				{tarHardlink("h", "f")},
				{tarFile("f", "v2", 0o644)},
			},
			want: map[string]treeNode{"f": treeFile("v2", 0o644), "h": treeFile("v1", 0o644)},
		},
		{
			name: "writes through a chain of symlinks",
			layers: [][]tarEntry{
				{tarDir("real", 0o755), tarSymlink("l3", "real"), tarSymlink("l2", "l3"), tarSymlink("l1", "/l2"), tarSymlink("up", "../../../real")},
				{tarFile("l1/file", "via chain", 0o644), tarFile("up/other", "via up", 0o644)},
			},
			want: map[string]treeNode{
				"real":       treeDir(0o755),
				"real/file":  treeFile("via chain", 0o644),
				"real/other": treeFile("via up", 0o644),
				"l1":         treeSymlink("/l2"),
				"l2":         treeSymlink("l3"),
				"l3":         treeSymlink("real"),
				"up":         treeSymlink("../../../real"),
			},
		},
		{
			name: "a directory replaced by a file and back",
			layers: [][]tarEntry{
				{tarDir("d", 0o755), tarFile("d/x", "x", 0o644)},
				{tarFile("d", "now a file", 0o644)},
				{tarDir("d", 0o700), tarFile("d/y", "y", 0o644)},
			},
			want: map[string]treeNode{"d": treeDir(0o700), "d/y": treeFile("y", 0o644)},
		},
		{
			name: "a symlink replaced by a directory",
			layers: [][]tarEntry{
				{tarDir("target", 0o755), tarFile("target/t", "t", 0o644), tarSymlink("s", "target")},
				{tarDir("s", 0o700), tarFile("s/x", "x", 0o644)},
			},
			want: map[string]treeNode{
				"target":   treeDir(0o755),
				"target/t": treeFile("t", 0o644),
				"s":        treeDir(0o700),
				"s/x":      treeFile("x", 0o644),
			},
		},
		{
			name: "an upper directory entry keeps the content and changes the mode",
			layers: [][]tarEntry{
				{tarDir("d", 0o755), tarFile("d/x", "x", 0o644)},
				{tarDir("d", 0o500)},
			},
			want: map[string]treeNode{"d": treeDir(0o500), "d/x": treeFile("x", 0o644)},
		},
		{
			name: "setuid, setgid and sticky bits",
			layers: [][]tarEntry{{
				tarFile("suid", "s", 0o4755),
				tarFile("sgid", "g", 0o2755),
				tarDir("tmp", 0o1777),
				tarDir("sgiddir", 0o2775),
			}},
			want: map[string]treeNode{
				"suid":    treeFile("s", 0o755|os.ModeSetuid),
				"sgid":    treeFile("g", 0o755|os.ModeSetgid),
				"tmp":     treeDir(0o777 | os.ModeSticky),
				"sgiddir": treeDir(0o775 | os.ModeSetgid),
			},
		},
		{
			name: "duplicate entries: the last wins",
			layers: [][]tarEntry{{
				tarFile("f", "first", 0o644),
				tarFile("f", "second", 0o600),
				tarDir("e", 0o755),
				tarFile("e/inside", "i", 0o644),
				tarFile("e", "file now", 0o644),
				tarFile("g", "file", 0o644),
				tarDir("g", 0o711),
				tarSymlink("s", "one"),
				tarSymlink("s", "two"),
			}},
			want: map[string]treeNode{
				"f": treeFile("second", 0o600),
				"e": treeFile("file now", 0o644),
				"g": treeDir(0o711),
				"s": treeSymlink("two"),
			},
		},
		{
			name: "long and non-ASCII names",
			layers: [][]tarEntry{{
				tarFile(long, "long", 0o644),
				tarFile("日本語/ファイル.txt", "utf-8", 0o644),
				tarFile("émoji-😀 and spaces", "e", 0o644),
				tarSymlink("link-"+strings.Repeat("x", 200), strings.Repeat("t", 150)),
			}},
			want: func() map[string]treeNode {
				m := map[string]treeNode{
					long:                               treeFile("long", 0o644),
					"日本語":                              treeDir(0o755),
					"日本語/ファイル.txt":                     treeFile("utf-8", 0o644),
					"émoji-😀 and spaces":               treeFile("e", 0o644),
					"link-" + strings.Repeat("x", 200): treeSymlink(strings.Repeat("t", 150)),
				}
				for d := filepath.Dir(long); d != "."; d = filepath.Dir(d) {
					m[d] = treeDir(0o755)
				}
				return m
			}(),
		},
		{
			name: "absolute and dotted names are read from the root",
			layers: [][]tarEntry{{
				tarFile("/abs/file", "abs", 0o644),
				tarFile("./dot/file", "dot", 0o644),
				tarFile("x/../y/file", "lexical", 0o644),
				tarFile("//double", "d", 0o644),
			}},
			want: map[string]treeNode{
				"abs":      treeDir(0o755),
				"abs/file": treeFile("abs", 0o644),
				"dot":      treeDir(0o755),
				"dot/file": treeFile("dot", 0o644),
				"y":        treeDir(0o755),
				"y/file":   treeFile("lexical", 0o644),
				"double":   treeFile("d", 0o644),
			},
		},
		{
			name:   "an empty layer changes nothing",
			layers: [][]tarEntry{{tarFile("keep", "k", 0o644)}, {}},
			want:   map[string]treeNode{"keep": treeFile("k", 0o644)},
		},
		{
			name:   "aufs metadata and unknown types are skipped",
			layers: [][]tarEntry{{tarFile(".wh..wh.plnk/1.2", "", 0o644), tarDir(".wh..wh.aufs", 0o755), newTarEntry('Z', "odd", 0o644, nil)}},
			want:   map[string]treeNode{},
			skipped: []Skip{
				{Name: ".wh..wh.plnk/1.2", Reason: "aufs metadata"},
				{Name: ".wh..wh.aufs", Reason: "aufs metadata"},
				{Name: "odd", Reason: `unsupported entry type 'Z'`},
			},
		},
		{
			name: "fifos are created unprivileged, devices skipped",
			opts: []ApplyOption{WithUnprivileged()},
			layers: [][]tarEntry{{
				tarFifo("pipe", 0o620),
				tarDevice(tar.TypeChar, "dev/null", 1, 3),
				tarDevice(tar.TypeBlock, "dev/loop0", 7, 0),
			}},
			want: map[string]treeNode{
				"pipe": treeNode{Type: "fifo", Mode: 0o620}.owned(os.Geteuid(), os.Getegid()),
			},
			skipped: []Skip{
				{Name: "dev/null", Reason: "char device: unprivileged"},
				{Name: "dev/loop0", Reason: "block device: unprivileged"},
			},
		},
		{
			name: "devices when privileged",
			root: true,
			layers: [][]tarEntry{{
				tarFifo("pipe", 0o600, tarOwner(7, 8)),
				tarDevice(tar.TypeChar, "dev/null", 1, 3, tarOwner(0, 5)),
				tarDevice(tar.TypeBlock, "dev/loop0", 7, 0),
			}},
			want: map[string]treeNode{
				"pipe":      {Type: "fifo", Mode: 0o600, UID: 7, GID: 8},
				"dev":       treeDir(0o755),
				"dev/null":  {Type: "char", Mode: 0o660, GID: 5, Rdev: unix.Mkdev(1, 3)},
				"dev/loop0": {Type: "block", Mode: 0o660, Rdev: unix.Mkdev(7, 0)},
			},
		},
		{
			name: "ownership when privileged",
			root: true,
			layers: [][]tarEntry{{
				tarDir("home", 0o755, tarOwner(1000, 1000)),
				tarFile("home/user", "u", 0o4750, tarOwner(1000, 1000)),
				tarFile("nobody", "n", 0o2644, tarOwner(65534, 65534)),
				tarSymlink("link", "nobody", tarOwner(65534, 1000)),
			}},
			want: map[string]treeNode{
				"home":      treeDir(0o755).owned(1000, 1000),
				"home/user": treeFile("u", 0o750|os.ModeSetuid).owned(1000, 1000),
				"nobody":    treeFile("n", 0o644|os.ModeSetgid).owned(65534, 65534),
				"link":      treeSymlink("nobody").owned(65534, 1000),
			},
		},
		{
			name: "ownership ignored when unprivileged",
			opts: []ApplyOption{WithUnprivileged()},
			layers: [][]tarEntry{{
				tarDir("home", 0o755, tarOwner(1000, 1000)),
				tarFile("home/user", "u", 0o4750, tarOwner(1000, 1000)),
				tarSymlink("link", "home", tarOwner(65534, 65534)),
			}},
			want: map[string]treeNode{
				"home":      treeDir(0o755),
				"home/user": treeFile("u", 0o750|os.ModeSetuid),
				"link":      treeSymlink("home"),
			},
		},
		{
			name: "ownership mapped",
			root: true,
			opts: []ApplyOption{WithOwnership(func(uid, gid int) (int, int, error) { return uid + 100000, gid + 200000, nil })},
			layers: [][]tarEntry{{
				tarFile("root-owned", "r", 0o644),
				tarFile("user-owned", "u", 0o644, tarOwner(1000, 65534)),
			}},
			want: map[string]treeNode{
				"root-owned": treeFile("r", 0o644).owned(100000, 200000),
				"user-owned": treeFile("u", 0o644).owned(101000, 265534),
			},
		},
		{
			name:   "xattrs",
			root:   true,
			xattrs: true,
			layers: [][]tarEntry{{
				tarDir("d", 0o755, tarXattr("user.dir", "on a dir")),
				tarFile("d/f", "x", 0o755,
					tarXattr("user.one", "1"),
					tarXattr("user.bin", "\x00\xff"),
					tarXattr("security.capability", capability),
					tarXattr("trusted.overlay.opaque", "y"),
					tarXattr("security.selinux", "system_u:object_r:bin_t:s0")),
				tarSymlink("s", "d/f", tarXattr("user.onlink", "x")),
			}},
			want: map[string]treeNode{
				"d":   treeDir(0o755).withXattrs("user.dir", "on a dir"),
				"d/f": treeFile("x", 0o755).withXattrs("user.one", "1", "user.bin", "\x00\xff", "security.capability", capability),
				"s":   treeSymlink("d/f"),
			},
			skipped: []Skip{
				{Name: "d/f", Reason: "xattr security.selinux: namespace not applied"},
				{Name: "d/f", Reason: "xattr trusted.overlay.opaque: namespace not applied"},
				{Name: "s", Reason: "xattr user.onlink: not applied to symlinks"},
			},
		},
		{
			name:   "xattrs when unprivileged",
			xattrs: true,
			opts:   []ApplyOption{WithUnprivileged()},
			layers: [][]tarEntry{{
				tarFile("f", "x", 0o755, tarXattr("user.one", "1"), tarXattr("security.capability", capability)),
			}},
			want:    map[string]treeNode{"f": treeFile("x", 0o755).withXattrs("user.one", "1")},
			skipped: []Skip{{Name: "f", Reason: "xattr security.capability: unprivileged"}},
		},
		{
			name: "the root directory entry sets the root's metadata",
			layers: [][]tarEntry{{
				tarDir("./", 0o751),
				tarFile("f", "f", 0o644),
			}},
			want: map[string]treeNode{"f": treeFile("f", 0o644)},
			check: func(t *testing.T, root string) {
				fi, err := os.Stat(root)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o751 || !fi.ModTime().Equal(tarTime) {
					t.Errorf("root: mode %v mtime %v, want 0751 and %v", fi.Mode().Perm(), fi.ModTime(), tarTime)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				skipUnlessRoot(t)
			}
			root := writableTempDir(t)
			if tt.xattrs && !userXattrsSupported(t, root) {
				t.Skip("the filesystem does not support user.* xattrs")
			}
			res := applyLayers(t, root, tt.layers, tt.opts...)
			if diffs := diffTrees(readTree(t, root), tt.want); len(diffs) > 0 {
				t.Errorf("tree differs:\n%s", strings.Join(diffs, "\n"))
			}
			if !slices.Equal(res.Skipped, tt.skipped) {
				t.Errorf("Skipped = %q, want %q", res.Skipped, tt.skipped)
			}
			if tt.check != nil {
				tt.check(t, root)
			}
		})
	}
}

func TestApplyTimes(t *testing.T) {
	root := t.TempDir()
	dirTime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	fileTime := time.Date(2010, 1, 1, 0, 0, 0, 500, time.UTC)
	linkTime := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)
	atime := time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)
	nanos := tarFile("d/f", "written after its directory", 0o644, tarMtime(fileTime))
	nanos.hdr.Format = tar.FormatPAX // sub-second times
	withAtime := tarFile("atime", "a", 0o644)
	withAtime.hdr.AccessTime = atime
	withAtime.hdr.Format = tar.FormatPAX
	applyLayers(t, root, [][]tarEntry{{
		tarDir("d", 0o755, tarMtime(dirTime)),
		nanos,
		tarDir("d/sub", 0o755, tarMtime(dirTime)),
		tarFile("d/sub/f", "x", 0o644),
		tarSymlink("d/link", "f", tarMtime(linkTime)),
		tarFile("ancient", "a", 0o644, tarMtime(time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC))),
		tarFile("future", "f", 0o644, tarMtime(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))),
		withAtime,
	}})
	lstat := func(p string) unix.Stat_t {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tc := range []struct {
		path string
		want time.Time
	}{
		{"d", dirTime}, {"d/sub", dirTime}, {"d/f", fileTime}, {"d/link", linkTime},
	} {
		if got := timespecTime(lstat(tc.path).Mtim); !got.Equal(tc.want) {
			t.Errorf("%s mtime = %v, want %v", tc.path, got, tc.want)
		}
	}
	if got := timespecTime(lstat("atime").Atim); !got.Equal(atime) {
		t.Errorf("atime = %v, want %v", got, atime)
	}
	// Out of range: clamped (by us to 1677..2262, then by the filesystem
	// to what it stores), never zeroed to the epoch.
	if got := timespecTime(lstat("ancient").Mtim); got.Year() >= 1902 {
		t.Errorf("ancient mtime = %v, want clamped before 1902", got)
	}
	if got := timespecTime(lstat("future").Mtim); got.Year() < 2262 {
		t.Errorf("future mtime = %v, want clamped to 2262 or later", got)
	}
}

func TestApplySparseFile(t *testing.T) {
	root := t.TempDir()
	tarball := sparseTarLayer("sparse", 10000, 4096, "hello")
	res, err := Apply(context.Background(), root, bytes.NewReader(tarball))
	if err != nil {
		t.Fatalf("Apply() error = %v", err)
	}
	got, err := os.ReadFile(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 10000)
	copy(want[4096:], "hello")
	if !bytes.Equal(got, want) {
		t.Errorf("sparse content: %d bytes, want 10000 bytes of zeros with hello at 4096", len(got))
	}
	if res.DiffID != digest.FromBytes(tarball) {
		t.Errorf("DiffID = %s, want %s", res.DiffID, digest.FromBytes(tarball))
	}
}

func TestApplyCompression(t *testing.T) {
	plain := tarLayer(t, tarDir("etc", 0o755), tarFile("etc/hostname", "pullkit\n", 0o644), tarSymlink("link", "etc/hostname"))
	padded := append(slices.Clone(plain), make([]byte, 10240-len(plain)%10240)...)
	twoMembers := append(compresstest.Gzip(plain[:700]), compresstest.Gzip(plain[700:])...)
	skippable := append([]byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'm', 'e', 't', 'a'}, compresstest.Zstd(plain)...)
	want := map[string]treeNode{
		"etc":          treeDir(0o755),
		"etc/hostname": treeFile("pullkit\n", 0o644),
		"link":         treeSymlink("etc/hostname"),
	}
	tests := []struct {
		name         string
		stream       []byte
		uncompressed []byte
	}{
		{"plain", plain, plain},
		{"gzip", compresstest.Gzip(plain), plain},
		{"zstd", compresstest.Zstd(plain), plain},
		{"gzip with two members", twoMembers, plain},
		{"zstd after a skippable frame", skippable, plain},
		{"plain with record padding", padded, padded},
		{"gzip with record padding", compresstest.Gzip(padded), padded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			res, err := Apply(context.Background(), root, bytes.NewReader(tt.stream))
			if err != nil {
				t.Fatalf("Apply() error = %v", err)
			}
			if want := digest.FromBytes(tt.uncompressed); res.DiffID != want {
				t.Errorf("DiffID = %s, want %s", res.DiffID, want)
			}
			if res.Size != int64(len(tt.uncompressed)) {
				t.Errorf("Size = %d, want %d", res.Size, len(tt.uncompressed))
			}
			if diffs := diffTrees(readTree(t, root), want); len(diffs) > 0 {
				t.Errorf("tree differs:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}

func TestApplyEmptyLayers(t *testing.T) {
	// The empty tar every tool writes for a layer with no changes.
	const emptyTar = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
	for _, tc := range []struct {
		name   string
		stream []byte
		want   digest.Digest
	}{
		{"empty tar", make([]byte, 1024), emptyTar},
		{"empty tar, gzip", compresstest.Gzip(make([]byte, 1024)), emptyTar},
		{"no bytes at all", nil, digest.FromBytes(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			res, err := Apply(context.Background(), root, bytes.NewReader(tc.stream), WithDiffID(tc.want))
			if err != nil {
				t.Fatalf("Apply() error = %v", err)
			}
			if res.DiffID != tc.want {
				t.Errorf("DiffID = %s, want %s", res.DiffID, tc.want)
			}
			if got := readTree(t, root); len(got) != 0 {
				t.Errorf("tree = %v, want empty", got)
			}
		})
	}
}

func TestApplyDiffID(t *testing.T) {
	plain := tarLayer(t, tarFile("f", "content", 0o644))
	other := digest.FromString("another layer")
	tests := []struct {
		name    string
		diffID  digest.Digest
		wantErr error
	}{
		{"matches", digest.FromBytes(plain), nil},
		{"sha512 matches", digest.SHA512.FromBytes(plain), nil},
		{"lying diffID", other, errdefs.ErrFailedPrecondition},
		{"lying diffID is a digest mismatch", other, content.ErrDigestMismatch},
		{"malformed diffID", "sha256:nothex", errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(compresstest.Gzip(plain)), WithDiffID(tt.diffID))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Apply() error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && res.DiffID != tt.diffID {
				t.Errorf("DiffID = %s, want %s", res.DiffID, tt.diffID)
			}
		})
	}
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(plain), WithDiffID(other))
	var mismatch *DiffIDMismatchError
	if !errors.As(err, &mismatch) || mismatch.Expected != other || mismatch.Actual != digest.FromBytes(plain) {
		t.Errorf("Apply() error = %v, want *DiffIDMismatchError{Expected: %s, Actual: %s}", err, other, digest.FromBytes(plain))
	}
}

func TestApplyLimits(t *testing.T) {
	var five []tarEntry
	for i := range 5 {
		five = append(five, tarFile(fmt.Sprintf("f%d", i), "x", 0o644))
	}
	tests := []struct {
		name   string
		stream []byte
		opts   []ApplyOption
		what   string
	}{
		{"tar entries", tarLayer(t, five...), []ApplyOption{WithMaxEntries(3)}, "layer tar entries"},
		{"uncompressed size", append(tarLayer(t, tarFile("f", "x", 0o644)), make([]byte, 100<<10)...), []ApplyOption{WithMaxSize(50 << 10)}, "layer uncompressed size"},
		{"file content", tarLayer(t, tarFile("big", strings.Repeat("x", 100<<10), 0o644)), []ApplyOption{WithMaxSize(50 << 10)}, "layer file content"},
		{"sparse file bomb", sparseTarLayer("huge", 1<<40, 1<<40-5, "hello"), nil, "layer file content"},
		// Zeros expand about 1000 times in gzip: with the default ratio of
		// 500 and 16 MiB allowed, a bomb is stopped after about 31 MiB.
		{"gzip bomb", zeroBomb(t, Gzip, 40<<20, false), nil, "layer expanded from"},
		{"zstd bomb", zeroBomb(t, Zstd, 40<<20, true), nil, "layer expanded from"},
		{"gzip bomb in trailing padding", zeroBomb(t, Gzip, 24<<20, true), []ApplyOption{WithMaxRatio(100)}, "layer expanded from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(tt.stream), tt.opts...)
			var le *content.LimitError
			if !errors.As(err, &le) || !strings.HasPrefix(le.What, tt.what) {
				t.Fatalf("Apply() error = %v, want *content.LimitError for %q", err, tt.what)
			}
			if !errdefs.IsResourceExhausted(err) || !errors.Is(err, content.ErrTooLarge) {
				t.Errorf("Apply() error = %v, want errdefs.ErrResourceExhausted and content.ErrTooLarge", err)
			}
		})
	}
	t.Run("limits off", func(t *testing.T) {
		root := t.TempDir()
		stream := tarLayer(t, five...)
		if _, err := Apply(context.Background(), root, bytes.NewReader(stream), WithMaxEntries(-1), WithMaxSize(-1), WithMaxRatio(-1)); err != nil {
			t.Fatalf("Apply() error = %v", err)
		}
		if n := len(readTree(t, root)); n != 5 {
			t.Errorf("applied %d entries, want 5", n)
		}
	})
}

// zeroBomb returns a compressed layer holding size zero bytes, in a file or,
// with padding, after the end of the archive.
func zeroBomb(t *testing.T, c Compression, size int64, padding bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var zw io.WriteCloser
	var err error
	switch c {
	case Gzip:
		zw = gzip.NewWriter(&buf)
	case Zstd:
		zw, err = zstd.NewWriter(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	if !padding {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bomb", Mode: 0o644, Size: size, ModTime: tarTime}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(tw, zeroReader{}, size); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if padding {
		if _, err := io.CopyN(zw, zeroReader{}, size); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestApplyErrors(t *testing.T) {
	plain := tarLayer(t, tarFile("f", strings.Repeat("data", 1000), 0o644))
	gz := compresstest.Gzip(plain)
	errSource := fmt.Errorf("connection reset: %w", errdefs.ErrUnavailable)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		root    string // relative to a temp dir; "" is the temp dir
		stream  io.Reader
		wantErr error
		notErr  error
	}{
		{name: "truncated tar", stream: bytes.NewReader(plain[:700]), wantErr: errdefs.ErrInvalidArgument},
		{name: "truncated gzip", stream: bytes.NewReader(gz[:len(gz)/2]), wantErr: errdefs.ErrInvalidArgument},
		{name: "corrupt gzip", stream: bytes.NewReader(append(slices.Clone(gz[:20]), bytes.Repeat([]byte{0xff}, 200)...)), wantErr: errdefs.ErrInvalidArgument},
		{name: "corrupt zstd", stream: bytes.NewReader(append([]byte{0x28, 0xb5, 0x2f, 0xfd}, bytes.Repeat([]byte{0xff}, 200)...)), wantErr: errdefs.ErrInvalidArgument},
		{name: "not a tar", stream: strings.NewReader(strings.Repeat("not a tar stream ", 100)), wantErr: errdefs.ErrInvalidArgument},
		{name: "xz", stream: bytes.NewReader([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2}), wantErr: errdefs.ErrNotImplemented},
		{
			name:    "reader error",
			stream:  io.MultiReader(bytes.NewReader(gz[:100]), iotest.ErrReader(errSource)),
			wantErr: errSource,
			notErr:  errdefs.ErrInvalidArgument,
		},
		{name: "hardlink to a missing file", stream: bytes.NewReader(tarLayer(t, tarHardlink("h", "missing"))), wantErr: errdefs.ErrInvalidArgument},
		{name: "hardlink to a directory", stream: bytes.NewReader(tarLayer(t, tarDir("d", 0o755), tarHardlink("h", "d"))), wantErr: errdefs.ErrInvalidArgument},
		{name: "parent is a file", stream: bytes.NewReader(tarLayer(t, tarFile("a", "file", 0o644), tarFile("a/b", "x", 0o644))), wantErr: errdefs.ErrInvalidArgument},
		{name: "name too long", stream: bytes.NewReader(tarLayer(t, tarFile(strings.Repeat("a/", 2100)+"f", "x", 0o644))), wantErr: errdefs.ErrInvalidArgument},
		{name: "missing root", root: "missing", stream: bytes.NewReader(plain), wantErr: errdefs.ErrNotFound},
		{name: "canceled", ctx: canceled, stream: bytes.NewReader(plain), wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			root := filepath.Join(t.TempDir(), tt.root)
			_, err := Apply(ctx, root, tt.stream)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Apply() error = %v, want %v", err, tt.wantErr)
			}
			if tt.notErr != nil && errors.Is(err, tt.notErr) {
				t.Errorf("Apply() error = %v, should not match %v", err, tt.notErr)
			}
		})
	}
}

func TestApplySync(t *testing.T) {
	root := t.TempDir()
	if _, err := Apply(context.Background(), root, bytes.NewReader(tarLayer(t, tarFile("f", "synced", 0o644))), WithSync()); err != nil {
		t.Fatalf("Apply() error = %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "f")); err != nil || string(b) != "synced" {
		t.Errorf("f = %q, %v; want \"synced\"", b, err)
	}
}

func TestApplyManyDirectories(t *testing.T) {
	// More directories than handles kept open, with files written back
	// into the first ones once the cache has been emptied.
	var entries []tarEntry
	for i := range maxHeldDirs + 10 {
		entries = append(entries, tarFile(fmt.Sprintf("d%03d/f", i), "x", 0o644))
	}
	for i := range 10 {
		entries = append(entries, tarFile(fmt.Sprintf("d%03d/g", i), "y", 0o644))
	}
	root := t.TempDir()
	applyLayers(t, root, [][]tarEntry{entries})
	got := readTree(t, root)
	if n, want := len(got), (maxHeldDirs+10)*2+10; n != want {
		t.Errorf("tree has %d entries, want %d", n, want)
	}
	if _, ok := got["d009/g"]; !ok {
		t.Error("d009/g missing")
	}
}

func TestDetectCompression(t *testing.T) {
	plain := tarLayer(t, tarFile("f", "x", 0o644))
	bzName := tarLayer(t, tarFile("BZh9-looks-like-bzip2", "x", 0o644))
	gzName := tarLayer(t, tarFile("\x1f\x8bname", "x", 0o644))
	tests := []struct {
		name string
		head []byte
		want Compression
	}{
		{"empty", nil, Uncompressed},
		{"tar", plain, Uncompressed},
		{"tar named like gzip", gzName, Uncompressed},
		{"tar named like bzip2", bzName, Uncompressed},
		{"gzip", compresstest.Gzip(plain), Gzip},
		{"zstd", compresstest.Zstd(plain), Zstd},
		{"zstd skippable frame", []byte{0x5e, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}, Zstd},
		{"short", []byte{0x1f}, Uncompressed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := tt.head[:min(len(tt.head), DetectHeaderSize)]
			if got := DetectCompression(head); got != tt.want {
				t.Errorf("DetectCompression() = %v, want %v", got, tt.want)
			}
		})
	}
	// A tar whose first name starts like bzip2 applies as a tar.
	if _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(bzName)); err != nil {
		t.Errorf("Apply(tar named like bzip2) error = %v", err)
	}
}
