package unpack

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestApplyDropsLargeFilesFromCache checks that Apply leaves none of a
// large file it wrote in the page cache, with its content, mode and times
// all set, while a small file's pages are left alone.
func TestApplyDropsLargeFilesFromCache(t *testing.T) {
	root := t.TempDir()
	var sfs unix.Statfs_t
	if err := unix.Statfs(root, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type == unix.TMPFS_MAGIC {
		t.Skip("tmpfs keeps its pages: they are the file")
	}
	// The file writers, which drop what they wrote, need two cores.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))

	big := make([]byte, 3*dropBehindMin+12345)
	for i := range big {
		big[i] = byte(i*7 + i>>12)
	}
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	layer := tarLayer(t,
		tarFile("big", string(big), 0o4755, tarMtime(mtime)),
		tarFile("just-big", string(big[:dropBehindMin]), 0o600),
		tarFile("small", "a few bytes", 0o644),
	)
	if _, err := Apply(context.Background(), root, bytes.NewReader(layer)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"big", "just-big"} {
		// Readahead of other files may bring a few pages back in.
		if got := residentBytes(t, filepath.Join(root, name)); got > 256<<10 {
			t.Errorf("%s: %d bytes in the page cache, want none", name, got)
		}
	}
	got, err := os.ReadFile(filepath.Join(root, "big"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big: read %d bytes, %v; want the %d written", len(got), err, len(big))
	}
	fi, err := os.Stat(filepath.Join(root, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o755|os.ModeSetuid || !fi.ModTime().Equal(mtime) {
		t.Errorf("big: mode %v, mtime %v; want -rwsr-xr-x, %v", fi.Mode(), fi.ModTime(), mtime)
	}
	if got := residentBytes(t, filepath.Join(root, "small")); got == 0 {
		t.Errorf("small: not in the page cache, want it left there")
	}
}

// residentBytes returns how many bytes of the file at path are in the page
// cache, from mincore(2) on a mapping of it.
func residentBytes(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 {
		return 0
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	var n int64
	for _, v := range vec {
		if v&1 != 0 {
			n += int64(page)
		}
	}
	return n
}
