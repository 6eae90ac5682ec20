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

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
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

// layerStream is the uncompressed layer: it decompresses the source,
// hashes and counts what it hands out, and enforces the size and ratio
// limits.
type layerStream struct {
	src      compressedCounter
	dec      io.Reader
	closeDec func()
	digester digest.Digester
	n        int64 // uncompressed bytes handed out
	maxSize  int64 // 0: no limit
	maxRatio int64 // 0: no limit; always 0 for uncompressed streams
	err      error // the first error Read returned, other than io.EOF
}

// compressedCounter counts the compressed bytes read and remembers the first
// error of the caller's reader, so that it is not mistaken for a format
// error.
type compressedCounter struct {
	r   io.Reader
	n   int64
	err error
}

func (c *compressedCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

func newLayerStream(r io.Reader, alg digest.Algorithm, maxSize, maxRatio int64) (*layerStream, error) {
	s := &layerStream{
		src:      compressedCounter{r: r},
		digester: alg.Digester(),
		maxSize:  maxSize,
		closeDec: func() {},
	}
	br := bufio.NewReaderSize(&s.src, 64<<10)
	head, err := br.Peek(DetectHeaderSize)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read layer: %w", err)
	}
	if name := unsupportedCompression(head); name != "" {
		return nil, fmt.Errorf("read layer: %s compression: %w", name, errdefs.ErrNotImplemented)
	}
	switch DetectCompression(head) {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read layer: gzip: %w", s.classify(err))
		}
		s.dec, s.closeDec, s.maxRatio = zr, func() { zr.Close() }, maxRatio
	case Zstd:
		// One decoder, no goroutines: the source is read only by the
		// caller's goroutine, and decoding is not what bounds Apply.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("read layer: zstd: %w", s.classify(err))
		}
		s.dec, s.closeDec, s.maxRatio = zr, zr.Close, maxRatio
	default:
		s.dec = br
	}
	return s, nil
}

// Read hands out uncompressed bytes, hashing and counting them.
func (s *layerStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.dec.Read(p)
	if n > 0 {
		s.digester.Hash().Write(p[:n])
		s.n += int64(n)
		if lerr := s.checkLimits(); lerr != nil {
			s.err = lerr
			return 0, lerr
		}
	}
	if err != nil && err != io.EOF {
		s.err = s.classify(err)
		return n, s.err
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

func (s *layerStream) checkLimits() error {
	if s.maxSize > 0 && s.n > s.maxSize {
		return &content.LimitError{What: "layer uncompressed size", Limit: s.maxSize, Got: s.n}
	}
	if s.maxRatio > 0 && s.src.n <= (math.MaxInt64-expansionAllowance)/s.maxRatio {
		if allowed := s.maxRatio*s.src.n + expansionAllowance; s.n > allowed {
			return &content.LimitError{
				What:  fmt.Sprintf("layer expanded from %d compressed bytes (ratio limit %d)", s.src.n, s.maxRatio),
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
	if s.err != nil && errors.Is(err, s.err) {
		return fmt.Errorf("read layer: %w", err)
	}
	return fmt.Errorf("read layer: %w: %w", errdefs.ErrInvalidArgument, err)
}

// drain reads the stream to its end, so that the digest covers it all.
func (s *layerStream) drain(buf []byte) error {
	for {
		_, err := s.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return s.wrapErr(err)
		}
	}
}

func (s *layerStream) digest() digest.Digest { return s.digester.Digest() }

func (s *layerStream) size() int64 { return s.n }

// Close releases the decompressor.
func (s *layerStream) Close() { s.closeDec() }
