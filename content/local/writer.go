package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

// Files in an ingest directory.
const (
	ingestData      = "data"
	ingestRef       = "ref"
	ingestTotal     = "total"
	ingestExpected  = "expected"
	ingestStartedAt = "startedat"
	ingestLock      = "lock"
)

// writeBufferSize is how many bytes a writer gathers before it writes to
// its file. A full buffer is written by a goroutine of the writer's own,
// while the caller hashes the next one: writing a blob then takes two
// cores, hashing on one and the kernel's copying and writeback on the
// other. A blob smaller than the buffer is written once, at Commit, with
// no goroutine.
const writeBufferSize = 512 << 10

// writeQueue is how many full buffers a writer lets wait for its
// goroutine, beside the one being written and the one being filled.
const writeQueue = 0

// writebackWindow is how many bytes a writer writes to its file before it
// starts their writeback to disk (see writeback), so that the disk works
// while the download runs rather than at Commit. A store that does not
// sync does it too: without it, the dirty pages of a whole image pile up in
// the page cache, and a big pull took 1.5 to 2 times as long, with that
// much more CPU, as in a store that syncs (bench/README.md).
const writebackWindow = 8 << 20

var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, writeBufferSize); return &b }}

// errReleased is returned by a writer used after Close or Commit.
var errReleased = fmt.Errorf("writer is closed: %w", errdefs.ErrFailedPrecondition)

// Writer opens a writer for the ref set with [content.WithRef], which is
// required (its absence is an error that matches errdefs.ErrInvalidArgument).
//
// The ref is locked for the writer's life: another writer for it, in this
// process or another, fails with an error that matches
// errdefs.ErrUnavailable. When the store already has the blob named by
// [content.WithDescriptor], Writer fails with an error that matches
// errdefs.ErrAlreadyExists.
//
// An ingest left under the ref (by a closed writer or a dead process) is
// resumed: the new writer re-reads its bytes once to restore the digest and
// continues at Status().Offset. When the descriptor given now and the one
// the ingest was started with disagree on a known size or digest, the old
// bytes belong to another blob and the ingest starts over.
func (s *Store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	wo, err := content.ApplyWriterOpts(opts...)
	if err != nil {
		return nil, err
	}
	if wo.Ref == "" {
		return nil, fmt.Errorf("open writer: no ref: %w", errdefs.ErrInvalidArgument)
	}
	desc := wo.Desc
	if desc.Size < 0 {
		return nil, fmt.Errorf("open writer %q: negative size %d: %w", wo.Ref, desc.Size, errdefs.ErrInvalidArgument)
	}
	if desc.Digest != "" {
		if err := validDigest(fmt.Sprintf("open writer %q: descriptor", wo.Ref), desc.Digest); err != nil {
			return nil, err
		}
		if err := s.checkAbsent(desc.Digest); err != nil {
			if errdefs.IsAlreadyExists(err) {
				s.dropIngest(ctx, s.ingestPath(wo.Ref))
			}
			return nil, fmt.Errorf("open writer %q: %w", wo.Ref, err)
		}
	}
	dir := s.ingestPath(wo.Ref)
	live := new(progress)
	if !holdRef(dir, live) {
		return nil, fmt.Errorf("open writer: ref %q is held by another writer: %w", wo.Ref, errdefs.ErrUnavailable)
	}
	l, err := s.lockIngest(ctx, dir)
	if err != nil {
		releaseRef(dir)
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("open writer: ref %q is held by another writer: %w", wo.Ref, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("open writer %q: %w", wo.Ref, err)
	}
	w := &writer{s: s, ref: wo.Ref, dir: dir, lock: l, live: live}
	if desc.Digest != "" {
		// Committed by someone else while we took the lock: this ingest,
		// whatever it holds, is of no use any more.
		if err := s.checkAbsent(desc.Digest); err != nil {
			s.removeIngest(dir)
			w.release()
			return nil, fmt.Errorf("open writer %q: %w", wo.Ref, err)
		}
	}
	if err := w.open(desc); err != nil {
		w.release()
		return nil, fmt.Errorf("open writer %q: %w", wo.Ref, err)
	}
	return w, nil
}

// checkAbsent fails with errdefs.ErrAlreadyExists when the blob is committed.
func (s *Store) checkAbsent(dgst digest.Digest) error {
	_, err := os.Stat(s.blobPath(dgst))
	switch {
	case err == nil:
		return fmt.Errorf("blob %s: %w", dgst, errdefs.ErrAlreadyExists)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return err
	}
}

// dropIngest removes the ingest in dir, if there is one and no writer
// holds it: a writer was asked for a blob that is committed, so whatever
// the ingest holds (most likely the blob itself, left by a commit that died
// before removing it) is of no use.
func (s *Store) dropIngest(ctx context.Context, dir string) {
	if _, err := os.Stat(dir); err != nil || !holdRef(dir, nil) {
		return
	}
	defer releaseRef(dir)
	l, err := acquire(ctx, filepath.Join(dir, ingestLock), true, false)
	if err != nil {
		return
	}
	defer l.unlock()
	s.removeIngest(dir)
}

// lockIngest creates the ingest directory dir if needed and takes its lock
// without waiting.
func (s *Store) lockIngest(ctx context.Context, dir string) (*fileLock, error) {
	for {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		l, err := acquire(ctx, filepath.Join(dir, ingestLock), true, false)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by a commit or an abort meanwhile
		}
		return l, err
	}
}

