package importer

import (
	"io"
)

// Read-ahead of the archive: readAheadChunks chunks of readAheadSize bytes.
const (
	readAheadSize   = 1 << 20
	readAheadChunks = 4
)

// readAhead reads a source on a goroutine of its own, up to
// readAheadChunks chunks ahead of its caller, so that the system calls
// that read a pipe or a socket run on another core than the hashing and
// writing of what was read before. Chunks are filled whole, so that the
// store gets large writes even from a pipe, which hands out 64 KiB at a
// time.
//
// The goroutine stops at the source's end or first error, or after the
// read under way when stop is called; stop does not wait for it, so that
// an import that fails does not hang on a source that has nothing more to
// say. It may read up to readAheadChunks chunks beyond what the caller
// consumed.
type readAhead struct {
	full chan aheadChunk
	free chan []byte
	quit chan struct{}

	// Owned by the caller.
	cur  []byte // what is left of the chunk being read
	held []byte // that chunk's buffer, returned to free once read
	err  error  // the source's error (io.EOF at its end), once reached
}

type aheadChunk struct {
	b   []byte
	err error
}

func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{
		full: make(chan aheadChunk, readAheadChunks),
		free: make(chan []byte, readAheadChunks),
		quit: make(chan struct{}),
	}
	for range readAheadChunks - 1 {
		ra.free <- make([]byte, readAheadSize)
	}
	go ra.run(r, make([]byte, readAheadSize))
	return ra
}

func (ra *readAhead) run(r io.Reader, buf []byte) {
	for {
		n, err := io.ReadFull(r, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case ra.full <- aheadChunk{b: buf[:n], err: err}:
		case <-ra.quit:
			return
		}
		if err != nil {
			return
		}
		select {
		case buf = <-ra.free:
		case <-ra.quit:
			return
		}
	}
}

// Read hands out what the goroutine read, in order, then its error.
func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.held != nil {
			ra.free <- ra.held
			ra.held = nil
		}
		c := <-ra.full
		ra.cur, ra.err = c.b, c.err
		if c.err == nil {
			ra.held = c.b[:cap(c.b)]
		}
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// stop ends the goroutine after the read under way.
func (ra *readAhead) stop() { close(ra.quit) }
