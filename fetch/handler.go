package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
)

// Progress events are sent when this many bytes, or this much time, passed
// since the last one.
const (
	progressBytes    = 1 << 20
	progressInterval = 100 * time.Millisecond
)

// HandlerOption configures a [Handler].
type HandlerOption func(*handlerConfig)

type handlerConfig struct {
	progress func(Event)
}

// WithProgress sets a function that receives the handler's [Started],
// [Resumed], [Progress], [Committed] and [Skipped] events. It is called on
// the goroutine that handles the blob, so never concurrently for one blob,
// but concurrently for blobs handled in parallel (handlers.Dispatch). It
// must not block. Pass the same function to [WithObserver] to see retries
// too. The default, and nil, is no observer.
func WithProgress(fn func(Event)) HandlerOption {
	return func(c *handlerConfig) { c.progress = fn }
}

// IngestRef returns the ingest ref [Handler] writes desc under:
// "<kind>-<digest>", where kind is "index", "manifest", "config", "layer"
// or "blob" by media type. It is stable across runs, so that a download
// cut short resumes where it stopped; use it to look up or abort the ingest.
func IngestRef(desc ocispec.Descriptor) string {
	kind := "blob"
	switch mt := desc.MediaType; {
	case handlers.IsIndex(mt):
		kind = "index"
	case handlers.IsManifest(mt), handlers.IsSchema1(mt):
		kind = "manifest"
	case handlers.IsConfig(mt):
		kind = "config"
	case handlers.IsLayer(mt):
		kind = "layer"
	}
	return kind + "-" + desc.Digest.String()
}

// Handler returns a handler that copies each blob it is given from f into
// ingester, verified against the descriptor's size and digest, and returns
// no children (compose it with handlers.Children to walk an image).
//
// The ingest ref is [IngestRef](desc). A blob the store already has is not
// fetched ([Skipped]). While another writer holds the ref (a concurrent
// pull of the same blob), the handler waits for it, and is done if that
// writer commits. An ingest left by an earlier, interrupted attempt is
// resumed at its offset: with [ResumeFetcher.FetchFrom] when f has it, so
// the first request asks for the missing bytes only, else by seeking the
// reader. Bytes that fail verification are not committed: the handler
// aborts the ingest, so that the next attempt starts clean, and returns an
// error that matches content.ErrDigestMismatch (a *content.MismatchError).
// Any other failure leaves the ingest for the next attempt to resume.
func Handler(ingester content.Ingester, f Fetcher, opts ...HandlerOption) handlers.HandlerFunc {
	var cfg handlerConfig
	for _, o := range opts {
		o(&cfg)
	}
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if err := desc.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("fetch %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		if desc.Size < 0 {
			return nil, fmt.Errorf("fetch %s: negative size %d: %w", desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
		}
		emit := func(ev Event) {
			if cfg.progress != nil {
				ev.Desc, ev.Total = desc, desc.Size
				cfg.progress(ev)
			}
		}
		ref := IngestRef(desc)
		w, err := content.OpenWriter(ctx, ingester, content.WithRef(ref), content.WithDescriptor(desc))
		if errdefs.IsAlreadyExists(err) {
			emit(Event{Kind: Skipped, Offset: desc.Size})
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", desc.Digest, err)
		}
		err = copyBlob(ctx, w, f, desc, emit)
		w.Close() // after a commit, a no-op
		if err != nil {
			if errors.Is(err, content.ErrDigestMismatch) {
				abort(ctx, ingester, ref, desc)
			}
			return nil, err // it names the blob already
		}
		emit(Event{Kind: Committed, Offset: desc.Size})
		return nil, nil
	}
}

// copyBlob fetches desc from where w's ingest stops and commits it. Its
// errors name the blob: the fetcher's and content.Copy's do.
func copyBlob(ctx context.Context, w content.Writer, f Fetcher, desc ocispec.Descriptor, emit func(Event)) error {
	st, err := w.Status()
	if err != nil {
		return fmt.Errorf("fetch %s: ingest status: %w", desc.Digest, err)
	}
	offset := st.Offset
	if offset > desc.Size {
		offset = 0 // content.Copy truncates such an ingest
	}
	emit(Event{Kind: Started, Offset: offset})
	if offset > 0 {
		emit(Event{Kind: Resumed, Offset: offset})
	}
	var rc io.ReadCloser
	if rf, ok := f.(ResumeFetcher); ok && offset > 0 {
		rc, err = rf.FetchFrom(ctx, desc, offset)
	} else {
		rc, err = f.Fetch(ctx, desc)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	pw := &progressWriter{Writer: w, offset: offset, emit: emit, last: time.Now(), lastOff: offset}
	return content.Copy(ctx, pw, rc, desc.Size, desc.Digest)
}

// abort discards the ingest ref, through the store's IngestManager when it
// has one, else by truncating it, so the next attempt starts clean.
func abort(ctx context.Context, ingester content.Ingester, ref string, desc ocispec.Descriptor) {
	ctx = context.WithoutCancel(ctx)
	if im, ok := ingester.(content.IngestManager); ok {
		if err := im.Abort(ctx, ref); err == nil || errdefs.IsNotFound(err) {
			return
		}
	}
	w, err := ingester.Writer(ctx, content.WithRef(ref), content.WithDescriptor(desc))
	if err != nil {
		return
	}
	_ = w.Truncate(0)
	w.Close()
}

// progressWriter counts the bytes written to the ingest and emits
// throttled Progress events.
type progressWriter struct {
	content.Writer
	offset  int64
	emit    func(Event)
	last    time.Time
	lastOff int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.Writer.Write(b)
	p.offset += int64(n)
	if p.offset-p.lastOff >= progressBytes {
		p.report()
	} else if now := time.Now(); now.Sub(p.last) >= progressInterval {
		p.report()
	}
	return n, err
}

func (p *progressWriter) report() {
	p.last, p.lastOff = time.Now(), p.offset
	p.emit(Event{Kind: Progress, Offset: p.offset})
}
