package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pullkit/pullkit/internal/httpx"

	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/content"
)

// reader is what Fetch returns: a resumable, seekable stream of one blob,
// read either as one stream (a segment) or in parallel chunks (a chunker).
type reader struct {
	rp     *Repository
	desc   ocispec.Descriptor
	size   int64
	parent context.Context // the caller's
	ctx    context.Context // parent with the auth scope; canceled by Close
	cancel context.CancelFunc

	mu           sync.Mutex         // serializes Read, Seek and Close
	srcs         []source           // where to fetch from; one once a source answered
	pos          int64              // the next byte Read returns
	opened       bool               // seg or chunks is set up to deliver pos
	rangeIgnored bool               // the server answered a Range request with 200
	probing      bool               // seg's speed decides whether to split the download
	slow         int                // windows in a row that seg was slow
	seg          *segment           // the stream the reader reads itself, if any
	chunks       *chunker           // set when the download is split
	modeCancel   context.CancelFunc // stops seg or chunks
	err          error              // sticky failure, until a Seek
	closed       bool

	evMu    sync.Mutex
	pending []Event
	evReady chan struct{} // poked when pending grows
}

func newReader(ctx context.Context, rp *Repository, desc ocispec.Descriptor, offset int64) *reader {
	sctx := auth.WithScopes(ctx, auth.RepositoryScope(rp.repo, auth.ActionPull))
	rctx, cancel := context.WithCancel(sctx)
	return &reader{
		rp:      rp,
		desc:    desc,
		size:    desc.Size,
		parent:  ctx,
		ctx:     rctx,
		cancel:  cancel,
		srcs:    rp.sources(desc),
		pos:     offset,
		evReady: make(chan struct{}, 1),
	}
}

var errClosed = fmt.Errorf("read after Close: %w", errdefs.ErrFailedPrecondition)

// Read reads the next bytes of the blob, resuming broken connections.
func (r *reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.flush()
	switch {
	case r.closed:
		return 0, fmt.Errorf("fetch %s: %w", r.desc.Digest, errClosed)
	case r.err != nil:
		return 0, r.err
	case r.pos >= r.size:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	for {
		if !r.opened {
			if err := r.open(); err != nil {
				return 0, r.fail(err)
			}
		}
		var n int
		var err error
		if r.chunks != nil {
			n, err = r.chunks.read(p)
		} else {
			n, err = r.seg.Read(p)
			if r.probing && err == nil {
				r.probe()
			}
		}
		r.pos += int64(n)
		switch {
		case err == nil || err == io.EOF:
			switch {
			case n > 0:
				return n, nil
			case r.pos >= r.size:
				return 0, io.EOF
			case err == io.EOF:
				return 0, r.fail(fmt.Errorf("stream ended at byte %d", r.pos))
			}
		case errors.Is(err, errRangeIgnored):
			r.rangeIgnored = true
			r.teardown()
			r.rp.log(r.ctx, slog.LevelInfo, "server ignores Range requests: continuing with one stream", r.desc, slog.Int64("offset", r.pos))
			if n > 0 {
				return n, nil
			}
		default:
			return n, r.fail(err)
		}
	}
}

// fail records err as the reader's failure and returns it, wrapped: a
// stream that ends short matches io.ErrUnexpectedEOF, unless the caller's
// context or Close ended it.
func (r *reader) fail(err error) error {
	r.teardown()
	if perr := r.parent.Err(); perr != nil {
		r.err = fmt.Errorf("fetch %s: %w", r.desc.Digest, perr)
	} else if r.ctx.Err() != nil {
		r.err = fmt.Errorf("fetch %s: %w", r.desc.Digest, errClosed)
	} else {
		r.err = fmt.Errorf("fetch %s: got %d of %d bytes: %w: %w", r.desc.Digest, r.pos, r.size, io.ErrUnexpectedEOF, err)
	}
	return r.err
}

// Seek sets the offset of the next Read. Seeking elsewhere than the current
// offset drops the connection; the next Read asks for the new offset with
// a Range request. Offsets past the end are allowed: Read returns io.EOF.
func (r *reader) Seek(offset int64, whence int) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, fmt.Errorf("fetch %s: seek: %w", r.desc.Digest, errClosed)
	}
	abs := offset
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		abs += r.pos
	case io.SeekEnd:
		abs += r.size
	default:
		return 0, fmt.Errorf("fetch %s: seek: invalid whence %d: %w", r.desc.Digest, whence, errdefs.ErrInvalidArgument)
	}
	if abs < 0 {
		return 0, fmt.Errorf("fetch %s: seek to negative offset %d: %w", r.desc.Digest, abs, errdefs.ErrInvalidArgument)
	}
	if abs == r.pos && r.err == nil {
		return abs, nil
	}
	r.teardown()
	r.pos, r.err = abs, nil
	return abs, nil
}

