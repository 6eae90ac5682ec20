package memory

import (
	"cmp"
	"context"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

var _ content.Store = (*Store)(nil)

// Store is a content.Store that keeps blobs, labels and ingests in memory.
// It is safe for concurrent use by multiple goroutines; a [content.Writer]
// it returns is not, as the interface says.
//
// The zero Store is empty and ready to use; [New] returns the same.
type Store struct {
	mu      sync.Mutex
	blobs   map[digest.Digest]*blob
	ingests map[string]*ingest
	images  *Images
}

// blob is a committed blob. data never changes once committed, so readers
// share it without locking.
type blob struct {
	data []byte
	info content.Info
}

// ingest is a write in progress. Its fields are guarded by Store.mu; data is
// appended to only by the writer that holds the ingest.
type ingest struct {
	ref       string
	data      []byte
	total     int64
	expected  digest.Digest
	startedAt time.Time
	updatedAt time.Time
	held      bool
}

func (in *ingest) status() content.Status {
	return content.Status{
		Ref:       in.ref,
		Offset:    int64(len(in.data)),
		Total:     in.total,
		Expected:  in.expected,
		StartedAt: in.startedAt,
		UpdatedAt: in.updatedAt,
	}
}

// New returns an empty store.
func New() *Store {
	return &Store{}
}

// Images returns the store's name records. Every call returns the same
// [*Images], which lives as long as the store.
func (s *Store) Images() *Images {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.images == nil {
		s.images = &Images{}
	}
	return s.images
}

// Info returns the metadata of a committed blob, or an error that matches
// errdefs.ErrNotFound.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[dgst]
	if !ok {
		return content.Info{}, fmt.Errorf("info %s: %w", dgst, errdefs.ErrNotFound)
	}
	return copyInfo(b.info), nil
}

// Update changes a blob's labels as [content.Manager] describes and returns
// the new Info. UpdatedAt becomes the time of the call.
func (s *Store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[info.Digest]
	if !ok {
		return content.Info{}, fmt.Errorf("update %s: %w", info.Digest, errdefs.ErrNotFound)
	}
	labels, err := content.ApplyUpdate(b.info.Labels, info, fieldpaths...)
	if err != nil {
		return content.Info{}, err
	}
	b.info.Labels = labels
	b.info.UpdatedAt = later(time.Now(), b.info.UpdatedAt)
	return copyInfo(b.info), nil
}

// Walk calls fn for each committed blob that passes every filter. It calls
// fn without holding the store's lock, so fn may use the store; blobs
// committed or deleted meanwhile may or may not be visited.
func (s *Store) Walk(ctx context.Context, fn content.WalkFunc, filters ...content.Filter) error {
	s.mu.Lock()
	infos := make([]content.Info, 0, len(s.blobs))
	for _, b := range s.blobs {
		infos = append(infos, copyInfo(b.info))
	}
	s.mu.Unlock()
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("walk: %w", err)
		}
		if !content.Match(info, filters...) {
			continue
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes a committed blob and its labels, or returns an error that
// matches errdefs.ErrNotFound. Readers opened before keep reading it.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[dgst]; !ok {
		return fmt.Errorf("delete %s: %w", dgst, errdefs.ErrNotFound)
	}
	delete(s.blobs, dgst)
	return nil
}

// ReaderAt opens the committed blob desc.Digest, or returns an error that
// matches errdefs.ErrNotFound. Only desc.Digest is used.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return &readerAt{data: b.data}, nil
}

// Status returns the ingest with this ref, or an error that matches
// errdefs.ErrNotFound.
func (s *Store) Status(ctx context.Context, ref string) (content.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.ingests[ref]
	if !ok {
		return content.Status{}, fmt.Errorf("status of ref %q: %w", ref, errdefs.ErrNotFound)
	}
	return in.status(), nil
}

// ListStatuses returns the ingests whose ref starts with one of the
// prefixes, or all of them when none is given, sorted by ref.
func (s *Store) ListStatuses(ctx context.Context, prefixes ...string) ([]content.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []content.Status
	for ref, in := range s.ingests {
		if len(prefixes) == 0 || slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(ref, p) }) {
			out = append(out, in.status())
		}
	}
	slices.SortFunc(out, func(a, b content.Status) int { return cmp.Compare(a.Ref, b.Ref) })
	return out, nil
}

