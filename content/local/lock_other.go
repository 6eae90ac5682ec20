//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package local

import (
	"fmt"
	"os"

	"github.com/containerd/errdefs"
)

// tryLock fails: this platform has no flock, and the store does not run
// without cross-process locks.
func tryLock(f *os.File, exclusive bool) (bool, error) {
	return false, fmt.Errorf("lock %s: file locks on this platform: %w", f.Name(), errdefs.ErrNotImplemented)
}

// waitLock fails like tryLock.
func waitLock(f *os.File, exclusive bool) error {
	_, err := tryLock(f, exclusive)
	return err
}

// linkUnsupported reports false: every link error is final here.
func linkUnsupported(error) bool { return false }
