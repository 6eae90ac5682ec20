//go:build !unix || solaris || aix

package unpack

import (
	"io"
	"os"
)

// lockFileExclusive takes no lock: without flock(2) on this platform, the
// Directory snapshotter's own mutex is the only lock, and one process at a
// time may use a root. It fails as opening path would when path is
// missing.
func lockFileExclusive(path string) (io.Closer, error) {
	if _, err := os.Lstat(path); err != nil {
		return nil, err
	}
	return noLock{}, nil
}

// tryLockExclusive reports every path as locked by someone else, so that
// recovery removes nothing another process may be writing.
func tryLockExclusive(path string) (io.Closer, error) {
	return nil, nil
}

type noLock struct{}

func (noLock) Close() error { return nil }
