package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// errLocked is returned by acquire without waiting when another open file
// description holds the lock.
var errLocked = errors.New("locked")

// fileLock is a held flock. Closing its file releases the lock.
type fileLock struct{ f *os.File }

// unlock releases the lock.
func (l *fileLock) unlock() error { return l.f.Close() }

// acquire opens the lock file at path, creating it (but not its directory),
// and locks it. Without wait it fails with errLocked when the lock is held;
// with wait it blocks until the lock is free or ctx is done.
//
// A lock file may be unlinked by whoever holds it (an ingest that is
// committed, a blob that is deleted). So after locking, acquire checks that
// path still names the file it locked, and starts over on a file that was
// replaced. When path or its directory is gone, it returns an error that
// matches fs.ErrNotExist, so the caller can recreate the directory.
func acquire(ctx context.Context, path string, exclusive, wait bool) (*fileLock, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		ok, err := tryLock(f, exclusive)
		if err != nil {
			f.Close()
			return nil, err
		}
		if !ok {
			if !wait {
				f.Close()
				return nil, errLocked
			}
			if err := waitLockCtx(ctx, f, exclusive); err != nil {
				// waitLockCtx owns f when it gives up on ctx.
				return nil, err
			}
		}
		same, err := names(path, f)
		if err != nil {
			f.Close()
			return nil, err
		}
		if same {
			return &fileLock{f: f}, nil
		}
		f.Close()
	}
}

// names reports whether path still names the open file f.
func names(path string, f *os.File) (bool, error) {
	held, err := f.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Unlinked while we waited. Recreating it is the caller's call,
		// since its directory may be gone too.
		if _, err := os.Stat(filepath.Dir(path)); errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, now), nil
}

// waitLockCtx blocks until f is locked or ctx is done. A blocked flock
// cannot be interrupted, so on ctx it leaves the wait to a goroutine that
// closes f (releasing any lock it got) once the wait ends; f must not be
// used after an error.
func waitLockCtx(ctx context.Context, f *os.File, exclusive bool) error {
	if ctx.Done() == nil {
		err := waitLock(f, exclusive)
		if err != nil {
			f.Close()
		}
		return err
	}
	done := make(chan error, 1)
	go func() { done <- waitLock(f, exclusive) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
		}
		return err
	case <-ctx.Done():
		go func() {
			<-done
			f.Close()
		}()
		return fmt.Errorf("wait for lock %s: %w", f.Name(), ctx.Err())
	}
}

// refs holds the ingest directories that this process has locked: by a
// writer, with its progress, or by an Abort, with nil. An flock already
// conflicts between two open files of one process, but not everywhere
// (Linux emulates flock with fcntl locks on NFS, and those are per
// process), so writers in one process also exclude each other here.
var refs = struct {
	sync.Mutex
	held map[string]*progress
}{held: map[string]*progress{}}

// progress is what a live writer has accepted, buffered bytes included, so
// that the store's Status in this process sees them.
type progress struct {
	offset  atomic.Int64
	updated atomic.Int64 // Unix nanoseconds
}

// holdRef marks the ingest directory dir as held by this process, with p as
// its progress. It reports false when it already is.
func holdRef(dir string, p *progress) bool {
	refs.Lock()
	defer refs.Unlock()
	if _, ok := refs.held[dir]; ok {
		return false
	}
	refs.held[dir] = p
	return true
}

// releaseRef undoes holdRef.
func releaseRef(dir string) {
	refs.Lock()
	delete(refs.held, dir)
	refs.Unlock()
}

// liveProgress returns the progress of this process's writer of the ingest
// dir, or nil.
func liveProgress(dir string) *progress {
	refs.Lock()
	defer refs.Unlock()
	return refs.held[dir]
}

// indexGates serialize the index.json writers of this process per layout
// root, so that they queue on a channel (which honours contexts) instead of
// each blocking in flock.
var indexGates = struct {
	sync.Mutex
	gate map[string]chan struct{}
}{gate: map[string]chan struct{}{}}

// indexGate returns the in-process gate for the layout at root.
func indexGate(root string) chan struct{} {
	indexGates.Lock()
	defer indexGates.Unlock()
	g, ok := indexGates.gate[root]
	if !ok {
		g = make(chan struct{}, 1)
		indexGates.gate[root] = g
	}
	return g
}
