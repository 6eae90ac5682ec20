// Package pagecache tells how much of a file is in the page cache, for the
// tests of the packages that keep what they write out of it (content/local
// and unpack).
package pagecache

import (
	"errors"
	"testing"
)

// ErrUnsupported is returned where the system does not say (outside Linux).
var ErrUnsupported = errors.New("page cache residency: not supported on this system")

// TempDir returns a new directory for t whose files can leave the page
// cache, or skips t where they cannot: on tmpfs the cache is the file, and
// outside Linux nothing says what is cached.
func TempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if cached, err := alwaysCached(dir); err != nil {
		t.Fatal(err)
	} else if cached {
		t.Skip("the page cache is the file here (tmpfs), or residency is unknown")
	}
	return dir
}

// Bytes is [Resident] for tests: it fails t on an error.
func Bytes(t testing.TB, path string) int64 {
	t.Helper()
	n, err := Resident(path)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
