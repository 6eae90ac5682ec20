package importer

import (
	"io"

	"github.com/pullkit/pullkit/internal/chunks"
)

// Read-ahead of the archive: readAheadChunks chunks of readAheadSize bytes.
const (
	readAheadSize   = 1 << 20
	readAheadChunks = 4
)

// newReadAhead reads r on a goroutine of its own, up to readAheadChunks
// chunks ahead of the pipe's reader, so that the system calls that read a
// pipe or a socket run on another core than the hashing and writing of
// what was read before. Chunks are filled whole, so that the store gets
// large writes even from a pipe, which hands out 64 KiB at a time.
//
// The goroutine stops at the source's end or first error, or after the
// read under way once the pipe is stopped. The caller stops it and does
// not wait for it, so that an import that fails does not hang on a source
// that has nothing more to say; it may read up to readAheadChunks chunks
// beyond what the caller consumed.
func newReadAhead(r io.Reader) *chunks.Pipe {
	p := chunks.New(readAheadChunks, readAheadSize)
	p.Source(func(buf []byte) (int, error) {
		n, err := io.ReadFull(r, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return n, err
	})
	return p
}