// Close stops the download and releases its connections and buffers. A
// Read blocked on another goroutine returns promptly.
func (r *reader) Close() error {
	r.cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.teardown()
	}
	return nil
}

// open sets up the delivery of the blob from r.pos, trying each source in
// order; only the last, the registry, has its error returned.
func (r *reader) open() error {
	if r.pos >= r.size {
		r.opened = true
		return nil
	}
	for i, src := range r.srcs {
		err := r.openFrom(src)
		if err == nil {
			r.srcs = r.srcs[i : i+1]
			r.opened = true
			return nil
		}
		if perr := r.parent.Err(); perr != nil {
			return perr
		}
		if i == len(r.srcs)-1 {
			return err
		}
		r.rp.log(r.ctx, slog.LevelInfo, "foreign URL failed: trying the next source", r.desc,
			slog.String("url", httpx.RedactURL(src.url)), slog.String("error", err.Error()))
	}
	return nil // not reached: there is always the registry source
}

// openFrom opens src at r.pos, as one stream, or split from the first
// request when [WithSplitBelow] says [SplitAlways] (see [WithParallel]).
func (r *reader) openFrom(src source) error {
	ctx, cancel := context.WithCancel(r.ctx)
	cfg := &r.rp.cfg
	splittable := cfg.parallelism > 1 && !r.rangeIgnored && r.size-r.pos >= chunkThreshold*cfg.chunkSize
	if splittable && cfg.splitBelow == SplitAlways {
		first := r.newSegment(ctx, src, r.pos, r.pos+cfg.chunkSize, true)
		err := first.open()
		switch {
		case err == nil:
			r.seg, r.modeCancel = first, cancel
			r.chunks = newChunker(r, ctx, src, first.end)
			r.chunks.fill()
			return nil
		case errors.Is(err, errRangeIgnored):
			// The first chunk's answer is the whole blob: read it as one
			// stream (its first r.pos bytes are skipped).
			r.rangeIgnored = true
			r.rp.log(r.ctx, slog.LevelInfo, "server ignores Range requests: one stream", r.desc)
			first.end, first.strict = r.size, false
			r.seg, r.modeCancel = first, cancel
			return nil
		}
		first.close()
		cancel()
		return err
	}
	seg := r.newSegment(ctx, src, r.pos, r.size, false)
	if err := seg.open(); err != nil {
		seg.close()
		cancel()
		return err
	}
	r.seg, r.modeCancel = seg, cancel
	r.probing = splittable
	return nil
}

// probe splits the download once its stream proved slow: when in two
// windows in a row (of 2 chunks, or of probeTime, whichever comes first) it
// delivered slower than WithSplitBelow, counting only the time spent
// waiting for the connection, so that a slow consumer does not make the
// stream look slow. Two windows, so that a moment of a busy machine does
// not either.
func (r *reader) probe() {
	s, cfg := r.seg, &r.rp.cfg
	if s.winBytes < 2*cfg.chunkSize && s.winTime < probeTime {
		return
	}
	rate := float64(s.winBytes) / max(s.winTime.Seconds(), 1e-9)
	s.winBytes, s.winTime = 0, 0
	if rate >= float64(cfg.splitBelow) {
		r.slow = 0
		return
	}
	if r.slow++; r.slow < slowWindows {
		return
	}
	r.probing = false
	if r.size-s.pos < 2*cfg.chunkSize {
		return
	}
	r.rp.log(r.ctx, slog.LevelDebug, "slow stream: splitting the download", r.desc,
		slog.Int64("offset", s.pos), slog.Int64("bytes_per_second", int64(rate)))
	r.chunks = newChunker(r, s.ctx, s.src, s.end)
}

// teardown stops the current delivery, so that the next Read opens anew.
func (r *reader) teardown() {
	if r.modeCancel != nil {
		r.modeCancel()
		r.modeCancel = nil
	}
	if r.chunks != nil {
		r.chunks.release()
		r.chunks = nil
	}
	if r.seg != nil {
		r.seg.close()
		r.seg = nil
	}
	r.opened = false
	r.probing, r.slow = false, 0
}

// event queues ev for the observer; flush delivers it on the reading
// goroutine, so the observer is never called concurrently for one blob.
func (r *reader) event(ev Event) {
	if r.rp.cfg.observer == nil {
		return
	}
	ev.Desc, ev.Total = r.desc, r.size
	r.evMu.Lock()
	r.pending = append(r.pending, ev)
	r.evMu.Unlock()
	select {
	case r.evReady <- struct{}{}:
	default:
	}
}

