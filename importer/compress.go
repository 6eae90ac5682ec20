package importer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/internal/chunks"
	"github.com/pullkit/pullkit/internal/inflate"
)

// compression is what a stream's first bytes say it is.
type compression int

const (
	plain compression = iota
	gzipped
	zstded
	xzed
	bzipped
)

func (c compression) String() string {
	switch c {
	case gzipped:
		return "gzip"
	case zstded:
		return "zstd"
	case xzed:
		return "xz"
	case bzipped:
		return "bzip2"
	}
	return "plain"
}

// detectSize is how many leading bytes detect needs to be sure: a tar
// header carries its "ustar" magic at offset 257.
const detectSize = 262

// detect reports the compression of a stream that starts with head, from
// magic numbers. A head that carries the tar magic is plain whatever its
// first bytes (a tar whose first file name starts with 0x1f 0x8b is still
// a tar). Anything not recognized is plain.
func detect(head []byte) compression {
	switch {
	case len(head) >= detectSize && bytes.Equal(head[257:262], []byte("ustar")):
		return plain
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b, 0x08}):
		return gzipped
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return zstded
	case len(head) >= 4 && head[0]&0xf0 == 0x50 && bytes.Equal(head[1:4], []byte{0x2a, 0x4d, 0x18}):
		// A zstd skippable frame, which may lead a zstd stream.
		return zstded
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return xzed
	case bytes.HasPrefix(head, []byte("BZh")):
		return bzipped
	}
	return plain
}

// maxZstdWindow bounds the memory a zstd frame may make a decoder take.
// 128 MiB is what the zstd command line accepts without --long=31; a layer
// that needs more is imported without its diffID checked.
const maxZstdWindow = 128 << 20

// zstdOptions keep a decoder to one goroutine and little memory.
var zstdOptions = []zstd.DOption{
	zstd.WithDecoderConcurrency(1),
	zstd.WithDecoderLowmem(true),
	zstd.WithDecoderMaxWindow(maxZstdWindow),
}

// decompress returns a reader of r's decompressed bytes and a function
// that releases it.
func decompress(c compression, r io.Reader) (io.Reader, func(), error) {
	switch c {
	case gzipped:
		zr, err := inflate.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case zstded:
		zr, err := zstd.NewReader(r, zstdOptions...)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	case plain:
		return r, func() {}, nil
	}
	return nil, nil, fmt.Errorf("%s-compressed streams: %w", c, ErrUnsupported)
}

// Limits on computing a compressed layer's diffID while it streams. Past
// either, the layer is imported without its diffID checked; whoever
// unpacks it checks it then.
const (
	// maxRatio bounds decompressed bytes per compressed byte, so that a
	// small archive cannot make the import hash terabytes.
	maxRatio = 1024
	// minDecompressed is what any layer may decompress to, whatever its ratio.
	minDecompressed = 64 << 20
)

// diffResult is what hashing a layer's decompressed bytes gave.
type diffResult struct {
	// diffID is the digest of the decompressed bytes, or empty when unknown.
	diffID digest.Digest
	// err says why the stream did not decompress; the layer is corrupt.
	err error
}

// diffHasher decompresses a stream fed to it by Write, in a goroutine of
// its own so that decompression overlaps the store's writes, and hashes
// what comes out. Write copies into the pipe and returns as soon as the
// copy is queued, so the importer waits only when the hasher is chunkCount
// chunks behind.
type diffHasher struct {
	pipe *chunks.Pipe
	done chan diffResult
}

// newDiffHasher starts hashing the decompressed form of a c-compressed
// stream of size bytes.
func newDiffHasher(c compression, size int64) *diffHasher {
	limit := int64(math.MaxInt64 - 1)
	if size <= math.MaxInt64/maxRatio {
		limit = max(minDecompressed, size*maxRatio)
	}
	d := &diffHasher{pipe: chunks.New(chunkCount, chunkSize), done: make(chan diffResult, 1)}
	go func() {
		defer d.pipe.Stop() // the writer's later writes are dropped
		d.done <- hashDecompressed(c, d.pipe, limit)
	}()
	return d
}

func hashDecompressed(c compression, r io.Reader, limit int64) diffResult {
	zr, release, err := decompress(c, r)
	if err != nil {
		return diffResult{err: err}
	}
	defer release()
	dg := digest.Canonical.Digester()
	n, err := io.Copy(dg.Hash(), io.LimitReader(zr, limit+1))
	switch {
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return diffResult{}
	case err != nil:
		return diffResult{err: err}
	case n > limit:
		return diffResult{}
	}
	return diffResult{diffID: dg.Digest()}
}

// Write feeds compressed bytes. Once the hasher has stopped reading (the
// stream ended or broke), writes are dropped.
func (d *diffHasher) Write(p []byte) (int, error) {
	d.pipe.Write(p)
	return len(p), nil
}

// finish ends the input and returns what the hasher found.
func (d *diffHasher) finish() diffResult {
	d.pipe.CloseWrite()
	res := <-d.done
	d.pipe.Recycle()
	return res
}

// Sizes of the buffers that carry a layer's bytes to its diffHasher: four
// of 256 KiB let the writer run ahead of the decompressor by up to 1 MiB.
const (
	chunkSize  = 256 << 10
	chunkCount = 4
)