// removeIngest deletes an ingest directory whose lock the caller holds. It
// first renames the directory out of the way, so that a writer that opens
// the ref meanwhile starts a fresh ingest instead of finding half of this
// one.
func (s *Store) removeIngest(dir string) error {
	trash := filepath.Join(filepath.Dir(dir), trashPrefix+filepath.Base(dir)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(dir, trash); err != nil {
		return os.RemoveAll(dir)
	}
	return os.RemoveAll(trash)
}

// trashPrefix starts the names of ingest directories being removed.
const trashPrefix = ".trash-"

// removeTrash finishes removals that a dead process left behind.
func (s *Store) removeTrash() {
	dir := filepath.Join(s.root, ingestDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), trashPrefix) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// writer writes one ingest. It hashes bytes as they are written, and
// gathers small writes in a buffer.
type writer struct {
	s    *Store
	ref  string
	dir  string
	lock *fileLock
	live *progress // shared with the store's Status

	f        *os.File // nil once released
	buf      *[]byte  // bytes not yet handed to the file, nil until the first write
	bg       *fileFeeder
	alg      digest.Algorithm
	digester digest.Digester
	offset   int64 // bytes accepted, buffered ones included
	// The file's side, which the feeder's goroutine owns while it runs and
	// the writer's methods touch only once it is idle (see drain).
	written int64 // bytes in the file
	wbFrom  int64 // bytes before it are being written back, or on disk
	wbPrev  int64 // where the window written back before wbFrom starts
	wbOff   bool  // the file system refused early writeback

	total     int64
	expected  digest.Digest
	startedAt time.Time
	updatedAt time.Time
	err       error // a failed file write; the writer must be reopened
}

// open starts or resumes the ingest in w.dir.
func (w *writer) open(desc ocispec.Descriptor) error {
	st, err := readIngest(w.dir)
	fresh := errdefs.IsNotFound(err)
	if err != nil && !fresh {
		return err
	}
	if !fresh && st.Ref != w.ref {
		return fmt.Errorf("ingest %s belongs to ref %q: %w", w.dir, st.Ref, errdefs.ErrFailedPrecondition)
	}
	if !fresh && (desc.Size > 0 && st.Total > 0 && desc.Size != st.Total ||
		desc.Digest != "" && st.Expected != "" && desc.Digest != st.Expected) {
		fresh = true // the bytes are another blob's
	}
	total, expected := desc.Size, desc.Digest
	if !fresh {
		total, expected = max(total, st.Total), firstDigest(expected, st.Expected)
		w.startedAt = st.StartedAt
	}
	w.total, w.expected = total, expected
	w.alg = digest.Canonical
	if expected != "" {
		w.alg = expected.Algorithm()
	}
	w.digester = w.alg.Digester()

	if fresh {
		w.startedAt = time.Now().UTC()
		os.Remove(filepath.Join(w.dir, ingestRef))
		os.Remove(filepath.Join(w.dir, ingestData))
	}
	if fresh || total != st.Total || expected != st.Expected {
		if err := w.writeMeta(fresh); err != nil {
			return err
		}
	}
	data := filepath.Join(w.dir, ingestData)
	f, err := os.OpenFile(data, os.O_RDWR|os.O_CREATE, 0o644)
	if errors.Is(err, fs.ErrPermission) {
		// A commit that failed after making the data read-only.
		if err := os.Chmod(data, 0o644); err != nil {
			return err
		}
		f, err = os.OpenFile(data, os.O_RDWR|os.O_CREATE, 0o644)
	}
	if err != nil {
		return err
	}
	w.f = f
	// Restore the digest state from what is on disk; this also leaves the
	// file offset at the end.
	bp := writeBuffers.Get().(*[]byte)
	n, err := io.CopyBuffer(w.digester.Hash(), readerOnly{f}, (*bp)[:cap(*bp)])
	writeBuffers.Put(bp)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	w.offset = n
	w.setWritten(n)
	w.updatedAt = w.startedAt
	if n > 0 {
		if fi, err := f.Stat(); err == nil && fi.ModTime().After(w.startedAt) {
			w.updatedAt = fi.ModTime().UTC()
		}
	}
	w.publish()
	return nil
}

// publish shows the writer's progress to the store's Status.
func (w *writer) publish() {
	w.live.offset.Store(w.offset)
	w.live.updated.Store(w.updatedAt.UnixNano())
}

// firstDigest returns the first non-empty digest.
func firstDigest(a, b digest.Digest) digest.Digest {
	if a != "" {
		return a
	}
	return b
}

// readerOnly hides a file's WriteTo, so that io.CopyBuffer uses the buffer.
type readerOnly struct{ io.Reader }

// writeMeta records the ingest's ref, expected size and digest, and start
// time. The ref file is written last: an ingest without one is not yet
// started, and is started afresh.
func (w *writer) writeMeta(fresh bool) error {
	put := func(name, value string) error {
		path := filepath.Join(w.dir, name)
		if value == "" {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		return writeFileAtomic(path, []byte(value), 0o644, time.Time{}, false)
	}
	total := ""
	if w.total > 0 {
		total = strconv.FormatInt(w.total, 10)
	}
	if err := put(ingestTotal, total); err != nil {
		return err
	}
	if err := put(ingestExpected, w.expected.String()); err != nil {
		return err
	}
	if fresh {
		if err := put(ingestStartedAt, w.startedAt.Format(time.RFC3339Nano)); err != nil {
			return err
		}
	}
	return put(ingestRef, w.ref)
}

// Write appends p to the ingest. The bytes are hashed now, and gathered
// in a buffer; a full buffer is written to the file by the writer's
// goroutine, and the rest at Status, Close or Commit. An error of the
// file's is returned by a later Write, or by them.
func (w *writer) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, errReleased
	}
	if w.err == nil && w.bg != nil {
		w.err = w.bg.failed()
	}
	if w.err != nil {
		return 0, w.err
	}
	w.digester.Hash().Write(p)
	w.offset += int64(len(p))
	w.updatedAt = time.Now()
	w.publish()
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = writeBuffers.Get().(*[]byte)
		}
		k := min(len(p), writeBufferSize-len(*w.buf))
		*w.buf = append(*w.buf, p[:k]...)
		p = p[k:]
		if len(*w.buf) == writeBufferSize {
			if w.bg == nil {
				w.bg = newFileFeeder(w)
			}
			w.bg.feed(w.buf)
			w.buf = nil
		}
	}
	return n, nil
}