func (r *reader) flush() {
	r.evMu.Lock()
	evs := r.pending
	r.pending = nil
	r.evMu.Unlock()
	for _, ev := range evs {
		r.rp.cfg.observer(ev)
	}
}

// segment delivers bytes [pos, end) of the blob from one source over
// successive connections: it retries failed requests and resumes broken
// bodies. It is used by one goroutine at a time.
type segment struct {
	r        *reader
	ctx      context.Context
	src      source
	pos, end int64
	// strict makes a 200 answer to a Range request an errRangeIgnored
	// failure (the body is kept, for the caller to adopt) instead of
	// skipping to pos in the whole blob.
	strict bool
	// inline is set while the segment runs on the goroutine that reads the
	// blob, which may then deliver events itself.
	inline bool

	body    io.ReadCloser
	reqCtx  context.Context // the current request's
	stop    context.CancelCauseFunc
	timer   *time.Timer // the stall detector of the current request
	skip    int64       // body bytes to discard before pos
	bodyEnd int64       // blob offset where the current body ends, or -1
	got     int64       // bytes the current body delivered
	fails   int         // failures in a row
	resume  bool        // the next open resumes a broken body
	scratch []byte

	// Bytes read from bodies, and the time spent waiting for them, since
	// the reader's probe last looked.
	winBytes int64
	winTime  time.Duration
}

func (r *reader) newSegment(ctx context.Context, src source, from, to int64, strict bool) *segment {
	return &segment{r: r, ctx: ctx, src: src, pos: from, end: to, strict: strict, inline: true}
}

