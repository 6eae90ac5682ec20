package unpack

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/internal/chunks"
	"github.com/pullkit/pullkit/internal/pagecache"
)

// defaultDecompressAhead is how many layers an Unpacker decompresses ahead
// of the one it applies, unless WithDecompressAhead says otherwise.
const defaultDecompressAhead = 2

// ahead is a layer decompressed ahead of its turn, while the layers below
// it are applied. Layers must be applied in order, but decompressing them
// need not be: a gzip stream decodes on one core, and this puts a second to
// work.
type ahead struct {
	done   chan struct{}      // closed when the decompression has ended
	cancel context.CancelFunc // stops it, and releases what it holds
	// Set before done is closed: the layer, its DiffID verified; nil when
	// the decompression failed, and the layer is then applied from its
	// blob, which reports the failure as Apply does.
	l *aheadLayer
}

// discard releases what a decompression ahead holds, waiting for it to
// stop. Its files, unnamed, leave nothing behind once closed.
func (a *ahead) discard() {
	a.cancel()
	<-a.done
	if a.l != nil {
		a.l.close()
		a.l = nil
	}
}

// aheadLayer is a layer decompressed ahead, in unnamed files (see
// unnamedFile) of the file system it is applied to. The content of each of
// its large regular files is in a file of its own, which the apply links
// into place rather than copies, so that it is written once; the rest of
// the tar stream is in the stream file, with a hole where that content was,
// so that every entry keeps its offset.
type aheadLayer struct {
	stream *os.File           // at offset 0 once decompressed
	files  map[int64]*os.File // the content of entry n (from 1), at offset 0
}

// aheadFileMin is the size from which a file of a layer decompressed
// ahead gets a file of its own (see aheadFilesMax).
const aheadFileMin = dropBehindMin

// aheadFilesMax is how many files of a layer decompressed ahead get a file
// of their own: the first ones of aheadFileMin bytes or more. Each is an
// open descriptor until the layer is applied, and two layers may wait so
// beside the apply's own descriptors: a sixteenth of the process's limit
// of open files, from 16 to 256.
func aheadFilesMax() int { return int(min(max(openFileLimit()/16, 16), 256)) }

// take returns the file that holds the content of entry n, and leaves it
// to the caller, or returns nil.
func (l *aheadLayer) take(n int64) *os.File {
	f := l.files[n]
	delete(l.files, n)
	return f
}

func (l *aheadLayer) close() {
	l.stream.Close()
	for n, f := range l.files {
		f.Close()
		delete(l.files, n)
	}
}

// aheadDir returns the directory in whose file system layers are
// decompressed ahead, or "" when the Unpacker does not decompress ahead:
// the Unpacker's directory, or the root of a [Directory] snapshotter. Other
// snapshotters say nothing of where there is room for a layer.
func (u *Unpacker) aheadDir() string {
	if u.cfg.ahead <= 0 {
		return ""
	}
	if u.dir != "" {
		return u.dir
	}
	if d, ok := u.sn.(*Directory); ok {
		return d.root
	}
	return ""
}

// startAhead starts decompressing the fetched layers of j that are above
// the one being applied and within the window WithDecompressAhead sets, as
// many at a time as the window is wide. The caller holds u.mu.
func (u *Unpacker) startAhead(ctx context.Context, j *unpackJob) {
	dir := u.aheadDir()
	if dir == "" || j.done || j.err != nil {
		return
	}
	for i := j.next + 1; i < len(j.layers) && i <= j.next+u.cfg.ahead && j.aheadRunning < u.cfg.ahead; i++ {
		if !j.fetched[i] || j.ahead[i] != nil {
			continue
		}
		u.startLayerAhead(ctx, j, i, dir, nil)
	}
}

// startLayerAhead records layer i of j as decompressing ahead, and starts
// decompressing it from src, or from the store when src is nil. The
// caller holds u.mu.
func (u *Unpacker) startLayerAhead(ctx context.Context, j *unpackJob, i int, dir string, src *chunks.Pipe) {
	// Not the handler call's context: Dispatch cancels that once the
	// call's siblings are done, long before this layer's turn.
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &ahead{done: make(chan struct{}), cancel: cancel}
	if j.ahead == nil {
		j.ahead = map[int]*ahead{}
	}
	j.ahead[i] = a
	j.aheadRunning++
	go u.decompressAhead(actx, j, i, dir, a, src)
}

