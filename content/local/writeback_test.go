package local

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
)

// TestWriterStartsWriteback checks that a writer starts the writeback of
// its file as it goes, window by window, whether its store syncs or not,
// starts over after Truncate, and that none of it changes what is
// committed.
func TestWriterStartsWriteback(t *testing.T) {
	blob := make([]byte, 2*writebackWindow+3<<20+7)
	for i := range blob {
		blob[i] = byte(i*7 + i>>12)
	}
	for _, sync := range []bool{true, false} {
		s, err := New(t.TempDir(), WithSync(sync))
		if err != nil {
			t.Fatal(err)
		}
		cw, err := s.Writer(t.Context(), content.WithRef("big"))
		if err != nil {
			t.Fatal(err)
		}
		w := cw.(*writer)
		// 1 MiB writes, as content.Copy makes, then a small one.
		rest := blob[:len(blob)-7]
		for len(rest) > 0 {
			n := min(len(rest), 1<<20)
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if _, err := w.Write(blob[len(blob)-7:]); err != nil {
			t.Fatal(err)
		}
		// Status waits for the writer's goroutine to write it all.
		if st, err := w.Status(); err != nil || st.Offset != int64(len(blob)) {
			t.Fatalf("Status() = %+v, %v; want %d bytes", st, err, len(blob))
		}
		if runtime.GOOS == "linux" && !w.wbOff {
			if w.wbFrom < 2*writebackWindow || w.wbPrev < writebackWindow {
				t.Errorf("sync=%v: writeback started up to %d (window before from %d), want at least %d (%d)",
					sync, w.wbFrom, w.wbPrev, 2*writebackWindow, writebackWindow)
			}
		}
		// Truncate into a window already written back, and write again.
		cut := int64(writebackWindow + 12345)
		if err := w.Truncate(cut); err != nil {
			t.Fatal(err)
		}
		if w.wbFrom != cut || w.wbPrev != cut {
			t.Errorf("sync=%v: after Truncate(%d), writeback from %d (before %d), want %d", sync, cut, w.wbFrom, w.wbPrev, cut)
		}
		if _, err := io.Copy(writerOnly{w}, bytes.NewReader(blob[cut:])); err != nil {
			t.Fatal(err)
		}
		want := digest.FromBytes(blob)
		if err := w.Commit(t.Context(), int64(len(blob)), want); err != nil {
			t.Fatalf("sync=%v: Commit: %v", sync, err)
		}
		got, err := os.ReadFile(s.blobPath(want))
		if err != nil || !bytes.Equal(got, blob) {
			t.Errorf("sync=%v: committed blob: %d bytes, %v; want the %d bytes written", sync, len(got), err, len(blob))
		}
	}
}

// writerOnly hides the writer's other methods from io.Copy.
type writerOnly struct{ io.Writer }

// TestWriterReportsBackgroundWriteErrors checks that an error of the
// writer's goroutine reaches the caller: a later Write, Status and Commit
// fail, nothing is committed, and Truncate recovers the writer.
func TestWriterReportsBackgroundWriteErrors(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cw, err := s.Writer(t.Context(), content.WithRef("broken"))
	if err != nil {
		t.Fatal(err)
	}
	w := cw.(*writer)
	// A descriptor the file cannot be written through.
	ro, err := os.Open(w.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	good := w.f
	w.f = ro
	blob := bytes.Repeat([]byte("layer bytes "), 1<<18) // 3 MiB
	var werr error
	for off := 0; off < len(blob) && werr == nil; off += 64 << 10 {
		_, werr = w.Write(blob[off:min(off+64<<10, len(blob))])
	}
	if _, err := w.Status(); err == nil {
		t.Fatal("Status() after a failed background write: no error")
	}
	if err := w.Commit(t.Context(), int64(len(blob)), digest.FromBytes(blob)); err == nil {
		t.Fatal("Commit() after a failed background write: no error")
	}
	if _, err := s.Info(t.Context(), digest.FromBytes(blob)); !errdefs.IsNotFound(err) {
		t.Fatalf("Info() after the failed commit = %v, want not found", err)
	}
	good.Close()

	// Truncate recovers a writer whose goroutine failed: what the file
	// holds is the truth, and writing goes on from there.
	cw, err = s.Writer(t.Context(), content.WithRef("truncated"))
	if err != nil {
		t.Fatal(err)
	}
	w = cw.(*writer)
	ro, err = os.Open(w.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	good = w.f
	w.f = ro
	for off := 0; off < 2*writeBufferSize; off += 64 << 10 {
		w.Write(blob[off : off+64<<10])
	}
	if _, err := w.Status(); err == nil {
		t.Fatal("Status() after a failed background write: no error")
	}
	ro.Close()
	w.f = good
	if err := w.Truncate(0); err != nil {
		t.Fatalf("Truncate(0) after a failed background write: %v", err)
	}
	for off := 0; off < len(blob); off += 64 << 10 {
		if _, err := w.Write(blob[off:min(off+64<<10, len(blob))]); err != nil {
			t.Fatalf("Write after Truncate: %v", err)
		}
	}
	if err := w.Commit(t.Context(), int64(len(blob)), digest.FromBytes(blob)); err != nil {
		t.Fatalf("Commit() after Truncate: %v", err)
	}
	if _, err := s.Info(t.Context(), digest.FromBytes(blob)); err != nil {
		t.Fatalf("Info() after the commit: %v", err)
	}
	if err := s.Delete(t.Context(), digest.FromBytes(blob)); err != nil {
		t.Fatal(err)
	}

	// A new writer for the ref resumes what the file holds, and commits.
	cw, err = s.Writer(t.Context(), content.WithRef("broken"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := cw.Status()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cw.Write(blob[st.Offset:]); err != nil {
		t.Fatal(err)
	}
	if err := cw.Commit(t.Context(), int64(len(blob)), digest.FromBytes(blob)); err != nil {
		t.Fatalf("Commit() of the resumed ingest: %v", err)
	}
}