// fileFeeder writes a writer's full buffers to its file, in order, on a
// goroutine of its own.
type fileFeeder struct {
	in      chan *[]byte
	pending sync.WaitGroup // buffers fed and not yet written
	stopped chan struct{}  // closed when the goroutine has returned

	mu  sync.Mutex
	err error // the first write error
}

func newFileFeeder(w *writer) *fileFeeder {
	f := &fileFeeder{in: make(chan *[]byte, writeQueue), stopped: make(chan struct{})}
	go f.run(w)
	return f
}

func (f *fileFeeder) run(w *writer) {
	defer close(f.stopped)
	for b := range f.in {
		if f.failed() == nil {
			if _, err := w.writeFile(*b); err != nil {
				f.mu.Lock()
				f.err = err
				f.mu.Unlock()
			}
		}
		*b = (*b)[:0]
		writeBuffers.Put(b)
		f.pending.Done()
	}
}

// feed hands b to the goroutine, waiting while writeQueue buffers wait.
func (f *fileFeeder) feed(b *[]byte) {
	f.pending.Add(1)
	f.in <- b
}

// drain waits until every buffer fed is written, and returns the first
// write error. The goroutine is idle after it, until the next feed.
func (f *fileFeeder) drain() error {
	f.pending.Wait()
	return f.failed()
}

