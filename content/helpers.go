package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultReadLimit is the largest blob [ReadBlob] reads when given no limit:
// 4 MiB, the cap the distribution spec suggests for manifests.
const DefaultReadLimit = 4 << 20

// copyBufferSize is the size of the buffers Copy reuses. Large buffers keep
// per-call overhead (syscalls, hash block setup) small on multi-gigabyte blobs.
const copyBufferSize = 1 << 20

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// Copy writes r into w and commits it as expected, resuming where w's ingest
// left off: when w.Status().Offset is not zero, Copy skips that many bytes of
// r by seeking (if r is an io.Seeker), by reading at an offset (if r is an
// io.ReaderAt), or by reading and discarding them.
//
// r must start at the blob's first byte. size is the blob's length, or 0
// when unknown; expected is its digest, or empty when unknown. Copy reads at
// most one byte past size, so an over-long r fails verification without
// being read to its end (a ReaderAt resumed at an offset is read only up to
// size; what is committed is verified either way).
//
// In a context from [WithTee], Copy also gives the tee every byte it writes,
// when it writes the blob from its first byte.
//
// A commit that finds the blob already present is a success: the store has
// verified content. Any other failure leaves the ingest in place, so a later
// Copy with a writer for the same ref resumes it; on [ErrDigestMismatch] the
// caller should Abort the ref instead.
func Copy(ctx context.Context, w Writer, r io.Reader, size int64, expected digest.Digest, opts ...CommitOpt) error {
	st, err := w.Status()
	if err != nil {
		return fmt.Errorf("copy %s: status: %w", expected, err)
	}
	offset := st.Offset
	if size > 0 && offset > size {
		// The ingest holds more than the blob can have: start again.
		if err := w.Truncate(0); err != nil {
			return fmt.Errorf("copy %s: truncate: %w", expected, err)
		}
		offset = 0
	}
	if offset > 0 {
		if r, err = skip(r, offset, size); err != nil {
			return fmt.Errorf("copy %s: resume at %d (ref %q): %w", expected, offset, st.Ref, err)
		}
	}
	if size > 0 {
		r = io.LimitReader(r, plusOne(size-offset))
	}
	var dst io.Writer = writerOnly{w}
	if tee, ok := ctx.Value(teeKey{}).(io.Writer); ok && offset == 0 {
		dst = &teeWriter{w: w, tee: tee}
	}
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	if _, err := io.CopyBuffer(dst, &ctxReader{ctx: ctx, r: r}, *bp); err != nil {
		return fmt.Errorf("copy %s (ref %q): %w", expected, st.Ref, err)
	}
	if err := w.Commit(ctx, size, expected, opts...); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("copy %s: commit ref %q: %w", expected, st.Ref, err)
	}
	return nil
}

// skip returns r advanced by offset bytes.
func skip(r io.Reader, offset, size int64) (io.Reader, error) {
	if s, ok := r.(io.Seeker); ok {
		if _, err := s.Seek(offset, io.SeekStart); err == nil {
			return r, nil
		}
	}
	if ra, ok := r.(io.ReaderAt); ok && size > 0 {
		return io.NewSectionReader(ra, offset, size-offset), nil
	}
	n, err := io.CopyN(io.Discard, r, offset)
	if err == io.EOF {
		return nil, fmt.Errorf("source ended after %d bytes: %w", n, io.ErrUnexpectedEOF)
	}
	return r, err
}

// writerOnly hides a Writer's other methods, so io.CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }

