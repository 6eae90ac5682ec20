package schema1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/internal/inflate"
)

// LabelUncompressed is the blob label, containerd's, under which Handle
// records a layer's diff ID: the digest of its uncompressed tar stream.
// A layer already in the store with this label is not read again.
const LabelUncompressed = "containerd.io/uncompressed"

// Decompression limits of the diff ID computation, those of package
// unpack: a hostile layer cannot make Handle decompress without end.
const (
	maxUncompressed = 64 << 30 // bytes per layer
	maxExpansion    = 500      // uncompressed bytes per compressed byte, beyond
	expansionGrace  = 16 << 20 // the first 16 MiB
)

// layerResult is what reading a layer stream tells.
type layerResult struct {
	diffID     digest.Digest
	compressed bool // gzip; else a plain tar
}

// handleLayer downloads the layer blob desc and records what Convert needs.
func (c *Converter) handleLayer(ctx context.Context, desc ocispec.Descriptor) error {
	c.mu.Lock()
	st := c.layers[desc.Digest]
	c.mu.Unlock()
	if st == nil {
		return fmt.Errorf("schema 1 layer %s: not a layer of the schema 1 manifest this converter handled: %w",
			desc.Digest, errdefs.ErrFailedPrecondition)
	}
	d, res, err := c.fetchLayer(ctx, desc.Digest, desc.Size)
	if err != nil {
		return fmt.Errorf("schema 1 layer %s: %w", desc.Digest, err)
	}
	if !res.compressed {
		d.MediaType = handlers.MediaTypeDockerSchema2LayerUncompressed
	}
	c.mu.Lock()
	st.desc, st.diffID, st.done = d, res.diffID, true
	c.mu.Unlock()
	return nil
}

// fetchLayer brings the blob dgst into the store and returns its
// descriptor (with its size) and diff ID. size is the blob's size when the
// caller knows it, else -1.
func (c *Converter) fetchLayer(ctx context.Context, dgst digest.Digest, size int64) (ocispec.Descriptor, layerResult, error) {
	d := ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Layer, Digest: dgst}
	info, err := c.store.Info(ctx, dgst)
	switch {
	case err == nil:
		d.Size = info.Size
		if l, err := digest.Parse(info.Labels[LabelUncompressed]); err == nil {
			if c.progress != nil {
				c.progress(fetch.Event{Kind: fetch.Skipped, Desc: d, Offset: d.Size, Total: d.Size})
			}
			return d, layerResult{diffID: l, compressed: l != dgst}, nil
		}
	case errdefs.IsNotFound(err) && size > 0:
		d.Size = size
	case errdefs.IsNotFound(err):
		if d.Size, err = sizeOf(ctx, c.fetcher, d); err != nil {
			return d, layerResult{}, err
		}
	default:
		return d, layerResult{}, err
	}

	tee := &teeFetcher{f: c.fetcher}
	var f fetch.Fetcher = tee
	if rf, ok := c.fetcher.(fetch.ResumeFetcher); ok {
		f = resumeTeeFetcher{tee, rf}
	}
	var opts []fetch.HandlerOption
	if c.progress != nil {
		opts = append(opts, fetch.WithProgress(c.progress))
	}
	if _, err := fetch.Handler(c.store, f, opts...)(ctx, d); err != nil {
		return d, layerResult{}, err
	}
	res, ok := tee.result()
	if !ok {
		// The store had the blob, or the download resumed an ingest: the
		// stream seen was not the whole blob. Read it back, verified.
		if res, err = readLayer(ctx, c.store, d); err != nil {
			return d, layerResult{}, err
		}
	}
	if _, err := c.store.Update(ctx, content.Info{Digest: dgst, Labels: map[string]string{LabelUncompressed: res.diffID.String()}},
		"labels."+LabelUncompressed); err != nil {
		return d, layerResult{}, fmt.Errorf("label diff ID: %w", err)
	}
	return d, res, nil
}

// Stater is implemented by fetchers that can tell a blob's size without
// downloading it, as an HTTP HEAD request does: fetch.Repository and the
// fetchers of resolve.Registry are Staters. A [Converter] asks its fetcher
// for the sizes of the layers that schema 1 manifests do not record, so
// its fetcher must be a Stater unless the store has the layers already or
// the layer descriptors it handles carry their sizes.
type Stater interface {
	// Stat returns the size of the blob desc.Digest; desc.Size is not
	// known. A blob the registry does not have is an error that matches
	// errdefs.ErrNotFound.
	Stat(ctx context.Context, desc ocispec.Descriptor) (size int64, err error)
}

var _ Stater = (*fetch.Repository)(nil)

// errNoStat is the failure of a converter whose fetcher cannot tell sizes.
var errNoStat = fmt.Errorf("schema 1 layer sizes need a fetcher with Stat (schema1.Stater, as fetch.Repository has): %w", errdefs.ErrNotImplemented)

// sizeOf returns the size of the blob desc from f, which must be a
// Stater.
func sizeOf(ctx context.Context, f fetch.Fetcher, desc ocispec.Descriptor) (int64, error) {
	s, ok := f.(Stater)
	if !ok {
		return 0, fmt.Errorf("size: fetcher %T: %w", f, errNoStat)
	}
	n, err := s.Stat(ctx, desc)
	if err != nil {
		return 0, fmt.Errorf("size: %w", err)
	}
	if n < 0 {
		return 0, fmt.Errorf("size: Stat returned %d: %w", n, errdefs.ErrInvalidArgument)
	}
	return n, nil
}

