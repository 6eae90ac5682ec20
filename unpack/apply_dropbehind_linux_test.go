package unpack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/pullkit/pullkit/internal/pagecache/pagecachetest"
)

// TestApplyDropsLargeFilesFromCache checks that Apply leaves none of a
// large file it wrote in the page cache, with its content, mode and times
// all set, while a small file's pages are left alone.
func TestApplyDropsLargeFilesFromCache(t *testing.T) {
	root := pagecachetest.TempDir(t)
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
		if got := pagecachetest.Bytes(t, filepath.Join(root, name)); got > 256<<10 {
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
	if got := pagecachetest.Bytes(t, filepath.Join(root, "small")); got == 0 {
		t.Errorf("small: not in the page cache, want it left there")
	}
}

// TestAheadDropsLargeFilesFromCache checks that a layer decompressed ahead
// leaves none of its large files in the page cache, more of them than the
// queue of files being written back holds.
func TestAheadDropsLargeFilesFromCache(t *testing.T) {
	dir := pagecachetest.TempDir(t)
	body := make([]byte, aheadFileMin+4321)
	var entries []tarEntry
	for i := range retireQueue + 3 {
		for j := range body {
			body[j] = byte(i + j*7 + j>>12)
		}
		entries = append(entries, tarFile(fmt.Sprintf("file%d", i), string(body), 0o644))
	}
	l := splitLayer(t, dir, tarLayer(t, entries...))
	if len(l.files) != len(entries) {
		t.Fatalf("%d files of their own, want %d", len(l.files), len(entries))
	}
	for n, f := range l.files {
		// Its /proc link opens the unnamed file itself.
		if got := pagecachetest.Bytes(t, fmt.Sprintf("/proc/self/fd/%d", f.Fd())); got > 256<<10 {
			t.Errorf("entry %d: %d bytes in the page cache, want none", n, got)
		}
	}
}

// TestWindowWriterDropsBehind checks that a file decompressed ahead leaves
// the page cache window by window while it is written, not only once it is
// whole: of five and a half windows, at most the last two stay.
func TestWindowWriterDropsBehind(t *testing.T) {
	path := filepath.Join(pagecachetest.TempDir(t), "big")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	w := &windowWriter{f: f}
	for i := range 11 * dropWindow / 2 / len(chunk) {
		for j := range chunk {
			chunk[j] = byte(i + j*7)
		}
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if got, most := pagecachetest.Bytes(t, path), int64(2*dropWindow+256<<10); got > most {
		t.Errorf("%d bytes of a file of %d in the page cache, want at most %d", got, w.n, most)
	}
}