func (f *fileFeeder) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// clear forgets the write error, once the writer has made the file and
// its digest agree again. The goroutine must be idle.
func (f *fileFeeder) clear() {
	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
}

// stop ends the goroutine once it has written what it was fed.
func (f *fileFeeder) stop() {
	close(f.in)
	<-f.stopped
}

// writeFile writes p to the file. Every writebackWindow bytes it starts
// their writeback to disk. The feeder's goroutine calls it, or flush when
// the feeder is idle.
func (w *writer) writeFile(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if err != nil {
		return n, fmt.Errorf("write ingest %q: %w", w.ref, err)
	}
	if !w.wbOff && w.written-w.wbFrom >= writebackWindow {
		if writeback(w.f, w.wbPrev, w.wbFrom, w.written) {
			w.wbPrev, w.wbFrom = w.wbFrom, w.written
		} else {
			w.wbOff = true
		}
	}
	return n, nil
}

// setWritten records that the file holds n bytes, none of them being
// written back by this writer.
func (w *writer) setWritten(n int64) {
	w.written, w.wbFrom, w.wbPrev = n, n, n
}

// drain waits for the feeder to write what it was fed, and makes its
// error the writer's. The writer's methods call it before they touch the
// file.
func (w *writer) drain() {
	if w.bg == nil {
		return
	}
	if err := w.bg.drain(); err != nil && w.err == nil {
		w.err = err
	}
}

