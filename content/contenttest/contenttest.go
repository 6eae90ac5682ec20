package contenttest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

// Run tests a content.Store against the contracts documented in package
// content. Every subtest calls newStore for a store of its own, which must
// be empty; newStore may register cleanups with t.Cleanup and should fail t
// rather than return nil. Subtests are named after the contract they check,
// so a failure reads like "Run/Verify/size_too_small_commits_nothing".
//
// Run uses only the content.Store interface and the helpers of package
// content (Copy, OpenWriter, WriteBlob, ReadBlob). It keeps blobs small,
// except for one streamed blob of a few MiB, and never depends on timing.
func Run(t *testing.T, newStore func(t *testing.T) content.Store) {
	t.Helper()
	for _, g := range storeGroups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					s := newStore(t)
					if s == nil {
						t.Fatal("newStore returned nil")
					}
					c.fn(t, s)
				})
			}
		})
	}
}

// RunImages tests a content.Images against the contracts documented in
// package content. Every subtest calls newImages for a name store of its
// own, which must be empty; newImages may register cleanups with t.Cleanup.
func RunImages(t *testing.T, newImages func(t *testing.T) content.Images) {
	t.Helper()
	for _, g := range imageGroups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					is := newImages(t)
					if is == nil {
						t.Fatal("newImages returned nil")
					}
					c.fn(t, is)
				})
			}
		})
	}
}

type storeCase struct {
	name string
	fn   func(t *testing.T, s content.Store)
}

type imageCase struct {
	name string
	fn   func(t *testing.T, is content.Images)
}

// newBlob returns s as bytes and the descriptor of those bytes.
func newBlob(s string) ([]byte, ocispec.Descriptor) {
	b := []byte(s)
	return b, ocispec.Descriptor{
		MediaType: "application/octet-stream",
		Digest:    digest.FromBytes(b),
		Size:      int64(len(b)),
	}
}

