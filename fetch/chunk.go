package fetch

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// chunkBufs is a Repository's budget of chunk buffers, shared by all its
// downloads: at most max buffers of size bytes are handed out at once.
// Buffers given back are kept for reuse while some are still out, and
// dropped, for the garbage collector, once none is.
type chunkBufs struct {
	size int64
	max  int

	mu   sync.Mutex
	out  int       // buffers handed out
	free []*[]byte // buffers given back, for reuse
	peak int       // the most buffers out at once
}

func newChunkBufs(size int64, max int) *chunkBufs {
	return &chunkBufs{size: size, max: max}
}

// get returns a buffer, or nil when the budget is spent. It never waits.
func (b *chunkBufs) get() *[]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.out >= b.max {
		return nil
	}
	b.out++
	b.peak = max(b.peak, b.out)
	if n := len(b.free); n > 0 {
		p := b.free[n-1]
		b.free[n-1] = nil
		b.free = b.free[:n-1]
		return p
	}
	p := make([]byte, b.size)
	return &p
}

// put gives back a buffer from get.
func (b *chunkBufs) put(p *[]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.out--
	if b.out == 0 {
		b.free = nil
		return
	}
	b.free = append(b.free, p)
}

// usage returns the buffers handed out now and the most handed out at once.
func (b *chunkBufs) usage() (out, peak int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out, b.peak
}

// chunker runs a split download (see [WithParallel]). From the reader's
// position, the blob is a queue of parts: first, possibly, the inline
// segment r.seg, which the reader reads from its connection straight into
// the caller's buffer; then buffered chunks (window), each filled by its
// own goroutine with its own retries, which the reader copies out in
// order, while they fill. Bytes from next on are not given to a part yet.
//
// When the reader has caught up with the chunk at the front of the queue,
// it takes the chunk's connection over, and gives its buffer back: a
// download with parallelism connections holds parallelism-1 buffers.
//
// A buffered chunk takes a buffer from the Repository's budget; when the
// budget is spent, the download goes on with the parts it has, and reads
// the rest as one inline stream, which is cut into chunks again once
// buffers come back. So memory stays within the budget however many
// blobs are in flight, and no download ever waits for a buffer.
type chunker struct {
	r       *reader
	ctx     context.Context
	src     source
	next    int64    // the first byte not given to a part
	window  []*chunk // buffered chunks in blob order, after r.seg
	off     int      // read offset in window[0], once r.seg is done
	wg      sync.WaitGroup
	ignored atomic.Bool // a chunk's request was answered with the whole blob
}

// chunk is bytes [start, end) of the blob, filled by one goroutine until
// it is done, fails, or hands its segment over to the reader.
type chunk struct {
	start, end int64
	buf        *[]byte
	ready      chan struct{} // poked when filled, err or seg change

	mu     sync.Mutex
	filled int
	err    error
	adopt  bool     // the reader asks for the segment
	seg    *segment // the segment, once handed over
}

// newChunker starts splitting r's download from source src, on ctx; the
// bytes up to next are given to r.seg already.
func newChunker(r *reader, ctx context.Context, src source, next int64) *chunker {
	return &chunker{r: r, ctx: ctx, src: src, next: next}
}

// fill launches buffered chunks while the download has fewer than
// parallelism-1 of them (the reader's own stream is the last connection)
// and the budget gives buffers. When every byte is given out already and
// the last part is an inline stream to the end, that stream is cut one
// chunk after where it stands, and the rest given to chunks.
func (c *chunker) fill() {
	r, cfg := c.r, &c.r.rp.cfg
	for {
		if len(c.window) >= cfg.parallelism-1 {
			return
		}
		start, cut := c.next, false
		if start >= r.size {
			s := r.seg
			if s == nil || len(c.window) > 0 || s.end-s.pos <= cfg.chunkSize {
				return
			}
			start, cut = s.pos+cfg.chunkSize, true
		}
		buf := r.rp.bufs.get()
		if buf == nil {
			return
		}
		if cut {
			r.seg.end = start
		}
		c.launch(buf, start, min(start+cfg.chunkSize, r.size))
	}
}

