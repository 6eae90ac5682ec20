// Package chunks passes a byte stream between goroutines in chunks, through
// a fixed set of buffers, so that reading, decompressing, hashing and
// writing a stream run on different cores while memory stays bounded.
//
// A Pipe starts with count buffers of size bytes. Bytes enter it either
// from a goroutine of its own ([Pipe.Source]) or from the caller
// ([Pipe.Write]); each stage ([Pipe.Then]) sees every chunk in order, on
// a goroutine of its own; one reader takes them out ([Pipe.Read]), and the
// buffer of a chunk it has read goes back to be filled again. So no stage
// runs more than count chunks ahead of the reader.
//
// Each side is one goroutine: one writer (or the Source's goroutine), one
// reader. [Pipe.Stop] may be called from any goroutine.
package chunks

import (
	"io"
	"sync"
)

// Chunk is a piece of the stream, or the error that ends it (io.EOF at the
// end), possibly after some bytes.
type Chunk struct {
	B   []byte
	Err error
}

// Pipe carries one stream from its source, through its stages, to its
// reader. The zero value is not usable: call [New].
type Pipe struct {
	size   int
	free   chan []byte
	in     chan Chunk   // where Source and Write put chunks
	out    chan Chunk   // what Read takes: in, or the last stage's output
	stages []chan Chunk // every channel, for Recycle
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	// Owned by the reader.
	cur  []byte // what is left of the chunk being read
	held []byte // that chunk's buffer, returned to free once read
	err  error  // the error that ended the stream, once reached
}

// New returns a pipe with count buffers of size bytes, taken from a pool
// that [Pipe.Recycle] returns them to.
func New(count, size int) *Pipe {
	p := &Pipe{
		size: size,
		free: make(chan []byte, count),
		in:   make(chan Chunk, count),
		stop: make(chan struct{}),
	}
	p.out = p.in
	p.stages = []chan Chunk{p.in}
	pool := poolOf(size)
	for range count {
		p.free <- (*pool.Get().(*[]byte))[:size]
	}
	return p
}

// Source starts a goroutine that fills the free buffers in turn with fill
// and passes on what each call gave, until a call returns an error or the
// pipe stops. fill should fill the buffer whole unless the stream ends:
// fewer, larger chunks cost less to pass on. A pipe has one Source, or is
// written to with Write, not both.
func (p *Pipe) Source(fill func(buf []byte) (int, error)) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			var buf []byte
			select {
			case buf = <-p.free:
			case <-p.stop:
				return
			}
			n, err := fill(buf)
			select {
			case p.in <- Chunk{B: buf[:n], Err: err}:
			case <-p.stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
}

// Then starts a goroutine that calls fn with the bytes of each chunk, in
// order, before passing the chunk on: to the reader, or to the stage
// started next. Stages are started before the first Read.
func (p *Pipe) Then(fn func(b []byte)) {
	in := p.out
	out := make(chan Chunk, cap(p.in))
	p.out = out
	p.stages = append(p.stages, out)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			var c Chunk
			select {
			case c = <-in:
			case <-p.stop:
				return
			}
			if len(c.B) > 0 {
				fn(c.B)
			}
			select {
			case out <- c:
			case <-p.stop:
				return
			}
			if c.Err != nil {
				return
			}
		}
	}()
}

// Write copies b into the pipe, waiting for free buffers while the
// reader is count chunks behind. It reports false, having dropped the
// rest of b, once the pipe has stopped.
func (p *Pipe) Write(b []byte) bool {
	for {
		select {
		case <-p.stop:
			return false
		default:
		}
		if len(b) == 0 {
			return true
		}
		var buf []byte
		select {
		case buf = <-p.free:
		case <-p.stop:
			return false
		}
		n := copy(buf, b)
		b = b[n:]
		select {
		case p.in <- Chunk{B: buf[:n]}:
		case <-p.stop:
			return false
		}
	}
}

// CloseWrite ends a written stream: the reader gets io.EOF once it has
// read what was written.
func (p *Pipe) CloseWrite() { p.CloseWriteError(io.EOF) }

// CloseWriteError ends a written stream with err: the reader gets it once
// it has read what was written.
func (p *Pipe) CloseWriteError(err error) {
	select {
	case p.in <- Chunk{Err: err}:
	case <-p.stop:
	}
}

// Read hands out the stream's bytes in order, then the error that ended
// it, again at every later call. Once the pipe has stopped, a Read that
// would wait for the next chunk returns io.ErrClosedPipe instead.
func (p *Pipe) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if p.held != nil {
			p.free <- p.held
			p.held = nil
		}
		var c Chunk
		select {
		case c = <-p.out:
		case <-p.stop:
			p.err = io.ErrClosedPipe
			return 0, p.err
		}
		p.cur, p.held, p.err = c.B, c.B[:cap(c.B)], c.Err
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// Discard reads the rest of the stream without copying it. It returns nil
// at the end of the stream, or the error that ended it.
func (p *Pipe) Discard() error {
	for {
		p.cur = nil
		if _, err := p.Read(nil); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// Stop ends the pipe's goroutines after the call of fill or fn under way,
// makes Write drop what it is given, and lets a Read waiting for a chunk
// return. It does not wait for them: see
// Wait. Stop may be called more than once, from any goroutine.
func (p *Pipe) Stop() { p.once.Do(func() { close(p.stop) }) }

// Wait waits for the goroutines of Source and Then to end: after the end
// of the stream, or after Stop.
func (p *Pipe) Wait() { p.wg.Wait() }

// Recycle returns the pipe's buffers to the pool for another pipe, once
// both sides are done with it: its goroutines have ended (Wait) and the
// reader reads no more. The pipe must not be used after.
func (p *Pipe) Recycle() {
	pool := poolOf(p.size)
	put := func(b []byte) {
		if cap(b) >= p.size {
			b = b[:p.size]
			pool.Put(&b)
		}
	}
	if p.held != nil {
		put(p.held)
	}
	p.cur, p.held = nil, nil
	for _, ch := range p.stages {
		for len(ch) > 0 {
			if c := <-ch; c.B != nil {
				put(c.B[:cap(c.B)])
			}
		}
	}
	for len(p.free) > 0 {
		put(<-p.free)
	}
}

// pools holds a *sync.Pool of buffers for each buffer size in use.
var pools sync.Map

func poolOf(size int) *sync.Pool {
	if p, ok := pools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := pools.LoadOrStore(size, &sync.Pool{New: func() any { b := make([]byte, size); return &b }})
	return p.(*sync.Pool)
}