// readLayer computes the diff ID of the committed blob desc.
func readLayer(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (layerResult, error) {
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return layerResult{}, err
	}
	defer ra.Close()
	return digestLayer(&ctxReader{ctx: ctx, r: content.NewReader(ra)}, uncompressedLimit(ra.Size()))
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// uncompressedLimit returns the most bytes a gzip layer of size bytes
// may expand to.
func uncompressedLimit(size int64) int64 {
	size = min(max(size, 0), maxUncompressed/maxExpansion)
	return min(maxUncompressed, expansionGrace+maxExpansion*size)
}

// digestLayer reads a layer stream to its end and returns its diff ID: the
// SHA-256 of the stream once gunzipped, or of the stream itself when it is
// not gzip. A gzip stream that expands to more than limit bytes is a
// *content.LimitError.
func digestLayer(r io.Reader, limit int64) (layerResult, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic, _ := br.Peek(len(zstdMagic))
	h := sha256.New()
	var res layerResult
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := inflate.NewReader(br)
		if err != nil {
			return res, decompressError(err)
		}
		n, err := io.Copy(h, io.LimitReader(zr, limit+1))
		if err != nil {
			return res, decompressError(err)
		}
		if n > limit {
			return res, &content.LimitError{What: "uncompressed layer size", Limit: limit, Got: n}
		}
		res.compressed = true
	case bytes.HasPrefix(magic, zstdMagic):
		return res, fmt.Errorf("a zstd layer in a schema 1 manifest: %w", errdefs.ErrNotImplemented)
	default:
		if _, err := io.Copy(h, br); err != nil {
			return res, err
		}
	}
	// Whatever follows the gzip stream is read too, so that a writer
	// feeding r never blocks.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return res, err
	}
	res.diffID = digest.NewDigest(digest.SHA256, h)
	return res, nil
}

// decompressError classifies a gzip failure, keeping the errors of the
// reader under it (a broken download) as they are.
func decompressError(err error) error {
	var ie interface{ IsIncomplete() bool }
	if errors.As(err, &ie) {
		return err
	}
	return fmt.Errorf("gunzip: %v: %w", err, errdefs.ErrInvalidArgument)
}

// teeFetcher is a Fetcher whose readers, opened from the first byte,
// also compute the layer's diff ID from the bytes they deliver.
type teeFetcher struct {
	f fetch.Fetcher

	mu  sync.Mutex
	res layerResult
	ok  bool
}

// resumeTeeFetcher is a teeFetcher over a ResumeFetcher: a download that
// resumes an ingest asks only for the missing bytes, and the diff ID is
// then read back from the store.
type resumeTeeFetcher struct {
	*teeFetcher
	rf fetch.ResumeFetcher
}

func (t resumeTeeFetcher) FetchFrom(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if offset == 0 {
		return t.Fetch(ctx, desc)
	}
	return t.rf.FetchFrom(ctx, desc, offset)
}

// Fetch opens desc and tees what it delivers into a goroutine that
// computes the diff ID.
func (t *teeFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := t.f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	h := &hashingReader{rc: rc, pw: pw, size: desc.Size, owner: t, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		res, err := digestLayer(pr, uncompressedLimit(desc.Size))
		if err != nil {
			pr.CloseWithError(err) // fails the download: the layer is unusable
			h.err = err
			return
		}
		h.res = res
	}()
	return h, nil
}

// result returns the diff ID of a reader that delivered the whole blob.
func (t *teeFetcher) result() (layerResult, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.res, t.ok
}

// incompleteError tells the hashing goroutine that the stream stopped short.
type incompleteError struct{}

func (incompleteError) Error() string      { return "stream closed before its end" }
func (incompleteError) IsIncomplete() bool { return true }

// hashingReader reads a blob and writes what it reads into a pipe whose
// other end computes the diff ID.
type hashingReader struct {
	rc    io.ReadCloser
	pw    *io.PipeWriter
	size  int64
	owner *teeFetcher
	done  chan struct{}

	n      int64 // bytes delivered
	eof    bool
	closed bool

	res layerResult // set by the goroutine before done closes
	err error
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.rc.Read(p)
	if n > 0 {
		if _, werr := h.pw.Write(p[:n]); werr != nil {
			return n, fmt.Errorf("diff ID: %w", werr)
		}
		h.n += int64(n)
	}
	if err == io.EOF {
		h.eof = true
	}
	return n, err
}

// Close closes the blob's reader and waits for the diff ID. A reader that
// delivered the whole blob hands the diff ID to its teeFetcher.
func (h *hashingReader) Close() error {
	if h.closed {
		return nil
	}
	h.closed = true
	err := h.rc.Close()
	whole := h.eof && h.n == h.size
	if whole {
		h.pw.Close()
	} else {
		h.pw.CloseWithError(incompleteError{})
	}
	<-h.done
	if whole && h.err == nil {
		h.owner.mu.Lock()
		h.owner.res, h.owner.ok = h.res, true
		h.owner.mu.Unlock()
	}
	return err
}
