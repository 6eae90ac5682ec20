package local

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
)

// TestWriterStartsWriteback checks that a writer of a store that syncs
// starts the writeback of its file as it goes, window by window, starts
// over after Truncate, and that none of it changes what is committed; and
// that a store that does not sync does not ask for writeback.
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
		if sync && runtime.GOOS == "linux" && !w.wbOff {
			if w.wbFrom < 2*writebackWindow || w.wbPrev < writebackWindow {
				t.Errorf("sync=%v: writeback started up to %d (window before from %d), want at least %d (%d)",
					sync, w.wbFrom, w.wbPrev, 2*writebackWindow, writebackWindow)
			}
		}
		if !sync && (w.wbFrom != 0 || w.wbOff) {
			t.Errorf("sync=%v: writeback started up to %d, want none", sync, w.wbFrom)
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