// decompressAhead decompresses layer i of j into unnamed files in dir,
// from its download when src is not nil (see teeAhead), else from the
// store, then starts the next layers the window lets in.
func (u *Unpacker) decompressAhead(ctx context.Context, j *unpackJob, i int, dir string, a *ahead, src *chunks.Pipe) {
	l, err := u.decompress(ctx, j, i, dir, src)
	if src != nil {
		src.Stop() // the download goes on without it
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err == nil {
		a.l = l
	} else if errors.Is(err, errNotTeed) && j.ahead[i] == a {
		// The download did not give the layer whole (the store had the
		// blob, it resumed an ingest, or it failed): decompress the
		// layer from the store once it is there, unless its turn has
		// come.
		delete(j.ahead, i)
	}
	close(a.done)
	j.aheadRunning--
	if ctx.Err() == nil {
		u.startAhead(ctx, j)
	}
}

// teeChunks and teeChunkSize shape the buffer between a layer's download
// and its decompression ahead (see teeAhead): the download waits while
// the decompression is that far behind.
const (
	teeChunks    = 4
	teeChunkSize = 1 << 20
)

// errNotTeed ends a decompression ahead from a download that did not give
// the whole blob from its first byte.
var errNotTeed = errors.New("unpack: the download did not give the whole layer")

// teeAhead starts decompressing desc ahead from its download, when desc is
// a layer of an image being unpacked that is above the next one to apply,
// in the window WithDecompressAhead sets, and not yet decompressing: the
// wrapped handler then downloads it with the returned context, in which
// content.Copy gives the decompression the blob's bytes as it writes
// them. So the layer is decompressed while it downloads, not read back
// from the store after. Its bytes are not verified as they arrive, but
// nothing of them is visible before the layer's turn: they go to unnamed
// files, its DiffID is checked against what they decompress to, and the
// layer is applied from them only once its blob is committed. Call the
// returned function with the wrapped handler's error.
func (u *Unpacker) teeAhead(ctx context.Context, desc ocispec.Descriptor) (context.Context, func(error)) {
	none := func(error) {}
	dir := u.aheadDir()
	if dir == "" || desc.Size <= 0 {
		return ctx, none
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, j := range u.byLayer[desc.Digest] {
		if j.done || j.err != nil || j.aheadRunning >= u.cfg.ahead {
			continue
		}
		for i := j.next + 1; i < len(j.layers) && i <= j.next+u.cfg.ahead; i++ {
			if j.layers[i].Digest != desc.Digest || j.fetched[i] || j.ahead[i] != nil {
				continue
			}
			p := chunks.New(teeChunks, teeChunkSize)
			tw := &pipeWriter{p: p}
			u.startLayerAhead(ctx, j, i, dir, p)
			return content.WithTee(ctx, tw), func(err error) {
				if err == nil && tw.n == desc.Size {
					p.CloseWrite()
				} else {
					p.CloseWriteError(errNotTeed)
				}
			}
		}
	}
	return ctx, none
}

// pipeWriter writes to a pipe, and counts what it took.
type pipeWriter struct {
	p *chunks.Pipe
	n int64
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	if !w.p.Write(b) {
		return 0, io.ErrClosedPipe
	}
	w.n += int64(len(b))
	return len(b), nil
}

// decompress writes the uncompressed layer i of j to unnamed files in dir,
// checking the limits and the DiffID Apply would check. It reads the
// layer from src, to the end of what its download gave, when src is not
// nil, else from the store.
func (u *Unpacker) decompress(ctx context.Context, j *unpackJob, i int, dir string, src *chunks.Pipe) (_ *aheadLayer, err error) {
	cfg := newApplyConfig(u.cfg.applyOpts)
	var r io.Reader = src
	if src == nil {
		ra, err := u.p.ReaderAt(ctx, j.layers[i])
		if err != nil {
			return nil, err
		}
		defer ra.Close()
		r = content.NewReader(ra)
	}
	var gzipCmd string
	if !cfg.goGzip {
		gzipCmd = gzipCommand()
	}
	diffID := j.diffIDs[i]
	s, err := newLayerStream(r, diffID.Algorithm(), cfg.maxSize, cfg.maxRatio, gzipCmd)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	f, err := unnamedFile(dir)
	if err != nil {
		return nil, err
	}
	l := &aheadLayer{stream: f, files: map[int64]*os.File{}}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	bufp := applyBuffers.Get().(*[]byte)
	defer applyBuffers.Put(bufp)
	if err := l.split(ctxReader{ctx, s}, dir, *bufp); err != nil {
		return nil, err
	}
	if got := s.digest(); got != diffID {
		return nil, &DiffIDMismatchError{Expected: diffID, Actual: got}
	}
	if src != nil {
		// Wait for the download's end: whether it gave the whole blob.
		if err := src.Discard(); err != nil {
			return nil, err
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return l, nil
}

// split writes the uncompressed layer r to l: the content of its large
// regular files each to a file of its own, the rest to l.stream, leaving
// holes where that content was. It reads r to its end: the DiffID covers
// what follows the end-of-archive marker too. A stream that is not a tar
// fails here, and its layer is then applied from its blob, which reports
// the error as Apply does.
func (l *aheadLayer) split(r io.Reader, dir string, buf []byte) error {
	w := &holeWriter{f: l.stream, buf: buf[: 0 : len(buf)/2]}
	buf = buf[len(buf)/2:]
	tee := io.TeeReader(r, w)
	tr := tar.NewReader(tee)
	var drops dropQueue
	defer drops.dropAll()
	most := aheadFilesMax()
	for n := int64(1); ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if !ownAheadFile(hdr) || len(l.files) >= most {
			continue // its content, if any, goes to the stream as tr reads it
		}
		f, err := unnamedFile(dir)
		if err != nil {
			return err
		}
		l.files[n] = f
		w.skip = true
		_, err = io.CopyBuffer(&windowWriter{f: f}, tr, buf)
		w.skip = false
		if err != nil {
			return err
		}
		drops.add(f, hdr.Size)
	}
	if _, err := io.CopyBuffer(onlyWriter{io.Discard}, tee, buf); err != nil {
		return err
	}
	return w.finish()
}

// ownAheadFile reports whether the content of the entry hdr gets a file
// of its own when its layer is decompressed ahead: a regular file of
// aheadFileMin bytes or more, stored whole. A sparse file's content is not
// what its entry stores, and stays in the stream.
func ownAheadFile(hdr *tar.Header) bool {
	if hdr.Typeflag != tar.TypeReg || hdr.Size < aheadFileMin {
		return false
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return false
		}
	}
	return true
}

// holeWriter writes a stream to a file through a buffer, and while skip is
// set leaves the bytes written out: the file gets a hole of their length.
type holeWriter struct {
	f    *os.File
	buf  []byte
	off  int64 // the offset in f of buf[0]
	skip bool
}

func (w *holeWriter) Write(p []byte) (int, error) {
	if w.skip {
		if err := w.flush(); err != nil {
			return 0, err
		}
		w.off += int64(len(p))
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n - len(p), err
			}
		}
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
	}
	return n, nil
}

