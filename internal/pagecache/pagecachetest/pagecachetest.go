// Package pagecachetest helps tests check what of a file is in the page
// cache (see pagecache.Resident).
package pagecachetest

import (
	"testing"

	"github.com/pullkit/pullkit/internal/pagecache"
)

// TempDir returns a new directory for t whose files can leave the page
// cache, or skips t where they cannot: on tmpfs the cache is the file, and
// outside Linux nothing says what is cached.
func TempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if cached, err := pagecache.AlwaysCached(dir); err != nil {
		t.Fatal(err)
	} else if cached {
		t.Skip("the page cache is the file here (tmpfs), or residency is unknown")
	}
	return dir
}

// Bytes is pagecache.Resident for tests: it fails t on an error.
func Bytes(t testing.TB, path string) int64 {
	t.Helper()
	n, err := pagecache.Resident(path)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