// launch starts filling buf with bytes [start, end) of the blob.
func (c *chunker) launch(buf *[]byte, start, end int64) {
	seg := c.r.newSegment(c.ctx, c.src, start, end, true)
	seg.inline = false
	ch := &chunk{start: start, end: end, buf: buf, ready: make(chan struct{}, 1)}
	c.window = append(c.window, ch)
	c.next = end
	c.wg.Add(1)
	go c.run(ch, seg)
}

// run fills ch from seg, until the reader asks for seg.
func (c *chunker) run(ch *chunk, seg *segment) {
	defer c.wg.Done()
	buf := (*ch.buf)[:ch.end-ch.start]
	filled := 0
	for filled < len(buf) {
		ch.mu.Lock()
		if ch.adopt {
			ch.seg = seg // not closed: the reader reads on from it
			ch.mu.Unlock()
			poke(ch.ready)
			return
		}
		ch.mu.Unlock()
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
			seg.close()
			if errors.Is(err, errRangeIgnored) {
				c.ignored.Store(true)
				poke(c.r.evReady) // wake the reader, wherever it waits
			}
			return
		}
	}
	seg.close()
}

// read copies the next bytes, in blob order, waiting for them if needed.
// It returns errRangeIgnored when the server turned out not to honour
// Range, and a part's failure when the reader reaches that part.
func (c *chunker) read(p []byte) (int, error) {
	r := c.r
	for {
		if c.ignored.Load() {
			return 0, errRangeIgnored
		}
		c.fill()
		if s := r.seg; s != nil {
			n, err := s.Read(p)
			if s.pos >= s.end {
				r.seg = nil // finished: its connection is closed or reused
				if err == io.EOF {
					err = nil
				}
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		if len(c.window) == 0 {
			if r.pos >= r.size {
				return 0, io.EOF
			}
			// The budget was spent when these bytes were given out: read
			// them as one stream, which fill cuts when buffers come back.
			r.seg = r.newSegment(c.ctx, c.src, r.pos, r.size, false)
			c.next = r.size
			continue
		}
		ch := c.window[0]
		ch.mu.Lock()
		filled, err, seg := ch.filled, ch.err, ch.seg
		if c.off >= filled && err == nil && seg == nil {
			ch.adopt = true // caught up: take the connection over
		}
		ch.mu.Unlock()
		if c.off < filled {
			n := copy(p, (*ch.buf)[c.off:filled])
			c.off += n
			if int64(c.off) == ch.end-ch.start {
				r.rp.bufs.put(ch.buf)
				ch.buf = nil
				c.window[0] = nil
				c.window = c.window[1:]
				c.off = 0
			}
			return n, nil
		}
		if seg != nil {
			// Every byte the chunk's goroutine read is delivered: read on
			// from its connection, and free its buffer for another chunk.
			r.rp.bufs.put(ch.buf)
			ch.buf, ch.seg = nil, nil
			c.window[0] = nil
			c.window = c.window[1:]
			c.off = 0
			seg.inline = true
			r.seg = seg
			continue
		}
		if err != nil {
			return 0, err
		}
		select {
		case <-ch.ready:
		case <-r.evReady:
			r.flush()
		case <-c.ctx.Done():
			return 0, c.ctx.Err()
		}
	}
}

// release waits for the chunk goroutines, which must have been told to
// stop by canceling c.ctx, gives their buffers back and closes the
// segments they handed over.
func (c *chunker) release() {
	c.wg.Wait()
	for _, ch := range c.window {
		if ch.buf != nil {
			c.r.rp.bufs.put(ch.buf)
			ch.buf = nil
		}
		if ch.seg != nil {
			ch.seg.close()
			ch.seg = nil
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
