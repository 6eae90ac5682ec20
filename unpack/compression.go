package unpack

import (
	"bufio"
	"bytes"
	_ "crypto/sha256" // digest algorithms a diffID may use
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/internal/chunks"
	"github.com/pullkit/pullkit/internal/inflate"
)

// Compression is the compression of a layer stream.
type Compression int

const (
	// Uncompressed is a plain tar stream.
	Uncompressed Compression = iota
	// Gzip is a gzip stream (RFC 1952), possibly of several members.
	Gzip
	// Zstd is a Zstandard stream (RFC 8878), possibly of several frames.
	Zstd
)

// String returns "uncompressed", "gzip" or "zstd".
func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Uncompressed:
		return "uncompressed"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// DetectHeaderSize is how many leading bytes [DetectCompression] needs to
// be sure of its answer.
const DetectHeaderSize = 262

// maxZstdWindow bounds the memory a zstd frame may ask for. 128 MiB is
// what the zstd command line accepts without --long=31.
const maxZstdWindow = 128 << 20

// DetectCompression reports the compression of a stream that starts with
// head, from magic bytes. A stream that carries the tar "ustar" magic at
// offset 257 is Uncompressed whatever its first bytes, so a tar whose
// first name happens to start like a magic number is not mistaken for a
// compressed stream; give it [DetectHeaderSize] bytes, or the whole stream
// when shorter. Anything unrecognized, an empty head included, is
// Uncompressed.
func DetectCompression(head []byte) Compression {
	switch {
	case hasTarMagic(head):
		return Uncompressed
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return Gzip
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	case len(head) >= 4 && head[0]&0xf0 == 0x50 && bytes.Equal(head[1:4], []byte{0x2a, 0x4d, 0x18}):
		// A zstd skippable frame (magic 0x184D2A5?, little-endian).
		return Zstd
	}
	return Uncompressed
}

// hasTarMagic reports whether head carries the POSIX or GNU tar magic.
func hasTarMagic(head []byte) bool {
	return len(head) >= DetectHeaderSize && bytes.Equal(head[257:262], []byte("ustar"))
}

// unsupportedCompression names a compression that layers do not use and
// that Apply does not read, or returns "".
func unsupportedCompression(head []byte) string {
	switch {
	case hasTarMagic(head):
		return ""
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return "xz"
	case bytes.HasPrefix(head, []byte("BZh")) && len(head) >= 4 && head[3] >= '1' && head[3] <= '9':
		return "bzip2"
	}
	return ""
}

// Chunks of uncompressed stream in flight between the goroutines that
// decompress, hash and apply it.
const (
	streamChunkSize = 256 << 10
	streamChunks    = 6
)

// layerStream is the uncompressed layer: it decompresses the source,
// hashes and counts what it hands out, and enforces the size and ratio
// limits. Decompressing (with the counting and checks) and hashing run in
// two goroutines of their own, a few chunks ahead of the reader, so that
// they take other cores while the applier writes files: Go's gzip decoder
// is slower than SHA-256, an external one faster.
type layerStream struct {
	// Owned by the producing goroutine once it starts.
	src      *compressedCounter
	dec      io.Reader
	closeDec func() // releases the decoder; runs once the producer has stopped
	n        int64  // uncompressed bytes produced
	maxSize  int64  // 0: no limit
	maxRatio int64  // 0: no limit; always 0 for uncompressed streams

	pipe     *chunks.Pipe    // decoder, then hasher, then the reader
	digester digest.Digester // owned by the hasher, then by the reader at the end

	// direct, when not nil, is a stream read in place, with no goroutines:
	// an uncompressed layer already verified, which can seek (see Seek).
	direct io.ReadSeeker

	err error // the first error Read returned, io.EOF included
}

// compressedCounter counts the compressed bytes read and remembers the first
// error of the caller's reader, so that it is not mistaken for a format
// error. The count may be read while another goroutine reads; err only once
// that goroutine is done.
type compressedCounter struct {
	r   io.Reader
	n   atomic.Int64
	err error
}

func (c *compressedCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// newLayerStream detects the compression of r, reading its first bytes in
// the calling goroutine, and starts decompressing it in another. gzipCmd,
// when not empty, is the external command that decompresses gzip.
func newLayerStream(r io.Reader, alg digest.Algorithm, maxSize, maxRatio int64, gzipCmd string) (*layerStream, error) {
	s := &layerStream{
		src:      &compressedCounter{r: r},
		maxSize:  maxSize,
		closeDec: func() {},
	}
	if alg != "" {
		s.digester = alg.Digester()
	}
	br := bufio.NewReaderSize(s.src, 64<<10)
	head, err := br.Peek(DetectHeaderSize)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read layer: %w", err)
	}
	if name := unsupportedCompression(head); name != "" {
		return nil, fmt.Errorf("read layer: %s compression: %w", name, errdefs.ErrNotImplemented)
	}
	switch DetectCompression(head) {
	case Gzip:
		if gzipCmd != "" {
			cr, err := startDecompressCmd(gzipCmd, br, s.src)
			if err != nil {
				return nil, fmt.Errorf("read layer: gzip: %w", err)
			}
			s.dec, s.closeDec, s.maxRatio = cr, cr.close, maxRatio
			break
		}
		zr, err := inflate.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read layer: gzip: %w", s.classify(err))
		}
		s.dec, s.closeDec, s.maxRatio = zr, func() { zr.Close() }, maxRatio
	case Zstd:
		// Decoded synchronously, in the stream's producing goroutine.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("read layer: zstd: %w", s.classify(err))
		}
		s.dec, s.closeDec, s.maxRatio = zr, zr.Close, maxRatio
	default:
		s.dec = br
	}
	s.pipe = chunks.New(streamChunks, streamChunkSize)
	s.pipe.Source(s.produce)
	if s.digester != nil {
		s.pipe.Then(func(b []byte) { s.digester.Hash().Write(b) })
	}
	return s, nil
}