// Abort discards the ingest with this ref. It returns an error that matches
// errdefs.ErrNotFound when there is none, and errdefs.ErrUnavailable while a
// writer holds it.
func (s *Store) Abort(ctx context.Context, ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.ingests[ref]
	switch {
	case !ok:
		return fmt.Errorf("abort ref %q: %w", ref, errdefs.ErrNotFound)
	case in.held:
		return fmt.Errorf("abort ref %q: held by a writer: %w", ref, errdefs.ErrUnavailable)
	}
	delete(s.ingests, ref)
	return nil
}

// Writer opens a writer as [content.Ingester] describes. A ref whose ingest
// was abandoned is resumed, its bytes hashed once; if the abandoned ingest
// expected another digest than the one [content.WithDescriptor] gives now,
// it starts again from zero. A descriptor with an invalid digest or a
// negative size is an error that matches errdefs.ErrInvalidArgument.
func (s *Store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	wo, err := content.ApplyWriterOpts(opts...)
	if err != nil {
		return nil, err
	}
	if wo.Ref == "" {
		return nil, fmt.Errorf("open writer: no ref: %w", errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open writer for ref %q: %w", wo.Ref, err)
	}
	expected, total := wo.Desc.Digest, wo.Desc.Size
	if expected != "" {
		if err := expected.Validate(); err != nil {
			return nil, fmt.Errorf("open writer for ref %q: expected digest %q: %v: %w", wo.Ref, expected, err, errdefs.ErrInvalidArgument)
		}
	}
	if total < 0 {
		return nil, fmt.Errorf("open writer for ref %q: negative size %d: %w", wo.Ref, total, errdefs.ErrInvalidArgument)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[expected]; ok && expected != "" {
		return nil, fmt.Errorf("open writer for ref %q: %s: %w", wo.Ref, expected, errdefs.ErrAlreadyExists)
	}
	in, ok := s.ingests[wo.Ref]
	switch {
	case ok && in.held:
		return nil, fmt.Errorf("open writer for ref %q: %w", wo.Ref, errdefs.ErrUnavailable)
	case !ok:
		now := time.Now()
		in = &ingest{ref: wo.Ref, startedAt: now, updatedAt: now}
		if s.ingests == nil {
			s.ingests = make(map[string]*ingest)
		}
		s.ingests[wo.Ref] = in
	case expected != "" && in.expected != "" && expected != in.expected:
		// The abandoned bytes belong to another blob.
		in.data = in.data[:0]
		in.updatedAt = time.Now()
	}
	if expected != "" {
		in.expected = expected
	}
	if total > 0 {
		in.total = total
	}
	in.held = true

	alg := digest.Canonical
	if in.expected != "" {
		alg = in.expected.Algorithm()
	}
	w := &writer{s: s, in: in, alg: alg, h: alg.Hash()}
	w.h.Write(in.data) // once, on resume
	return w, nil
}

// writer writes one ingest. The ingest's data slice is changed only here,
// under the store's lock, and read elsewhere under the same lock.
type writer struct {
	s      *Store
	in     *ingest
	alg    digest.Algorithm
	h      hash.Hash
	closed bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("write ref %q: writer closed: %w", w.in.ref, errdefs.ErrFailedPrecondition)
	}
	w.s.mu.Lock()
	w.in.data = append(w.in.data, p...)
	w.in.updatedAt = time.Now()
	w.s.mu.Unlock()
	w.h.Write(p)
	return len(p), nil
}

// Close releases the ref; the ingest stays for a later writer. Closing a
// closed or committed writer does nothing.
func (w *writer) Close() error {
	if w.closed {
		return nil
	}
	w.s.mu.Lock()
	w.in.held = false
	w.s.mu.Unlock()
	w.closed = true
	return nil
}

// Digest returns the digest of the bytes written so far, with the algorithm
// of the expected digest when one was given, else SHA-256.
func (w *writer) Digest() digest.Digest {
	return digest.NewDigest(w.alg, w.h)
}

func (w *writer) Status() (content.Status, error) {
	if w.closed {
		return content.Status{}, fmt.Errorf("status of ref %q: writer closed: %w", w.in.ref, errdefs.ErrFailedPrecondition)
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.in.status(), nil
}

// Truncate cuts the ingest to size bytes, any size from 0 to the offset,
// and hashes what is kept again.
func (w *writer) Truncate(size int64) error {
	if w.closed {
		return fmt.Errorf("truncate ref %q: writer closed: %w", w.in.ref, errdefs.ErrFailedPrecondition)
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if size < 0 || size > int64(len(w.in.data)) {
		return fmt.Errorf("truncate ref %q to %d bytes: offset is %d: %w", w.in.ref, size, len(w.in.data), errdefs.ErrInvalidArgument)
	}
	w.in.data = w.in.data[:size]
	w.in.updatedAt = time.Now()
	w.h.Reset()
	w.h.Write(w.in.data)
	return nil
}

// Commit verifies the ingest against size (if > 0) and expected (if not
// empty) and makes it a blob. It always releases the writer. On a mismatch
// the ingest stays, to be aborted or truncated by a later writer; when the
// blob is already present it matches errdefs.ErrAlreadyExists and the
// ingest is discarded.
func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.CommitOpt) error {
	if w.closed {
		return fmt.Errorf("commit ref %q: writer closed: %w", w.in.ref, errdefs.ErrFailedPrecondition)
	}
	defer w.Close()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit ref %q: %w", w.in.ref, err)
	}
	if expected != "" {
		if err := expected.Validate(); err != nil {
			return fmt.Errorf("commit ref %q: expected digest %q: %v: %w", w.in.ref, expected, err, errdefs.ErrInvalidArgument)
		}
	}

	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	data := w.in.data
	n := int64(len(data))
	if size > 0 && n != size {
		return fmt.Errorf("commit ref %q: %w", w.in.ref, &content.MismatchError{Expected: expected, ExpectedSize: size, ActualSize: n})
	}
	actual := w.Digest()
	if expected != "" && expected.Algorithm() != w.alg {
		actual = expected.Algorithm().FromBytes(data)
	}
	if expected != "" && actual != expected {
		return fmt.Errorf("commit ref %q: %w", w.in.ref, &content.MismatchError{Expected: expected, Actual: actual, ExpectedSize: size, ActualSize: n})
	}
	if _, ok := w.s.blobs[actual]; ok {
		delete(w.s.ingests, w.in.ref)
		return fmt.Errorf("commit ref %q: %s: %w", w.in.ref, actual, errdefs.ErrAlreadyExists)
	}
	now := time.Now()
	info, err := content.ApplyCommitOpts(content.Info{Digest: actual, Size: n, CreatedAt: now, UpdatedAt: now}, opts...)
	if err != nil {
		return fmt.Errorf("commit ref %q: %w", w.in.ref, err)
	}
	// Fix the digest and size whatever the options did, and store no empty map.
	info.Digest, info.Size = actual, n
	if len(info.Labels) == 0 {
		info.Labels = nil
	}
	if w.s.blobs == nil {
		w.s.blobs = make(map[digest.Digest]*blob)
	}
	w.s.blobs[actual] = &blob{data: data[:n:n], info: info}
	delete(w.s.ingests, w.in.ref)
	return nil
}

// readerAt reads a committed blob, whose bytes never change.
type readerAt struct{ data []byte }

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: negative offset: %w", off, errdefs.ErrInvalidArgument)
	}
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *readerAt) Size() int64 { return int64(len(r.data)) }

func (r *readerAt) Close() error { return nil }

// copyInfo returns info with a labels map of its own.
func copyInfo(info content.Info) content.Info {
	info.Labels = maps.Clone(info.Labels)
	return info
}

// later returns t, or prev when t is before it, so that a time never goes back.
func later(t, prev time.Time) time.Time {
	if t.Before(prev) {
		return prev
	}
	return t
}