// flush writes every byte accepted to the file.
func (w *writer) flush() error {
	w.drain()
	if w.err != nil {
		return w.err
	}
	if w.buf == nil || len(*w.buf) == 0 {
		return nil
	}
	_, err := w.writeFile(*w.buf)
	*w.buf = (*w.buf)[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// Digest returns the digest of all bytes written so far, buffered ones
// included.
func (w *writer) Digest() digest.Digest { return w.digester.Digest() }

// Status flushes buffered bytes to the ingest file and reports the
// ingest. After it returns, Offset bytes survive the death of this process
// (not of the machine: they are not fsynced until Commit).
func (w *writer) Status() (content.Status, error) {
	if w.f == nil {
		return content.Status{}, errReleased
	}
	if err := w.flush(); err != nil {
		return content.Status{}, err
	}
	return content.Status{
		Ref:       w.ref,
		Offset:    w.offset,
		Total:     w.total,
		Expected:  w.expected,
		StartedAt: w.startedAt,
		UpdatedAt: w.updatedAt.UTC(),
	}, nil
}

// Truncate cuts the ingest to size bytes, which must be at most the bytes
// written so far, and re-reads what remains to restore the digest.
func (w *writer) Truncate(size int64) error {
	if w.f == nil {
		return errReleased
	}
	if size < 0 || size > w.offset {
		return fmt.Errorf("truncate ingest %q to %d: have %d bytes: %w", w.ref, size, w.offset, errdefs.ErrInvalidArgument)
	}
	if w.err == nil {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.bg != nil {
		// After an error the feeder may still be writing, and keeps the
		// error: what the file holds is read again below instead.
		w.bg.drain()
		w.bg.clear()
	}
	// After a failed write the file may hold fewer bytes than were
	// accepted; what it holds is the truth from here on.
	fi, err := w.f.Stat()
	if err != nil {
		return w.fail(err)
	}
	if size > fi.Size() {
		return fmt.Errorf("truncate ingest %q to %d: the file has %d bytes: %w", w.ref, size, fi.Size(), errdefs.ErrInvalidArgument)
	}
	if w.buf != nil {
		*w.buf = (*w.buf)[:0]
	}
	w.err = nil
	if err := w.f.Truncate(size); err != nil {
		return w.fail(err)
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return w.fail(err)
	}
	w.digester = w.alg.Digester()
	if _, err := io.CopyN(w.digester.Hash(), w.f, size); err != nil {
		return w.fail(err)
	}
	w.offset = size
	w.setWritten(size)
	w.updatedAt = time.Now()
	w.publish()
	return nil
}

// fail makes err sticky: the digest no longer matches the file.
func (w *writer) fail(err error) error {
	w.err = fmt.Errorf("ingest %q: %w", w.ref, err)
	return w.err
}

// Close writes buffered bytes and releases the ref. The ingest stays for a
// later writer to resume.
func (w *writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.flush()
	if rerr := w.release(); err == nil {
		err = rerr
	}
	return err
}

// release closes the file and unlocks the ref.
func (w *writer) release() error {
	var err error
	if w.bg != nil {
		w.bg.stop()
		w.bg = nil
	}
	if w.f != nil {
		err = w.f.Close()
		w.f = nil
	}
	if w.buf != nil {
		*w.buf = (*w.buf)[:0]
		writeBuffers.Put(w.buf)
		w.buf = nil
	}
	if w.lock != nil {
		w.lock.unlock()
		w.lock = nil
		releaseRef(w.dir)
	}
	return err
}

// Commit verifies the bytes written and moves them into blobs/, read-only.
//
// The size checked is size, or when it is 0 the size the writer was opened
// with; the digest is expected, or when it is empty the digest the writer
// was opened with. A mismatch is a [*content.MismatchError] and commits
// nothing. Bytes that can never be the expected blob (too many of them, or
// a wrong digest) are discarded with the ingest; too few bytes are kept, so
// that a later writer resumes them.
//
// When the blob is already committed, Commit removes the ingest and fails
// with an error that matches errdefs.ErrAlreadyExists; the labels of opts
// are still added to the existing blob. Commit releases the writer.
func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.CommitOpt) error {
	if w.f == nil {
		return errReleased
	}
	defer w.release()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit %q: %w", w.ref, err)
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("commit %q: %w", w.ref, err)
	}
	if size <= 0 {
		size = w.total
	}
	if expected == "" {
		expected = w.expected
	} else if err := validDigest(fmt.Sprintf("commit %q: expected", w.ref), expected); err != nil {
		return err
	}
	if size > 0 && w.offset != size {
		if w.offset > size {
			w.s.removeIngest(w.dir)
		}
		return fmt.Errorf("commit %q: %w", w.ref, &content.MismatchError{Expected: expected, ExpectedSize: size, ActualSize: w.offset})
	}
	dgst := w.digester.Digest()
	if expected != "" && expected.Algorithm() != w.alg {
		// Hashed with another algorithm than the caller now asks for:
		// the one case where the bytes are read again.
		var err error
		if dgst, err = expected.Algorithm().FromReader(io.NewSectionReader(w.f, 0, w.offset)); err != nil {
			return fmt.Errorf("commit %q: %w", w.ref, err)
		}
	}
	if expected != "" && dgst != expected {
		w.s.removeIngest(w.dir)
		return fmt.Errorf("commit %q: %w", w.ref, &content.MismatchError{Expected: expected, Actual: dgst, ExpectedSize: size, ActualSize: w.offset})
	}
	now := time.Now().UTC()
	info, err := content.ApplyCommitOpts(content.Info{Digest: dgst, Size: w.offset, CreatedAt: now, UpdatedAt: now}, opts...)
	if err != nil {
		return fmt.Errorf("commit %q: %w", w.ref, err)
	}
	if err := w.seal(now); err != nil {
		return fmt.Errorf("commit %q: %w", w.ref, err)
	}
	if err := w.s.commitBlob(ctx, filepath.Join(w.dir, ingestData), dgst, info.Labels, now); err != nil {
		if errdefs.IsAlreadyExists(err) {
			w.s.removeIngest(w.dir)
		}
		return fmt.Errorf("commit %q: %w", w.ref, err)
	}
	// The blob is committed. Should the ingest outlive this (an I/O error),
	// the next writer of the ref finds it complete, and its commit removes it.
	w.s.removeIngest(w.dir)
	return nil
}

// seal makes the data durable and read-only, with the commit time as its
// modification time, and closes it.
func (w *writer) seal(now time.Time) error {
	if w.s.sync {
		if err := w.f.Sync(); err != nil {
			return err
		}
		dropCacheRange(w.f, 0, 0)
	}
	if err := w.f.Chmod(0o444); err != nil {
		return err
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return err
	}
	return os.Chtimes(filepath.Join(w.dir, ingestData), now, now)
}

// commitBlob links the verified file data into blobs/ as dgst, adding
// labels under the blob's labels lock. It fails with errdefs.ErrAlreadyExists
// when the blob is there already; the labels are added to it then.
func (s *Store) commitBlob(ctx context.Context, data string, dgst digest.Digest, labels map[string]string, now time.Time) error {
	target := s.blobPath(dgst)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if len(labels) == 0 {
		return s.link(data, target, dgst)
	}
	l, err := s.lockLabels(ctx, dgst)
	if err != nil {
		return err
	}
	defer l.unlock()
	path := s.labelsPath(dgst)
	have, mtime, err := readLabels(path)
	if err != nil {
		return err
	}
	merged := make(map[string]string, len(have)+len(labels))
	for k, v := range have {
		merged[k] = v
	}
	for k, v := range labels {
		merged[k] = v
	}
	// Labels first: the blob is never visible without them.
	if err := s.writeLabels(path, merged, now); err != nil {
		return fmt.Errorf("write labels: %w", err)
	}
	err = s.link(data, target, dgst)
	if err != nil && !errdefs.IsAlreadyExists(err) {
		// Nothing committed: put the labels back as they were.
		if mtime.IsZero() {
			os.Remove(path)
		} else {
			s.writeLabels(path, have, mtime)
		}
	}
	return err
}

// link makes data visible as target, refusing to replace a target that
// exists. A hard link does that atomically; where the file system has
// none, a rename after a check does, since both files hold the same
// verified bytes.
func (s *Store) link(data, target string, dgst digest.Digest) error {
	err := os.Link(data, target)
	if err != nil && !errors.Is(err, fs.ErrExist) && linkUnsupported(err) {
		if _, serr := os.Lstat(target); serr == nil {
			err = &os.LinkError{Op: "link", Old: data, New: target, Err: fs.ErrExist}
		} else {
			err = os.Rename(data, target)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("blob %s: %w", dgst, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return err
	}
	if s.sync {
		return syncDir(filepath.Dir(target))
	}
	return nil
}
