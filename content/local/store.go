package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// Names in the layout root.
const (
	layoutFile    = ocispec.ImageLayoutFile // "oci-layout"
	indexFile     = "index.json"
	indexLockFile = "index.json.lock"
	blobsDir      = ocispec.ImageBlobsDir // "blobs"
	ingestDir     = "ingest"
	labelsDir     = "labels"
)

// Store is a content store kept as an OCI image layout in a directory. It
// implements [content.Store]; [Store.Images] gives the name records kept in
// the layout's index.json. A Store is safe for concurrent use, and several
// Stores, in one process or in several, may share a directory.
type Store struct {
	root    string
	sync    bool
	images  *Images
	entries decodedEntries // of index.json, from the last read
}

var _ content.Store = (*Store)(nil)

// Option configures a [Store].
type Option func(*config)

type config struct {
	sync bool
}

// WithSync sets whether the store fsyncs what it writes: a blob's data and
// directory at commit, index.json and labels when they are rewritten. The
// default is true, so that a committed blob or a created name survives a
// power loss. Without it, writes are still atomic (a crash leaves the old
// file or the new one) but may be lost; use false for caches and tests.
func WithSync(sync bool) Option { return func(c *config) { c.sync = sync } }

// New opens the OCI image layout at root, creating the directory, the
// oci-layout file, an empty index.json and the blobs directory when they are
// missing. An existing layout written by another tool is used as it is. A
// layout whose oci-layout file names an unsupported version (anything but
// 1.x) is refused with an error that matches errdefs.ErrFailedPrecondition.
func New(root string, opts ...Option) (*Store, error) {
	cfg := config{sync: true}
	for _, o := range opts {
		o(&cfg)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open layout %s: %w", root, err)
	}
	s := &Store{root: abs, sync: cfg.sync}
	s.images = &Images{s: s}
	if err := s.init(); err != nil {
		return nil, fmt.Errorf("open layout %s: %w", root, err)
	}
	return s, nil
}

// Root returns the absolute path of the layout directory.
func (s *Store) Root() string { return s.root }

// Images returns the name records of the layout, kept in its index.json.
func (s *Store) Images() *Images { return s.images }

func (s *Store) init() error {
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(s.root, layoutFile))
	switch {
	case err == nil:
		if err := checkLayoutVersion(b); err != nil {
			return err
		}
	case errors.Is(err, fs.ErrNotExist):
		b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := writeFileAtomic(filepath.Join(s.root, layoutFile), b, 0o644, time.Time{}, s.sync); err != nil {
			return err
		}
	default:
		return err
	}
	if err := os.MkdirAll(filepath.Join(s.root, blobsDir), 0o755); err != nil {
		return err
	}
	if err := s.initIndex(); err != nil {
		return err
	}
	s.removeTrash()
	removeStaleTemps(s.root)
	return nil
}

// checkLayoutVersion accepts an oci-layout file of version 1.x.
func checkLayoutVersion(b []byte) error {
	var l ocispec.ImageLayout
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("%s: %v: %w", layoutFile, err, errdefs.ErrFailedPrecondition)
	}
	major, _, _ := strings.Cut(l.Version, ".")
	if n, err := strconv.Atoi(major); err != nil || n != 1 {
		return fmt.Errorf("%s: unsupported imageLayoutVersion %q: %w", layoutFile, l.Version, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// blobPath returns where the blob dgst lives. dgst must be valid, which
// makes its algorithm and encoded parts safe as path elements.
func (s *Store) blobPath(dgst digest.Digest) string {
	return filepath.Join(s.root, blobsDir, dgst.Algorithm().String(), dgst.Encoded())
}

// labelsPath returns where the labels of the blob dgst live.
func (s *Store) labelsPath(dgst digest.Digest) string {
	return filepath.Join(s.root, labelsDir, dgst.Algorithm().String(), dgst.Encoded())
}

// ingestPath returns the directory of the ingest ref: a hash of the ref, so
// that any ref string is a safe name.
func (s *Store) ingestPath(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.root, ingestDir, hex.EncodeToString(sum[:]))
}

// validDigest checks a digest that is about to become a path.
func validDigest(op string, dgst digest.Digest) error {
	if err := dgst.Validate(); err != nil {
		return fmt.Errorf("%s %q: %v: %w", op, dgst, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ReaderAt opens the committed blob desc.Digest. A blob the store does not
// have is an error that matches errdefs.ErrNotFound; an invalid digest one
// that matches errdefs.ErrInvalidArgument.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if err := validDigest("open blob", desc.Digest); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(desc.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", desc.Digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open blob %s: %w", desc.Digest, err)
	}
	return &blobReader{f: f, size: fi.Size()}, nil
}

// blobReader reads a committed blob from its file. A reader that reads it
// from the start, front to back, drops what it has read from the page
// cache behind it, as writers drop what they have written (see dropCacheRange):
// a blob is read once, by an unpack or a copy, and the pages freed are the
// next ones the reads reuse. One that reads anywhere else leaves the cache
// alone.
type blobReader struct {
	f    *os.File
	size int64

	mu      sync.Mutex
	next    int64 // where a front-to-back reader reads next; -1 once it did not
	dropped int64 // bytes before it are dropped from the cache
}

func (r *blobReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	if r.size >= 2*writebackWindow {
		r.readBehind(off, n)
	}
	return n, err
}

// readBehind follows a front-to-back reader, and drops what lies more than
// a writeback window behind it.
func (r *blobReader) readBehind(off int64, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off != r.next || r.next < 0 {
		r.next = -1
		return
	}
	r.next += int64(n)
	if to := r.next - writebackWindow; to-r.dropped >= writebackWindow {
		dropCacheRange(r.f, r.dropped, to)
		r.dropped = to
	}
}

// Close closes the file, dropping the rest of a blob read to its end
// front to back.
func (r *blobReader) Close() error {
	r.mu.Lock()
	if r.next == r.size && r.dropped > 0 {
		dropCacheRange(r.f, r.dropped, r.size)
	}
	r.mu.Unlock()
	return r.f.Close()
}

func (r *blobReader) Size() int64 { return r.size }
