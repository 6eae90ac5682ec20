//go:build linux

package unpack

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tarTime is the modification time of entries that do not set one.
var tarTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// tarEntry is one entry of a test layer.
type tarEntry struct {
	hdr  tar.Header
	body string
}

type tarEntryOpt func(*tar.Header)

func tarOwner(uid, gid int) tarEntryOpt {
	return func(h *tar.Header) { h.Uid, h.Gid = uid, gid }
}

func tarMtime(t time.Time) tarEntryOpt {
	return func(h *tar.Header) { h.ModTime = t }
}

func tarXattr(k, v string) tarEntryOpt {
	return func(h *tar.Header) {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+k] = v
	}
}

func newTarEntry(typeflag byte, name string, mode int64, opts []tarEntryOpt) tarEntry {
	e := tarEntry{hdr: tar.Header{Typeflag: typeflag, Name: name, Mode: mode, ModTime: tarTime}}
	for _, o := range opts {
		o(&e.hdr)
	}
	return e
}

func tarFile(name, body string, mode int64, opts ...tarEntryOpt) tarEntry {
	e := newTarEntry(tar.TypeReg, name, mode, opts)
	e.body = body
	return e
}

func tarDir(name string, mode int64, opts ...tarEntryOpt) tarEntry {
	return newTarEntry(tar.TypeDir, name, mode, opts)
}

func tarSymlink(name, target string, opts ...tarEntryOpt) tarEntry {
	e := newTarEntry(tar.TypeSymlink, name, 0o777, opts)
	e.hdr.Linkname = target
	return e
}

func tarHardlink(name, target string, opts ...tarEntryOpt) tarEntry {
	e := newTarEntry(tar.TypeLink, name, 0o644, opts)
	e.hdr.Linkname = target
	return e
}

func tarWhiteout(name string) tarEntry { return tarFile(name, "", 0o644) }

func tarFifo(name string, mode int64, opts ...tarEntryOpt) tarEntry {
	return newTarEntry(tar.TypeFifo, name, mode, opts)
}

func tarDevice(typeflag byte, name string, major, minor int64, opts ...tarEntryOpt) tarEntry {
	e := newTarEntry(typeflag, name, 0o660, opts)
	e.hdr.Devmajor, e.hdr.Devminor = major, minor
	return e
}