// openWriter opens a writer or fails t. The writer is closed when the test
// ends; a store may report an error for closing a committed writer, and that
// error is ignored.
func openWriter(t *testing.T, s content.Ingester, opts ...content.WriterOpt) content.Writer {
	t.Helper()
	w, err := s.Writer(t.Context(), opts...)
	if err != nil {
		t.Fatalf("Writer() error = %v", err)
	}
	if w == nil {
		t.Fatal("Writer() returned a nil Writer and no error")
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// write writes b to w or fails t.
func write(t *testing.T, w content.Writer, b []byte) {
	t.Helper()
	n, err := w.Write(b)
	if err != nil || n != len(b) {
		t.Fatalf("Write(%d bytes) = %d, %v; want %d, nil", len(b), n, err, len(b))
	}
}

// commitBlob writes data through a writer of its own and commits it with
// its size and digest.
func commitBlob(t *testing.T, s content.Store, data string, opts ...content.CommitOpt) ocispec.Descriptor {
	t.Helper()
	b, desc := newBlob(data)
	w := openWriter(t, s, content.WithRef("commit-"+desc.Digest.Encoded()), content.WithDescriptor(desc))
	write(t, w, b)
	if err := w.Commit(t.Context(), desc.Size, desc.Digest, opts...); err != nil {
		t.Fatalf("Commit(%d, %s) error = %v", desc.Size, desc.Digest, err)
	}
	return desc
}

// checkBlob fails t unless the store holds desc with exactly the bytes want,
// seen through Info, ReaderAt and content.ReadBlob.
func checkBlob(t *testing.T, s content.Store, desc ocispec.Descriptor, want []byte) {
	t.Helper()
	ctx := t.Context()
	info, err := s.Info(ctx, desc.Digest)
	if err != nil {
		t.Fatalf("Info(%s) error = %v", desc.Digest, err)
	}
	if info.Digest != desc.Digest || info.Size != int64(len(want)) {
		t.Errorf("Info(%s) = digest %s, size %d; want %s, %d", desc.Digest, info.Digest, info.Size, desc.Digest, len(want))
	}
	if info.CreatedAt.IsZero() {
		t.Errorf("Info(%s).CreatedAt is zero", desc.Digest)
	}
	ra, err := s.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatalf("ReaderAt(%s) error = %v", desc.Digest, err)
	}
	if got := ra.Size(); got != int64(len(want)) {
		t.Errorf("ReaderAt(%s).Size() = %d, want %d", desc.Digest, got, len(want))
	}
	if err := ra.Close(); err != nil {
		t.Errorf("ReaderAt(%s).Close() error = %v", desc.Digest, err)
	}
	got, err := content.ReadBlob(ctx, s, desc, int64(len(want))+1)
	if err != nil {
		t.Fatalf("ReadBlob(%s) error = %v", desc.Digest, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("ReadBlob(%s) = %q, want %q", desc.Digest, clip(got), clip(want))
	}
}

// checkAbsent fails t unless dgst is unknown to Info and ReaderAt.
func checkAbsent(t *testing.T, s content.Store, dgst digest.Digest) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.Info(ctx, dgst); !errdefs.IsNotFound(err) {
		t.Errorf("Info(%s) error = %v, want NotFound", dgst, err)
	}
	ra, err := s.ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
	if err == nil {
		ra.Close()
	}
	if !errdefs.IsNotFound(err) {
		t.Errorf("ReaderAt(%s) error = %v, want NotFound", dgst, err)
	}
}

// walkDigests returns the digests Walk visits, sorted.
func walkDigests(t *testing.T, s content.Store, filters ...content.Filter) []digest.Digest {
	t.Helper()
	var got []digest.Digest
	err := s.Walk(t.Context(), func(info content.Info) error {
		got = append(got, info.Digest)
		return nil
	}, filters...)
	if err != nil {
		t.Fatalf("Walk() error = %v", err)
	}
	slices.Sort(got)
	return got
}

// sortedDigests returns the descriptors' digests, sorted.
func sortedDigests(descs ...ocispec.Descriptor) []digest.Digest {
	out := make([]digest.Digest, 0, len(descs))
	for _, d := range descs {
		out = append(out, d.Digest)
	}
	slices.Sort(out)
	return out
}

// checkLabels fails t unless the blob's labels are want (nil and empty are the same).
func checkLabels(t *testing.T, s content.Store, dgst digest.Digest, want map[string]string) content.Info {
	t.Helper()
	info, err := s.Info(t.Context(), dgst)
	if err != nil {
		t.Fatalf("Info(%s) error = %v", dgst, err)
	}
	if !maps.Equal(info.Labels, want) {
		t.Errorf("Info(%s).Labels = %v, want %v", dgst, info.Labels, want)
	}
	return info
}

// clip shortens b for error messages.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// probeIngester passes Writer calls through and closes blocked the first
// time one fails with Unavailable, so a test knows that a waiting
// content.OpenWriter has met the held ref.
type probeIngester struct {
	content.Ingester
	once    sync.Once
	blocked chan struct{}
}

func newProbe(in content.Ingester) *probeIngester {
	return &probeIngester{Ingester: in, blocked: make(chan struct{})}
}

func (p *probeIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	w, err := p.Ingester.Writer(ctx, opts...)
	if errdefs.IsUnavailable(err) {
		p.once.Do(func() { close(p.blocked) })
	}
	return w, err
}

// writerResult is what a goroutine's OpenWriter returned.
type writerResult struct {
	w   content.Writer
	err error
}

// waitBlocked returns once the OpenWriter running in a goroutine has met a
// held ref, and fails t if that OpenWriter returned instead, then or since.
func waitBlocked(t *testing.T, probe *probeIngester, res <-chan writerResult) {
	t.Helper()
	select {
	case <-probe.blocked:
	case r := <-res:
		if r.w != nil {
			r.w.Close()
		}
		t.Fatalf("OpenWriter() = %v without meeting the held ref, want it to wait", r.err)
	}
	select {
	case r := <-res:
		if r.w != nil {
			r.w.Close()
		}
		t.Fatalf("OpenWriter() = %v while the ref was held, want it to wait", r.err)
	default:
	}
}

// seekOnly is a reader whose only way to skip is Seek; it records the offsets sought.
type seekOnly struct {
	r     *bytes.Reader
	seeks []int64
}

func (s *seekOnly) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s *seekOnly) Seek(offset int64, whence int) (int64, error) {
	s.seeks = append(s.seeks, offset)
	return s.r.Seek(offset, whence)
}

// readAtOnly serves ReadAt; its Read fails, so a copy that resumes by
// reading from the start is caught.
type readAtOnly struct{ r *bytes.Reader }

var errReadCalled = errors.New("contenttest: Copy called Read on a reader it should have skipped with ReadAt")

func (r readAtOnly) Read([]byte) (int, error)                { return 0, errReadCalled }
func (r readAtOnly) ReadAt(p []byte, off int64) (int, error) { return r.r.ReadAt(p, off) }

// countingReader is a plain reader that counts the bytes it returns.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// chunkReader returns at most size bytes per Read and calls after once the
// first Read has returned.
type chunkReader struct {
	r     io.Reader
	size  int
	after func()
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.size {
		p = p[:c.size]
	}
	n, err := c.r.Read(p)
	if c.after != nil {
		c.after()
		c.after = nil
	}
	return n, err
}
