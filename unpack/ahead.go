package unpack

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/pullkit/pullkit/content"
)

// defaultDecompressAhead is how many layers an Unpacker decompresses ahead
// of the one it applies, unless WithDecompressAhead says otherwise.
const defaultDecompressAhead = 2

// ahead is a layer decompressed ahead of its turn, into an unnamed
// temporary file, while the layers below it are applied. Layers must be
// applied in order, but decompressing them need not be: a gzip stream
// decodes on one core, and this puts a second to work.
type ahead struct {
	done   chan struct{}      // closed when the decompression has ended
	cancel context.CancelFunc // stops it, and releases what it holds
	// Set before done is closed: the uncompressed layer, at offset 0, its
	// DiffID verified; nil when the decompression failed, and the layer is
	// then applied from its blob, which reports the failure as Apply does.
	f *os.File
}

// discard releases what a decompression ahead holds, waiting for it to
// stop. The file, unnamed, leaves nothing behind once closed.
func (a *ahead) discard() {
	a.cancel()
	<-a.done
	if a.f != nil {
		a.f.Close()
		a.f = nil
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
		// Not the handler call's context: Dispatch cancels that once the
		// call's siblings are done, long before this layer's turn.
		actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		a := &ahead{done: make(chan struct{}), cancel: cancel}
		if j.ahead == nil {
			j.ahead = map[int]*ahead{}
		}
		j.ahead[i] = a
		j.aheadRunning++
		go u.decompressAhead(actx, j, i, dir, a)
	}
}

// decompressAhead decompresses layer i of j into a temporary file in dir,
// then starts the next layers the window lets in.
func (u *Unpacker) decompressAhead(ctx context.Context, j *unpackJob, i int, dir string, a *ahead) {
	f, err := u.decompress(ctx, j, i, dir)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err == nil {
		a.f = f
	}
	close(a.done)
	j.aheadRunning--
	if ctx.Err() == nil {
		u.startAhead(ctx, j)
	}
}

// decompress writes the uncompressed layer i of j to an unnamed file in
// dir, checking the limits and the DiffID Apply would check, and returns
// the file at offset 0.
func (u *Unpacker) decompress(ctx context.Context, j *unpackJob, i int, dir string) (_ *os.File, err error) {
	cfg := newApplyConfig(u.cfg.applyOpts)
	ra, err := u.p.ReaderAt(ctx, j.layers[i])
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	var gzipCmd string
	if !cfg.goGzip {
		gzipCmd = gzipCommand()
	}
	diffID := j.diffIDs[i]
	s, err := newLayerStream(content.NewReader(ra), diffID.Algorithm(), cfg.maxSize, cfg.maxRatio, gzipCmd)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	f, err := unnamedFile(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	bufp := applyBuffers.Get().(*[]byte)
	defer applyBuffers.Put(bufp)
	if _, err := io.CopyBuffer(onlyWriter{f}, ctxReader{ctx, s}, *bufp); err != nil {
		return nil, err
	}
	if got := s.digest(); got != diffID {
		return nil, &DiffIDMismatchError{Expected: diffID, Actual: got}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return f, nil
}

// takeAhead returns layer i of j decompressed ahead, waiting for the
// decompression to end, or nil when it was not decompressed ahead or that
// failed. The caller closes the file.
func (u *Unpacker) takeAhead(ctx context.Context, j *unpackJob, i int) (*os.File, error) {
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
	return a.f, nil
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

// onlyWriter hides a file's ReadFrom, so that io.CopyBuffer uses the
// buffer.
type onlyWriter struct{ io.Writer }
