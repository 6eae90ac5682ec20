package unpack

import (
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The content of regular files is written by goroutines beside the
// applier's, which goes on with the next entries meanwhile: on a layer of
// many small files the kernel's work per file then takes more than one
// core, and on one of large files the writes overlap the reading of the
// stream. Everything that names a path (creating, linking, removing) stays
// on the applier's goroutine, in stream order; the writers only write to
// descriptors the applier opened, then set the file's owner, mode and times
// through the descriptor and close it. The applier hands them batches:
// small files share a buffer, so that a hand-off costs little per file.
const (
	writeBufSize   = 256 << 10 // bytes of one batch's buffer
	writeBufs      = 16        // batches in flight
	maxBatchPieces = 128       // pieces in a batch
	maxWriters     = 4
)

// A file of at least dropBehindMin bytes is not kept in the page cache
// once written: its writer starts its writeback as it finishes it, and a
// goroutine of the Apply waits for the writeback, drops the file's pages
// and closes it, at most retireQueue files behind. The pages freed are the
// ones the next files are written into. Without it the layer's content
// stays in the cache, dirty, until the kernel writes it back: on a large
// layer that is much of the machine's free memory, charged to the memory
// cgroup of the process that unpacks, and where pages the system has not
// used lately are costly to hand out (a virtual machine whose balloon
// takes back free memory: 2.3 s of system time per GiB written against
// 0.3 s on recycled pages, measured on the bench machine), it is the most
// expensive part of the unpack. Small files are left alone: their pages
// are few and the system calls would cost more than they save.
//
// A file larger than dropWindow leaves the cache while it is written too,
// so that a single file of many GiB does not fill it: each time the
// applier has handed out another dropWindow bytes of it, the writers start
// the writeback of that window and drop the one before, which is on disk
// by then. So such a file holds about two windows of page cache, and the
// writes in flight.
const (
	dropBehindMin = 1 << 20
	retireQueue   = 8
	dropWindow    = 8 << 20
)

// dropBehind is what a fileHandle implements when it can leave the page
// cache (see dropBehindMin).
type dropBehind interface {
	// startWriteback starts writing bytes [off, off+n) of the file to
	// disk, without waiting; it reports false when the system refuses.
	startWriteback(off, n int64) bool
	// dropWritten waits until bytes [off, off+n) are on disk and drops
	// them from the cache. It is advice: errors are ignored.
	dropWritten(off, n int64)
}

// fileWriter is the pool of writing goroutines of one Apply. Its methods
// but run are called from the applier's goroutine.
type fileWriter struct {
	batches chan *writeBatch
	bufs    chan []byte   // free batch buffers
	open    chan struct{} // a token for each file open and not yet finished
	cur     *writeBatch   // being filled by the applier
	wg      sync.WaitGroup
	retire  chan *pendingFile // written large files, to drop from the cache
	retired sync.WaitGroup

	mu  sync.Mutex
	err error // the first error of a writer
}

// writeBatch is pieces of files whose data share one buffer.
type writeBatch struct {
	buf    []byte
	used   int
	pieces []writePiece
}

// writePiece writes buf[start:end] at off in a file; an empty piece
// releases the applier's hold on the file. A window piece writes nothing:
// it starts the writeback of bytes [wbFrom, off) of the file and drops
// bytes [wbPrev, wbFrom) from the cache (see dropWindow).
type writePiece struct {
	file           *pendingFile
	start, end     int
	off            int64
	window         bool
	wbPrev, wbFrom int64
}

// pendingFile is a file whose writes are in flight. The writer that does
// its last piece finishes it.
type pendingFile struct {
	f    fileHandle
	refs atomic.Int32 // pieces not done, plus the applier's hold
	meta fileMetaPlan
	size int64 // bytes written, known once the applier releases its hold
}

// fileMetaPlan is what finishing a file sets through its descriptor,
// decided by the applier.
type fileMetaPlan struct {
	name         string // the entry's name, for errors
	chown        bool
	uid, gid     int
	chmod        bool
	mode         fs.FileMode
	atime, mtime time.Time
}

// writerCount is how many writers an Apply starts: none on one core, where
// they would only add hand-offs, else one per core, up to maxWriters.
func writerCount() int {
	if n := runtime.GOMAXPROCS(0); n > 1 {
		return min(n, maxWriters)
	}
	return 0
}

// newFileWriter starts n writers, which may hold up to maxOpen files open.
func newFileWriter(n, maxOpen int) *fileWriter {
	w := &fileWriter{
		batches: make(chan *writeBatch, writeBufs),
		bufs:    make(chan []byte, writeBufs),
		open:    make(chan struct{}, maxOpen),
		retire:  make(chan *pendingFile, retireQueue),
	}
	for range writeBufs {
		w.bufs <- make([]byte, writeBufSize)
	}
	w.wg.Add(n)
	for range n {
		go w.run()
	}
	w.retired.Add(1)
	go w.retirer()
	return w
}

func (w *fileWriter) run() {
	defer w.wg.Done()
	for b := range w.batches {
		for _, p := range b.pieces {
			if p.window {
				d := p.file.f.(dropBehind)
				d.startWriteback(p.wbFrom, p.off-p.wbFrom)
				if p.wbFrom > p.wbPrev {
					d.dropWritten(p.wbPrev, p.wbFrom-p.wbPrev)
				}
			}
			if p.end > p.start {
				if err := writeFullAt(p.file.f, b.buf[p.start:p.end], p.off); err != nil {
					w.fail(fmt.Errorf("file %q: %w", p.file.meta.name, err))
				}
			}
			if p.file.refs.Add(-1) == 0 {
				w.finish(p.file)
			}
		}
		w.bufs <- b.buf
	}
}

// finish sets the file's owner, mode and times. A large file then goes to
// the retirer (see dropBehindMin); any other is closed.
func (w *fileWriter) finish(pf *pendingFile) {
	err := pf.setMeta()
	if d, ok := pf.f.(dropBehind); ok && err == nil && pf.size >= dropBehindMin && d.startWriteback(0, pf.size) {
		w.retire <- pf
		return
	}
	w.close(pf, err)
}

// retirer drops retired files from the page cache and closes them, in the
// order they were written.
func (w *fileWriter) retirer() {
	defer w.retired.Done()
	for pf := range w.retire {
		pf.f.(dropBehind).dropWritten(0, pf.size)
		w.close(pf, nil)
	}
}

// close closes a finished file and gives back its reservation; err is
// what finishing it failed with.
func (w *fileWriter) close(pf *pendingFile, err error) {
	if cerr := pf.f.close(); err == nil {
		err = cerr
	}
	if err != nil {
		w.fail(fmt.Errorf("file %q: %w", pf.meta.name, err))
	}
	<-w.open
}

func writeFullAt(f fileHandle, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := f.writeAt(p, off)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// setMeta sets the file's owner, mode and times, in the order that keeps
// them (chown clears setuid and setgid bits).
func (pf *pendingFile) setMeta() error {
	m := pf.meta
	var err error
	if m.chown {
		err = pf.f.chown(m.uid, m.gid)
	}
	if err == nil && m.chmod {
		err = pf.f.chmod(m.mode)
	}
	if err == nil {
		err = pf.f.utimes(m.atime, m.mtime)
	}
	return err
}

func (w *fileWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// failed returns the first error of a writer, if any yet.
func (w *fileWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// reserve waits until one more file may be open, handing over the batch
// being filled first if it must wait: the files it would finish may be
// what it waits for. The applier calls it before it opens a file whose
// content it then passes to write.
func (w *fileWriter) reserve() {
	select {
	case w.open <- struct{}{}:
		return
	default:
	}
	w.flush()
	w.open <- struct{}{}
}

// unreserve gives back a reservation for a file that was not opened.
func (w *fileWriter) unreserve() { <-w.open }

// batch returns the batch being filled, with room for a piece.
func (w *fileWriter) batch() *writeBatch {
	if w.cur != nil && (w.cur.used == len(w.cur.buf) || len(w.cur.pieces) == maxBatchPieces) {
		w.flush()
	}
	if w.cur == nil {
		w.cur = &writeBatch{buf: <-w.bufs, pieces: make([]writePiece, 0, 16)}
	}
	return w.cur
}

// flush hands the batch being filled to the writers.
func (w *fileWriter) flush() {
	if w.cur != nil {
		w.batches <- w.cur
		w.cur = nil
	}
}

// write reads the content of pf from r into batches, then hands the file
// to the writers to finish. The file is released, and will be closed,
// whatever happens.
func (w *fileWriter) write(pf *pendingFile, r io.Reader, check func() error, wrapErr func(error) error) error {
	pf.refs.Store(1)
	_, windows := pf.f.(dropBehind)
	var off, wbPrev, wbFrom int64
	defer func() {
		pf.size = off
		b := w.batch()
		b.pieces = append(b.pieces, writePiece{file: pf, start: b.used, end: b.used})
	}()
	for {
		b := w.batch()
		n, rerr := io.ReadFull(r, b.buf[b.used:])
		if n > 0 {
			pf.refs.Add(1)
			b.pieces = append(b.pieces, writePiece{file: pf, start: b.used, end: b.used + n, off: off})
			b.used += n
			off += int64(n)
			if windows && off-wbFrom >= dropWindow {
				pf.refs.Add(1)
				b.pieces = append(b.pieces, writePiece{file: pf, start: b.used, end: b.used, off: off, window: true, wbPrev: wbPrev, wbFrom: wbFrom})
				wbPrev, wbFrom = wbFrom, off
			}
		}
		switch rerr {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return nil
		default:
			return wrapErr(rerr)
		}
		if err := check(); err != nil {
			return err
		}
	}
}

// wait hands over what is left, waits for every file to be finished and
// closed, and stops the writers; it returns the first error of a writer.
func (w *fileWriter) wait() error {
	w.flush()
	close(w.batches)
	w.wg.Wait()
	close(w.retire)
	w.retired.Wait()
	return w.failed()
}
