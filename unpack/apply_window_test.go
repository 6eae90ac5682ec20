package unpack

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// windowFile is a file that records what its writers ask of the page
// cache, in order of the calls.
type windowFile struct {
	f      *os.File
	mu     sync.Mutex
	calls  []string
	closed bool
}

func (w *windowFile) record(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		format = "after close: " + format
	}
	w.calls = append(w.calls, fmt.Sprintf(format, args...))
}

func (w *windowFile) Write(p []byte) (int, error)              { return w.f.Write(p) }
func (w *windowFile) writeAt(p []byte, off int64) (int, error) { return w.f.WriteAt(p, off) }
func (w *windowFile) chown(uid, gid int) error                 { return nil }
func (w *windowFile) chmod(mode fs.FileMode) error             { return nil }
func (w *windowFile) setxattr(key string, value []byte) error  { return nil }
func (w *windowFile) utimes(atime, mtime time.Time) error      { return nil }
func (w *windowFile) startWriteback(off, n int64) bool         { w.record("start %d+%d", off, n); return true }
func (w *windowFile) dropWritten(off, n int64)                 { w.record("drop %d+%d", off, n) }
func (w *windowFile) close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	return w.f.Close()
}

// TestWriteDropsWindows checks that the writers of a file larger than
// dropWindow start the writeback of each window as the applier hands it
// out, and drop the window before, all before the file is finished; then
// the whole file's writeback and drop at its end.
func TestWriteDropsWindows(t *testing.T) {
	size := int64(3*dropWindow + 12345)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	path := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	wf := &windowFile{f: f}
	w := newFileWriter(2, 4)
	w.reserve()
	pf := &pendingFile{f: wf, meta: fileMetaPlan{name: "big"}}
	if err := w.write(pf, bytes.NewReader(data), func() error { return nil }, func(err error) error { return err }); err != nil {
		t.Fatal(err)
	}
	if err := w.wait(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want the %d written", len(got), err, len(data))
	}
	win := int64(dropWindow)
	windows := []string{
		fmt.Sprintf("start 0+%d", win),
		fmt.Sprintf("start %d+%d", win, win),
		fmt.Sprintf("drop 0+%d", win),
		fmt.Sprintf("start %d+%d", 2*win, win),
		fmt.Sprintf("drop %d+%d", win, win),
	}
	end := []string{fmt.Sprintf("start 0+%d", size), fmt.Sprintf("drop 0+%d", size)}
	calls := wf.calls
	if len(calls) != len(windows)+len(end) {
		t.Fatalf("calls %q, want the windows %q, then %q", calls, windows, end)
	}
	// Windows may run on either writer, so in any order; the end comes
	// after them all, and before the close.
	if head := slices.Sorted(slices.Values(calls[:len(windows)])); !slices.Equal(head, slices.Sorted(slices.Values(windows))) {
		t.Errorf("window calls %q, want %q in any order", calls[:len(windows)], windows)
	}
	if !slices.Equal(calls[len(windows):], end) {
		t.Errorf("last calls %q, want %q", calls[len(windows):], end)
	}
}
