package fetch

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// chunker downloads a blob in chunks, up to parallelism at a time, each on
// its own goroutine with its own retries, and hands their bytes to the
// reader strictly in order. A chunk's bytes are readable while it fills, so
// the reader never waits for a whole chunk. Memory is bounded by the
// window: at most parallelism chunk buffers, taken from the Repository's
// pool and given back as soon as the reader is past them.
type chunker struct {
	r       *reader
	ctx     context.Context
	src     source
	next    int64    // first byte of the next chunk to launch
	window  []*chunk // launched chunks in blob order; window[0] is being read
	off     int      // read offset in window[0]
	wg      sync.WaitGroup
	ignored atomic.Bool // a chunk's request was answered with the whole blob
}

// chunk is bytes [start, end) of the blob, filled by one goroutine.
type chunk struct {
	start, end int64
	buf        *[]byte
	ready      chan struct{} // poked when filled or err change

	mu     sync.Mutex
	filled int
	err    error
}

// newChunker starts a chunked download whose first chunk is first, an
// opened segment.
func newChunker(r *reader, ctx context.Context, src source, first *segment) *chunker {
	c := &chunker{r: r, ctx: ctx, src: src, next: first.pos}
	first.inline = false
	c.launch(first)
	for len(c.window) < r.rp.cfg.parallelism && c.next < r.size {
		c.launch(nil)
	}
	return c
}

// launch starts the download of the next chunk, with seg when given.
func (c *chunker) launch(seg *segment) {
	if seg == nil {
		seg = c.r.newSegment(c.ctx, c.src, c.next, min(c.next+c.r.rp.cfg.chunkSize, c.r.size), true)
		seg.inline = false
	}
	c.next = seg.end
	ch := &chunk{start: seg.pos, end: seg.end, buf: c.r.rp.getBuf(), ready: make(chan struct{}, 1)}
	c.window = append(c.window, ch)
	c.wg.Add(1)
	go c.run(ch, seg)
}

// run fills ch from seg.
func (c *chunker) run(ch *chunk, seg *segment) {
	defer c.wg.Done()
	defer seg.close()
	buf := (*ch.buf)[:ch.end-ch.start]
	filled := 0
	for filled < len(buf) {
		n, err := seg.Read(buf[filled:])
		filled += n
		if err == io.EOF {
			err = nil
			if filled < len(buf) {
				err = io.ErrUnexpectedEOF
			}
		}
		ch.mu.Lock()
		ch.filled, ch.err = filled, err
		ch.mu.Unlock()
		poke(ch.ready)
		if err != nil {
			if errors.Is(err, errRangeIgnored) {
				c.ignored.Store(true)
				poke(c.r.evReady) // wake the reader, wherever it waits
			}
			return
		}
	}
}

// read copies the next bytes, in blob order, waiting for them if needed.
// It returns errRangeIgnored when the server turned out not to honour
// Range, and a chunk's failure when the reader reaches that chunk.
func (c *chunker) read(p []byte) (int, error) {
	for {
		if c.ignored.Load() {
			return 0, errRangeIgnored
		}
		if len(c.window) == 0 {
			return 0, io.EOF
		}
		ch := c.window[0]
		ch.mu.Lock()
		filled, err := ch.filled, ch.err
		ch.mu.Unlock()
		if c.off < filled {
			n := copy(p, (*ch.buf)[c.off:filled])
			c.off += n
			if int64(c.off) == ch.end-ch.start {
				c.r.rp.putBuf(ch.buf)
				ch.buf = nil
				c.window[0] = nil
				c.window = c.window[1:]
				c.off = 0
				if c.next < c.r.size {
					c.launch(nil)
				}
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		select {
		case <-ch.ready:
		case <-c.r.evReady:
			c.r.flush()
		case <-c.ctx.Done():
			return 0, c.ctx.Err()
		}
	}
}

// release waits for the chunk goroutines, which must have been told to
// stop by canceling c.ctx, and gives their buffers back.
func (c *chunker) release() {
	c.wg.Wait()
	for _, ch := range c.window {
		if ch.buf != nil {
			c.r.rp.putBuf(ch.buf)
			ch.buf = nil
		}
	}
	c.window = nil
}

// poke signals ch without blocking.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