func (w *holeWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(w.buf, w.off); err != nil {
		return err
	}
	w.off += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// finish writes what is buffered, and gives the file the stream's length,
// a hole at its end included.
func (w *holeWriter) finish() error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.f.Truncate(w.off)
}

// dropQueue keeps the files a decompression ahead writes out of the page
// cache, as the applier does with those it writes (see dropBehindMin): the
// writeback of each starts as it is finished, and its pages are dropped
// once written, retireQueue files behind.
type dropQueue []droppedFile

// droppedFile is a file whose first size bytes are being written back.
type droppedFile struct {
	f    *os.File
	size int64
}

func (q *dropQueue) add(f *os.File, size int64) {
	if pagecache.StartWriteback(f.Fd(), 0, size) != nil {
		return
	}
	*q = append(*q, droppedFile{f, size})
	if len(*q) > retireQueue {
		(*q)[0].drop()
		*q = (*q)[1:]
	}
}

func (q *dropQueue) dropAll() {
	for _, d := range *q {
		d.drop()
	}
	*q = nil
}

func (d droppedFile) drop() { pagecache.WaitAndDrop(d.f.Fd(), 0, d.size) }

// takeAhead returns layer i of j decompressed ahead, waiting for the
// decompression to end, or nil when it was not decompressed ahead or that
// failed. The caller closes it.
func (u *Unpacker) takeAhead(ctx context.Context, j *unpackJob, i int) (*aheadLayer, error) {
	u.mu.Lock()
	a := j.ahead[i]
	delete(j.ahead, i)
	u.mu.Unlock()
	if a == nil {
		return nil, nil
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		a.discard()
		return nil, fmt.Errorf("wait for layer %d to decompress: %w", i, ctx.Err())
	}
	return a.l, nil
}

// dropAhead discards every decompression ahead of j. The caller holds
// u.mu; the decompressions end without it.
func (u *Unpacker) dropAhead(j *unpackJob) {
	for i, a := range j.ahead {
		delete(j.ahead, i)
		go a.discard()
	}
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// onlyWriter hides a writer's ReadFrom, so that io.CopyBuffer uses the
// buffer.
type onlyWriter struct{ io.Writer }

// windowWriter writes a file front to back and, every dropWindow bytes,
// starts the writeback of the window just written and drops the one
// before from the page cache, so that a single large file decompressed
// ahead does not fill the cache (see dropWindow). It has no ReadFrom, so
// io.CopyBuffer uses the buffer.
type windowWriter struct {
	f          *os.File
	n          int64 // bytes written
	prev, from int64 // the window being written back starts at from, the one before at prev
}

func (w *windowWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if w.n-w.from >= dropWindow {
		fd := w.f.Fd()
		if pagecache.StartWriteback(fd, w.from, w.n-w.from) == nil && w.from > w.prev {
			pagecache.WaitAndDrop(fd, w.prev, w.from-w.prev)
		}
		w.prev, w.from = w.from, w.n
	}
	return n, err
}
