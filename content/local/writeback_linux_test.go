package local

import (
	"bytes"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/internal/pagecache/pagecachetest"
)

// pageCacheStore returns a store that syncs in a new directory, skipping
// the test where the page cache is the file (tmpfs).
func pageCacheStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(pagecachetest.TempDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWriterDropsWrittenBackPages checks that a writer of a store that
// syncs keeps at most two writeback windows of its file in the page cache
// while it writes, and none of the committed blob, whose bytes are still
// all there to read.
func TestWriterDropsWrittenBackPages(t *testing.T) {
	s := pageCacheStore(t)
	blob := make([]byte, 6*writebackWindow+5)
	for i := range blob {
		blob[i] = byte(i*13 + i>>10)
	}
	cw, err := s.Writer(t.Context(), content.WithRef("cached"))
	if err != nil {
		t.Fatal(err)
	}
	w := cw.(*writer)
	if w.wbOff {
		t.Skip("the file system refuses early writeback")
	}
	for off := 0; off < len(blob); off += 1 << 20 {
		if _, err := w.Write(blob[off:min(off+1<<20, len(blob))]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Status(); err != nil {
		t.Fatal(err)
	}
	// Two windows, and the bytes written since the last one started.
	if got, max := pagecachetest.Bytes(t, filepath.Join(w.dir, ingestData)), int64(3*writebackWindow); got > max {
		t.Errorf("while writing: %d bytes of the ingest in the page cache, want at most %d", got, max)
	}
	want := digest.FromBytes(blob)
	if err := w.Commit(t.Context(), int64(len(blob)), want); err != nil {
		t.Fatal(err)
	}
	// Some pages may be read back in meanwhile by readahead of others; a
	// few MiB at most.
	if got := pagecachetest.Bytes(t, s.blobPath(want)); got > 1<<20 {
		t.Errorf("after commit: %d bytes of the blob in the page cache, want none", got)
	}
	got, err := content.ReadBlob(t.Context(), s, ocispec.Descriptor{Digest: want, Size: int64(len(blob))}, int64(len(blob)))
	if err != nil || digest.FromBytes(got) != want {
		t.Fatalf("reading the blob back: %d bytes, %v; want the blob", len(got), err)
	}
}

// TestReaderDropsWhatItRead checks that reading a blob front to back drops
// what lies behind the reader from the page cache, and the rest at Close,
// while a reader that reads elsewhere leaves the cache alone.
func TestReaderDropsWhatItRead(t *testing.T) {
	s := pageCacheStore(t)
	blob := make([]byte, 5*writebackWindow+3)
	for i := range blob {
		blob[i] = byte(i*31 + i>>9)
	}
	desc := ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	if err := content.WriteBlob(t.Context(), s, "read", bytes.NewReader(blob), desc); err != nil {
		t.Fatal(err)
	}
	path := s.blobPath(desc.Digest)

	// Front to back, in 1 MiB reads, as an unpack reads a layer.
	ra, err := s.ReaderAt(t.Context(), desc)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var off int64
	for off < desc.Size {
		n, err := ra.ReadAt(buf, off)
		if n == 0 && err != nil {
			t.Fatal(err)
		}
		off += int64(n)
		if off == 4*writebackWindow {
			if got, max := pagecachetest.Bytes(t, path), int64(2*writebackWindow); got > max {
				t.Errorf("at %d: %d bytes in the page cache, want at most %d behind the reader", off, got, max)
			}
		}
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	if got := pagecachetest.Bytes(t, path); got > 1<<20 {
		t.Errorf("after a front-to-back read: %d bytes in the page cache, want none", got)
	}

	// Back to front: nothing is dropped.
	ra, err = s.ReaderAt(t.Context(), desc)
	if err != nil {
		t.Fatal(err)
	}
	for off := desc.Size - int64(len(buf)); off > 0; off -= int64(len(buf)) {
		if _, err := ra.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	if got, min := pagecachetest.Bytes(t, path), int64(4*writebackWindow); got < min {
		t.Errorf("after a back-to-front read: %d bytes in the page cache, want at least %d", got, min)
	}
}