// ctxReader stops reading once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// OpenWriter opens a writer like [Ingester.Writer], but while another writer
// holds the same ref it waits, backing off from 10 ms to 1 s, until the ref
// is free or ctx is done. Once the other writer commits, OpenWriter returns
// the errdefs.ErrAlreadyExists error the store gives for a known descriptor.
func OpenWriter(ctx context.Context, cs Ingester, opts ...WriterOpt) (Writer, error) {
	wait := 10 * time.Millisecond
	for {
		w, err := cs.Writer(ctx, opts...)
		if err == nil || !errdefs.IsUnavailable(err) {
			return w, err
		}
		// Jitter spreads out writers that woke together.
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("open writer: %w (while waiting: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// WriteBlob writes the blob desc from r into cs under ref and commits it,
// verified against desc.Size and desc.Digest. An ingest left under ref by an
// earlier attempt is resumed. A blob already in the store is not written
// again, and that is not an error; the labels opts carry are then added to
// it when cs is also a [Manager].
func WriteBlob(ctx context.Context, cs Ingester, ref string, r io.Reader, desc ocispec.Descriptor, opts ...CommitOpt) error {
	w, err := OpenWriter(ctx, cs, WithRef(ref), WithDescriptor(desc))
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return addLabels(ctx, cs, desc, opts)
		}
		return fmt.Errorf("write %s: %w", desc.Digest, err)
	}
	defer w.Close()
	return Copy(ctx, w, r, desc.Size, desc.Digest, opts...)
}

// addLabels gives an existing blob the labels a commit would have added.
func addLabels(ctx context.Context, cs Ingester, desc ocispec.Descriptor, opts []CommitOpt) error {
	m, ok := cs.(Manager)
	if !ok || len(opts) == 0 {
		return nil
	}
	info, err := ApplyCommitOpts(Info{Digest: desc.Digest}, opts...)
	if err != nil || len(info.Labels) == 0 {
		return err
	}
	paths := make([]string, 0, len(info.Labels))
	for k := range info.Labels {
		paths = append(paths, "labels."+k)
	}
	if _, err := m.Update(ctx, info, paths...); err != nil {
		return fmt.Errorf("write %s: label existing blob: %w", desc.Digest, err)
	}
	return nil
}

// ReadBlob reads the whole blob desc from p and verifies its size and
// digest. It refuses, before reading, a descriptor larger than limit bytes
// with a [*LimitError]; limit <= 0 means [DefaultReadLimit]. Use it for
// manifests, indexes and configs, never for layers.
func ReadBlob(ctx context.Context, p Provider, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	if desc.Size > limit {
		return nil, fmt.Errorf("read %s: %w", desc.Digest, &LimitError{What: "blob size", Limit: limit, Got: desc.Size})
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	b, err := ReadAll(NewReader(ra), desc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	return b, nil
}

// ReadAll reads r to its end and verifies what it read against desc: the
// size must be desc.Size and the digest desc.Digest, or it returns a
// [*MismatchError]. It reads at most desc.Size+1 bytes; callers bound
// desc.Size before calling. An invalid digest or a negative size is an error
// that matches errdefs.ErrInvalidArgument.
func ReadAll(r io.Reader, desc ocispec.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, invalidf("verify %q: %v", desc.Digest, err)
	}
	if desc.Size < 0 {
		return nil, invalidf("verify %s: negative size %d", desc.Digest, desc.Size)
	}
	v := desc.Digest.Verifier()
	b := make([]byte, 0, min(plusOne(desc.Size), 64<<10))
	lr := io.LimitReader(r, plusOne(desc.Size))
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(b)) != desc.Size {
		return nil, &MismatchError{Expected: desc.Digest, ExpectedSize: desc.Size, ActualSize: int64(len(b))}
	}
	v.Write(b)
	if !v.Verified() {
		return nil, &MismatchError{Expected: desc.Digest, Actual: desc.Digest.Algorithm().FromBytes(b), ExpectedSize: desc.Size, ActualSize: desc.Size}
	}
	return b, nil
}

// plusOne returns n+1, or n when that would overflow.
func plusOne(n int64) int64 {
	if n == math.MaxInt64 {
		return n
	}
	return n + 1
}

// NewReader returns a reader over the whole of ra, from its first byte.
func NewReader(ra ReaderAt) io.Reader {
	return io.NewSectionReader(ra, 0, ra.Size())
}
