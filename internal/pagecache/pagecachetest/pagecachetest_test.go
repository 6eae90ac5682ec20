package pagecachetest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pullkit/pullkit/internal/pagecache/pagecachetest"
)

// TestBytes checks that a file just written counts as cached, and an empty
// one as nothing.
func TestBytes(t *testing.T) {
	dir := pagecachetest.TempDir(t)
	full, empty := filepath.Join(dir, "full"), filepath.Join(dir, "empty")
	if err := os.WriteFile(full, make([]byte, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := pagecachetest.Bytes(t, full); got != 10000 {
		t.Errorf("Bytes(full) = %d, want 10000", got)
	}
	if got := pagecachetest.Bytes(t, empty); got != 0 {
		t.Errorf("Bytes(empty) = %d, want 0", got)
	}
}