// tarLayer returns a plain tar of the entries, in order.
func tarLayer(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		hdr.Size = int64(len(e.body))
		if len(hdr.PAXRecords) > 0 {
			hdr.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("tar header %q: %v", hdr.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatalf("tar body %q: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawTarHeader returns a ustar header block, for entries archive/tar will not
// write.
func rawTarHeader(name string, typeflag byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", tarTime.Unix()))
	b[156] = typeflag
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// padTarBlock pads b with zeros to a multiple of 512 bytes.
func padTarBlock(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// paxRecordBytes encodes PAX records, each "<len> key=value\n".
func paxRecordBytes(kv ...string) []byte {
	var out []byte
	for i := 0; i+1 < len(kv); i += 2 {
		rec := " " + kv[i] + "=" + kv[i+1] + "\n"
		n := len(rec) + 1
		for len(strconv.Itoa(n))+len(rec) != n {
			n++
		}
		out = append(out, strconv.Itoa(n)+rec...)
	}
	return out
}

// sparseTarLayer returns a tar holding one PAX (GNU 1.0) sparse file of
// realSize bytes whose only data is data at offset.
func sparseTarLayer(name string, realSize, offset int64, data string) []byte {
	records := paxRecordBytes(
		"GNU.sparse.major", "1",
		"GNU.sparse.minor", "0",
		"GNU.sparse.name", name,
		"GNU.sparse.realsize", strconv.FormatInt(realSize, 10),
	)
	body := padTarBlock([]byte(fmt.Sprintf("1\n%d\n%d\n", offset, len(data))))
	body = append(body, data...)
	var out []byte
	out = append(out, rawTarHeader("PaxHeaders/"+name, tar.TypeXHeader, int64(len(records)))...)
	out = append(out, padTarBlock(records)...)
	out = append(out, rawTarHeader("GNUSparseFile.0/"+name, tar.TypeReg, int64(len(body)))...)
	out = append(out, padTarBlock(body)...)
	return append(out, make([]byte, 1024)...)
}

// treeNode is what a test checks of one file in a tree.
type treeNode struct {
	Type   string
	Mode   fs.FileMode // permission plus setuid, setgid and sticky bits
	UID    int
	GID    int
	Size   int64  // regular files only
	Digest string // sha256 of a regular file's content
	Target string // symlink target
	Rdev   uint64 // devices only
	Xattrs map[string]string
}

// treeState is a treeNode plus what tells two versions of a file apart.
type treeState struct {
	treeNode
	Ino   uint64
	Nlink uint64
	Mtime time.Time
}

func (n treeNode) String() string {
	s := fmt.Sprintf("%s %v %d:%d", n.Type, n.Mode, n.UID, n.GID)
	switch n.Type {
	case "file":
		s += fmt.Sprintf(" size=%d %s", n.Size, n.Digest[:12])
	case "symlink":
		s += " -> " + n.Target
	case "char", "block":
		s += fmt.Sprintf(" rdev=%d:%d", unix.Major(n.Rdev), unix.Minor(n.Rdev))
	}
	if len(n.Xattrs) > 0 {
		for _, k := range slices.Sorted(maps.Keys(n.Xattrs)) {
			s += fmt.Sprintf(" %s=%q", k, n.Xattrs[k])
		}
	}
	return s
}

// readTreeStates walks root without following symlinks and records every entry
// below it by slash-separated relative path ("." is the root itself).
func readTreeStates(t testing.TB, root string) map[string]treeState {
	t.Helper()
	out := map[string]treeState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := treeNode{
			Mode: fs.FileMode(st.Mode & 0o777),
			UID:  int(st.Uid),
			GID:  int(st.Gid),
		}
		if st.Mode&unix.S_ISUID != 0 {
			n.Mode |= fs.ModeSetuid
		}
		if st.Mode&unix.S_ISGID != 0 {
			n.Mode |= fs.ModeSetgid
		}
		if st.Mode&unix.S_ISVTX != 0 {
			n.Mode |= fs.ModeSticky
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			n.Type = "file"
			n.Size = st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			n.Digest = hex.EncodeToString(sum[:])
		case unix.S_IFDIR:
			n.Type = "dir"
		case unix.S_IFLNK:
			n.Type = "symlink"
			if n.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFIFO:
			n.Type = "fifo"
		case unix.S_IFCHR:
			n.Type, n.Rdev = "char", st.Rdev
		case unix.S_IFBLK:
			n.Type, n.Rdev = "block", st.Rdev
		default:
			n.Type = "other"
		}
		n.Xattrs = readTreeXattrs(t, p)
		out[filepath.ToSlash(rel)] = treeState{
			treeNode: n,
			Ino:      st.Ino,
			Nlink:    uint64(st.Nlink),
			Mtime:    timespecTime(st.Mtim),
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return out
}

// readTreeXattrs returns the extended attributes of p, but security.selinux,
// which the host may add.
func readTreeXattrs(t testing.TB, p string) map[string]string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ENOTSUP) || n <= 0 {
		return nil
	}
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var out map[string]string
	for _, k := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if k == "" || k == "security.selinux" {
			continue
		}
		v := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, k, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, k, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = string(v[:m])
	}
	return out
}

// readTree returns the nodes of a snapshot, without the root itself.
func readTree(t testing.TB, root string) map[string]treeNode {
	t.Helper()
	out := map[string]treeNode{}
	for p, s := range readTreeStates(t, root) {
		if p != "." {
			out[p] = s.treeNode
		}
	}
	return out
}

// diffTrees reports, entry by entry, how got differs from want.
func diffTrees(got, want map[string]treeNode) []string {
	var diffs []string
	for _, p := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: missing, want %v", p, want[p]))
		case g.String() != want[p].String():
			diffs = append(diffs, fmt.Sprintf("%s: got %v, want %v", p, g, want[p]))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %v", p, got[p]))
		}
	}
	return diffs
}

// diffTreeStates reports how two snapshots differ, inode numbers and
// modification times included.
func diffTreeStates(before, after map[string]treeState) []string {
	var diffs []string
	for _, p := range slices.Sorted(maps.Keys(before)) {
		a, ok := after[p]
		switch {
		case !ok:
			diffs = append(diffs, p+": removed")
		case a.String() != before[p].String() || a.Ino != before[p].Ino || !a.Mtime.Equal(before[p].Mtime) || a.Nlink != before[p].Nlink:
			diffs = append(diffs, fmt.Sprintf("%s: changed from %v ino=%d nlink=%d mtime=%v to %v ino=%d nlink=%d mtime=%v",
				p, before[p].treeNode, before[p].Ino, before[p].Nlink, before[p].Mtime, a.treeNode, a.Ino, a.Nlink, a.Mtime))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[p]; !ok {
			diffs = append(diffs, p+": added")
		}
	}
	return diffs
}

// Expected nodes, owned by the caller unless set otherwise.

func treeFile(body string, mode fs.FileMode) treeNode {
	sum := sha256.Sum256([]byte(body))
	return treeNode{Type: "file", Mode: mode, Size: int64(len(body)), Digest: hex.EncodeToString(sum[:])}.owned(os.Geteuid(), os.Getegid())
}

func treeDir(mode fs.FileMode) treeNode {
	return treeNode{Type: "dir", Mode: mode}.owned(os.Geteuid(), os.Getegid())
}

func treeSymlink(target string) treeNode {
	return treeNode{Type: "symlink", Mode: 0o777, Target: target}.owned(os.Geteuid(), os.Getegid())
}

func (n treeNode) owned(uid, gid int) treeNode {
	n.UID, n.GID = uid, gid
	return n
}

func (n treeNode) withXattrs(kv ...string) treeNode {
	n.Xattrs = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Xattrs[kv[i]] = kv[i+1]
	}
	return n
}

// inodeOf returns the inode number of p, not following symlinks.
func inodeOf(t testing.TB, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// skipUnlessRoot skips tests that need privileges.
func skipUnlessRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// userXattrsSupported reports whether the filesystem under dir takes user.*
// xattrs.
func userXattrsSupported(t testing.TB, dir string) bool {
	t.Helper()
	p := filepath.Join(dir, "xattr-probe")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	return unix.Setxattr(p, "user.probe", []byte("1"), 0) == nil
}

func timespecTime(ts unix.Timespec) time.Time { return time.Unix(ts.Unix()) }

// writableTempDir returns t.TempDir(), which a layer may leave with
// directories the test's user cannot write (mode 0500): before the
// directory is removed, they are made writable again, as only root could
// remove their entries otherwise.
func writableTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	return dir
}

// lowerOpenFileLimit lowers the process's soft limit of open files to at
// most n until the test ends, or skips the test when it cannot.
func lowerOpenFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = min(old.Cur, n)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower the open file limit: %v", err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
}