// Read reads the next bytes of the segment, resuming after failures. It
// returns io.EOF at the segment's end and, once retries are exhausted, the
// last failure.
func (s *segment) Read(p []byte) (int, error) {
	for {
		if s.pos >= s.end {
			s.finish()
			return 0, io.EOF
		}
		if s.body == nil {
			if err := s.open(); err != nil {
				return 0, err
			}
		}
		n, err := s.readBody(p)
		s.pos += int64(n)
		if s.pos >= s.end {
			s.finish()
			return n, nil
		}
		if err == nil {
			if n > 0 {
				return n, nil
			}
			continue
		}
		// The body broke or ended early.
		cause := s.cause(err)
		got := s.got
		s.close()
		if cerr := s.ctx.Err(); cerr != nil {
			return n, cerr
		}
		s.resume = true
		if got > 0 {
			s.fails = 0 // progress: resume at once
		}
		if ferr := s.failed(cause, got > 0); ferr != nil {
			return n, ferr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// open sends requests until one gives a usable body, or retries run out.
func (s *segment) open() error {
	for {
		err := s.try()
		if err == nil {
			if s.resume {
				s.resume = false
				s.r.event(Event{Kind: Resumed, Offset: s.pos})
				s.r.rp.log(s.ctx, slog.LevelInfo, "resumed", s.r.desc, slog.Int64("offset", s.pos))
			}
			return nil
		}
		if errors.Is(err, errRangeIgnored) {
			return err
		}
		if ferr := s.failed(err, false); ferr != nil {
			return ferr
		}
	}
}

// failed decides what follows the failure cause: nil after waiting for
// the retry (no wait when immediate), or the error that ends the segment.
func (s *segment) failed(cause error, immediate bool) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if !retryable(cause) {
		return cause
	}
	s.fails++
	if s.fails > s.r.rp.cfg.retries {
		return cause
	}
	var wait time.Duration
	if !immediate {
		wait = s.r.rp.backoff(s.fails)
		var re *ResponseError
		if errors.As(cause, &re) && re.waitSet {
			wait = re.wait
		}
	}
	s.r.event(Event{Kind: Retried, Offset: s.pos, Attempt: s.fails, Err: cause})
	s.r.rp.log(s.ctx, slog.LevelInfo, "retrying", s.r.desc, slog.Int("attempt", s.fails),
		slog.Int64("offset", s.pos), slog.Duration("wait", wait), slog.String("error", cause.Error()))
	if wait <= 0 {
		return nil
	}
	if s.inline {
		s.r.flush() // tell the observer before the wait, not after
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// try sends one request for [pos, end) and, when its answer is usable,
// keeps its body.
func (s *segment) try() error {
	rp, size := s.r.rp, s.r.size
	ctx, stop := context.WithCancelCause(s.ctx)
	stall := rp.cfg.stallTimeout
	timer := time.AfterFunc(stall, func() { stop(&stallError{stall}) })
	resp, err := rp.send(ctx, http.MethodGet, s.src, s.r.desc, byteRange{s.pos, s.end, size})
	timer.Stop()
	if err != nil {
		cause := context.Cause(ctx)
		stop(nil)
		if cerr := s.ctx.Err(); cerr != nil {
			return cerr
		}
		var se *stallError
		if errors.As(cause, &se) {
			return se
		}
		return err
	}
	keep := false
	defer func() {
		if !keep {
			stop(nil)
		}
	}()
	var skip, bodyEnd int64
	var rangeIgnored bool
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != size {
			resp.Body.Close()
			return &content.MismatchError{Expected: s.r.desc.Digest, ExpectedSize: size, ActualSize: resp.ContentLength}
		}
		skip, bodyEnd = s.pos, resp.ContentLength
		rangeIgnored = s.pos > 0 || s.end < size
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		start, end, total, ok := parseContentRange(cr)
		if total >= 0 && total != size {
			resp.Body.Close()
			return &content.MismatchError{Expected: s.r.desc.Digest, ExpectedSize: size, ActualSize: total}
		}
		if !ok || start > s.pos {
			resp.Body.Close()
			return fmt.Errorf("GET %s: 206 with Content-Range %q for a request from byte %d: %w",
				httpx.RedactURL(s.src.url), cr, s.pos, errdefs.ErrUnavailable)
		}
		skip, bodyEnd = s.pos-start, end
	default:
		return rp.statusError(resp)
	}
	keep = true
	s.body, s.reqCtx, s.stop, s.timer = resp.Body, ctx, stop, timer
	s.skip, s.bodyEnd, s.got = skip, bodyEnd, 0
	if rangeIgnored && s.strict {
		return errRangeIgnored
	}
	return nil
}

// readBody reads from the current body, first discarding what precedes
// pos, never past end.
func (s *segment) readBody(p []byte) (int, error) {
	for s.skip > 0 {
		buf := p
		if len(buf) < 32<<10 {
			if s.scratch == nil {
				s.scratch = make([]byte, 32<<10)
			}
			buf = s.scratch
		}
		n, err := s.timedRead(buf[:min(int64(len(buf)), s.skip)])
		s.skip -= int64(n)
		if err != nil {
			return 0, err
		}
	}
	if want := s.end - s.pos; int64(len(p)) > want {
		p = p[:want]
	}
	start := time.Now()
	n, err := s.timedRead(p)
	s.winTime += time.Since(start)
	s.winBytes += int64(n)
	s.got += int64(n)
	return n, err
}

// timedRead reads the body with the stall detector running.
func (s *segment) timedRead(p []byte) (int, error) {
	s.timer.Reset(s.r.rp.cfg.stallTimeout)
	n, err := s.body.Read(p)
	s.timer.Stop()
	return n, err
}

// cause explains why the body failed with err.
func (s *segment) cause(err error) error {
	var se *stallError
	if c := context.Cause(s.reqCtx); errors.As(c, &se) {
		return se
	}
	if err == io.EOF {
		return fmt.Errorf("body ended at byte %d, before byte %d: %w", s.pos, s.end, io.ErrUnexpectedEOF)
	}
	return redactError(err)
}

// finish ends the segment's last body. When the body ends where the
// segment does, it reads the body's EOF first, which lets net/http reuse the
// connection for the next request; otherwise the connection is dropped.
func (s *segment) finish() {
	if s.body != nil && s.skip == 0 && s.bodyEnd == s.end {
		var b [1]byte
		_, _ = s.timedRead(b[:])
	}
	s.close()
}

// close drops the current connection, unless its body was read to EOF.
func (s *segment) close() {
	if s.body != nil {
		s.body.Close()
		s.body = nil
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.stop != nil {
		s.stop(nil)
		s.stop = nil
	}
	s.reqCtx = nil
}

// parseContentRange reads "bytes first-last/total" into [start, end) and
// total, which is -1 for "*". ok is false when the range cannot be read;
// total is still returned when it can be.
func parseContentRange(v string) (start, end, total int64, ok bool) {
	total = -1
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, -1, false
	}
	rng, tot, found := strings.Cut(strings.TrimSpace(rest), "/")
	if !found {
		return 0, 0, -1, false
	}
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t < 0 {
			return 0, 0, -1, false
		}
		total = t
	}
	first, last, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, total, false
	}
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || a < 0 || b < a || (total >= 0 && b >= total) {
		return 0, 0, total, false
	}
	return a, b + 1, total, true
}
