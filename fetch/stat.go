package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/internal/httpx"
)

// Stat returns the size of the blob desc.Digest as the registry tells it,
// without downloading the blob: for content whose descriptor does not
// record a size, such as the layers of Docker schema 1 manifests (it makes
// a Repository a handlers/schema1 Stater). desc.Size is not used.
//
// It sends HEAD to /v2/<repo>/blobs/<digest>, or to
// /v2/<repo>/manifests/<digest> with an Accept header for manifests and
// indexes (by media type), and returns the response's Content-Length.
// desc.URLs are not used: the registry is asked. When the registry refuses
// HEAD (405 or 501), or answers it without a Content-Length, Stat sends a
// GET for the first byte ("Range: bytes=0-0") and reads the size from the
// Content-Range total, or, from a server that ignores Range, from the
// Content-Length of the whole blob, whose body it closes without reading
// it. A server that tells the size neither way is an error that matches
// errdefs.ErrNotImplemented.
//
// Redirects, credentials, retries and the stall timeout work as for
// [Repository.Fetch]: a hop to another origin carries no credentials;
// transport errors, stalls, 408, 429 and 5xx (but 501 and 505) are retried
// with backoff and Retry-After. A status that ends the request is a
// [*ResponseError], classified with errdefs: errdefs.IsNotFound(err) when
// the registry does not have the blob. Errors name the blob:
// "stat sha256:…: …". Stat reports no [Event]s; retries are logged.
func (r *Repository) Stat(ctx context.Context, desc ocispec.Descriptor) (int64, error) {
	if err := desc.Digest.Validate(); err != nil {
		return 0, fmt.Errorf("stat %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	ctx = auth.WithScopes(ctx, auth.RepositoryScope(r.repo, auth.ActionPull))
	src := r.registrySource(desc)
	for fails := 0; ; {
		size, err := r.statOnce(ctx, src, desc)
		if err == nil {
			return size, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return 0, fmt.Errorf("stat %s: %w", desc.Digest, cerr)
		}
		if !retryable(err) || fails >= r.cfg.retries {
			return 0, fmt.Errorf("stat %s: %w", desc.Digest, err)
		}
		fails++
		wait := r.backoff(fails)
		var re *ResponseError
		if errors.As(err, &re) && re.waitSet {
			wait = re.wait
		}
		r.log(ctx, slog.LevelInfo, "retrying stat", desc, slog.Int("attempt", fails),
			slog.Duration("wait", wait), slog.String("error", err.Error()))
		if err := sleep(ctx, wait); err != nil {
			return 0, fmt.Errorf("stat %s: %w", desc.Digest, err)
		}
	}
}

// statOnce asks src for the size of desc once: HEAD, then the GET
// fallback when HEAD does not tell it.
func (r *Repository) statOnce(ctx context.Context, src source, desc ocispec.Descriptor) (int64, error) {
	var why error // why HEAD did not tell the size
	size, err := r.stalling(ctx, func(ctx context.Context) (int64, error) {
		resp, err := r.send(ctx, http.MethodHead, src, desc, byteRange{})
		if err != nil {
			return 0, err
		}
		switch resp.StatusCode {
		case http.StatusOK:
			resp.Body.Close()
			if resp.ContentLength >= 0 {
				return resp.ContentLength, nil
			}
			why = fmt.Errorf("HEAD %s: no Content-Length", responseURL(resp, src))
			return -1, nil
		case http.StatusMethodNotAllowed, http.StatusNotImplemented:
			why = r.statusError(resp)
			return -1, nil
		}
		return 0, r.statusError(resp)
	})
	if err != nil || size >= 0 {
		return size, err
	}
	r.log(ctx, slog.LevelDebug, "HEAD did not tell the size: trying a GET of one byte", desc, slog.String("reason", why.Error()))

	return r.stalling(ctx, func(ctx context.Context) (int64, error) {
		// The blob's size is unknown: any size past byte 1 makes the
		// header "bytes=0-0".
		resp, err := r.send(ctx, http.MethodGet, src, desc, byteRange{from: 0, to: 1, size: math.MaxInt64})
		if err != nil {
			return 0, err
		}
		switch resp.StatusCode {
		case http.StatusOK:
			// Range ignored: the whole blob follows. Its length is in the
			// headers; the body is dropped unread.
			resp.Body.Close()
			if resp.ContentLength >= 0 {
				return resp.ContentLength, nil
			}
			return 0, fmt.Errorf("GET %s: no Content-Length either (%v): the registry does not tell the blob's size: %w",
				responseURL(resp, src), why, errdefs.ErrNotImplemented)
		case http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
			// 206 "bytes 0-0/<size>", or 416 "bytes */0" for an empty blob.
			cr := resp.Header.Get("Content-Range")
			if _, _, total, _ := parseContentRange(cr); total >= 0 {
				drain(resp)
				return total, nil
			}
			if resp.StatusCode == http.StatusPartialContent {
				drain(resp)
				return 0, fmt.Errorf("GET %s: Content-Range %q has no total (%v): the registry does not tell the blob's size: %w",
					responseURL(resp, src), cr, why, errdefs.ErrNotImplemented)
			}
		}
		return 0, r.statusError(resp)
	})
}

// responseURL is the redacted URL that resp answers, src's when unknown.
func responseURL(resp *http.Response, src source) string {
	if resp.Request != nil {
		return httpx.RedactURL(resp.Request.URL)
	}
	return httpx.RedactURL(src.url)
}

// stalling runs fn, which sends one request and reads no body, with a
// context that is canceled when fn has not returned within the stall
// timeout; fn's failure is then a *stallError.
func (r *Repository) stalling(ctx context.Context, fn func(context.Context) (int64, error)) (int64, error) {
	sctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	stall := r.cfg.stallTimeout
	timer := time.AfterFunc(stall, func() { stop(&stallError{stall}) })
	n, err := fn(sctx)
	timer.Stop()
	if err == nil {
		return n, nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return 0, cerr
	}
	var se *stallError
	if errors.As(context.Cause(sctx), &se) {
		return 0, se
	}
	return 0, err
}

// sleep waits for d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