// newVerifiedStream returns the stream of an uncompressed layer whose
// DiffID and limits were checked when f was written (a layer decompressed
// ahead): it reads f in place, hashes nothing, and can seek, so that the
// tar reader skips the content of files it does not read.
func newVerifiedStream(f io.ReadSeeker) *layerStream {
	return &layerStream{direct: f, closeDec: func() {}}
}

// produce fills buf with the decompressed stream, counting it and checking
// the limits: the fill of the pipe's source.
func (s *layerStream) produce(buf []byte) (int, error) {
	n, err := s.fill(buf)
	if n > 0 {
		s.n += int64(n)
		if lerr := s.checkLimits(); lerr != nil {
			// Hand out what the limit allows, then the error, as a
			// reader without read-ahead would.
			before := s.n - int64(n)
			n, err = int(min(max(lerr.Limit-before, 0), int64(n))), lerr
		}
	}
	return n, err
}

// fill reads the decoder until buf is full or the stream ends; decoders
// hand out small pieces, and fewer, larger chunks cost less to pass on.
func (s *layerStream) fill(buf []byte) (int, error) {
	n, empty := 0, 0
	for n < len(buf) {
		m, err := s.dec.Read(buf[n:])
		n += m
		switch {
		case err == io.EOF:
			return n, io.EOF
		case err != nil:
			var limit *content.LimitError
			if errors.As(err, &limit) {
				return n, err
			}
			return n, s.classify(err)
		case m == 0:
			if empty++; empty > 100 {
				return n, s.classify(io.ErrNoProgress)
			}
		}
	}
	return n, nil
}

// Read hands out uncompressed bytes, hashed and counted.
func (s *layerStream) Read(p []byte) (int, error) {
	if s.direct != nil {
		if s.err != nil {
			return 0, s.err
		}
		n, err := s.direct.Read(p)
		s.n += int64(n)
		if err != nil {
			s.err = err
		}
		return n, err
	}
	n, err := s.pipe.Read(p)
	if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}

// classify marks an error that did not come from the caller's reader as
// malformed input.
func (s *layerStream) classify(err error) error {
	if s.src.err != nil && errors.Is(err, s.src.err) {
		return err
	}
	return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
}

func (s *layerStream) checkLimits() *content.LimitError {
	if s.maxSize > 0 && s.n > s.maxSize {
		return &content.LimitError{What: "layer uncompressed size", Limit: s.maxSize, Got: s.n}
	}
	if in := s.src.n.Load(); s.maxRatio > 0 && in <= (math.MaxInt64-expansionAllowance)/s.maxRatio {
		if allowed := s.maxRatio*in + expansionAllowance; s.n > allowed {
			return &content.LimitError{
				What:  fmt.Sprintf("layer expanded from %d compressed bytes (ratio limit %d)", in, s.maxRatio),
				Limit: allowed,
				Got:   s.n,
			}
		}
	}
	return nil
}

// wrapErr wraps an error met while reading the tar stream: errors of the
// stream itself are already classified; anything else is a malformed tar.
func (s *layerStream) wrapErr(err error) error {
	if s.err != nil && s.err != io.EOF && errors.Is(err, s.err) {
		return fmt.Errorf("read layer: %w", err)
	}
	return fmt.Errorf("read layer: %w: %w", errdefs.ErrInvalidArgument, err)
}

// Seek moves a direct stream's position, counting the bytes skipped;
// archive/tar uses it to skip an entry's content. Only io.SeekCurrent is
// provided, and only by a direct stream: any other gets
// errors.ErrUnsupported, on which archive/tar reads instead.
func (s *layerStream) Seek(offset int64, whence int) (int64, error) {
	if s.direct == nil || whence != io.SeekCurrent || s.err != nil {
		return 0, errors.ErrUnsupported
	}
	pos, err := s.direct.Seek(offset, io.SeekCurrent)
	if err != nil {
		s.err = err
		return 0, err
	}
	s.n = pos
	return pos, nil
}

// drain reads the stream to its end, so that the digest covers it all.
func (s *layerStream) drain() error {
	if s.direct != nil {
		if _, err := io.Copy(io.Discard, s); err != nil {
			return s.wrapErr(err)
		}
		return nil
	}
	if err := s.pipe.Discard(); err != nil {
		if s.err == nil {
			s.err = err
		}
		return s.wrapErr(err)
	}
	return nil
}

// digest and size may be called once Read has returned io.EOF: the
// whole stream has then been counted and hashed.
func (s *layerStream) digest() digest.Digest { return s.digester.Digest() }

func (s *layerStream) size() int64 { return s.n }

// Close stops the producer, waits for it, and releases the decompressor;
// the caller's reader is not read once it returns.
func (s *layerStream) Close() {
	if s.pipe == nil {
		return
	}
	s.pipe.Stop()
	if cr, ok := s.dec.(*cmdReader); ok {
		cr.kill() // unblocks a producer waiting for the command's output
	}
	s.pipe.Wait()
	s.closeDec()
	s.pipe.Recycle()
}
