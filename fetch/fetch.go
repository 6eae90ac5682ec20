package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pullkit/pullkit/internal/httpx"

	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/handlers"
)

// Fetcher opens blobs for reading.
type Fetcher interface {
	// Fetch returns a reader of the blob desc. The reader returns at most
	// desc.Size bytes; it does not verify the digest (the store does, when
	// the blob is committed). The caller closes it.
	Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// FetcherFunc adapts a function to a [Fetcher]. A nil FetcherFunc panics
// when called.
type FetcherFunc func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)

// Fetch calls f(ctx, desc).
func (f FetcherFunc) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return f(ctx, desc)
}

// ResumeFetcher is a [Fetcher] that can start at an offset, so that an
// interrupted download resumes without fetching the bytes it already has.
// [Handler] uses it, when its Fetcher has it, to resume an ingest.
type ResumeFetcher interface {
	Fetcher
	// FetchFrom is Fetch, but the reader starts at byte offset of the blob,
	// which must be in [0, desc.Size].
	FetchFrom(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error)
}

// Doer sends an HTTP request and returns its response. *http.Client and
// *auth.Client are Doers.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

var (
	_ Fetcher       = FetcherFunc(nil)
	_ Fetcher       = (*Repository)(nil)
	_ ResumeFetcher = (*Repository)(nil)
	_ Doer          = (*http.Client)(nil)
	_ Doer          = (*auth.Client)(nil)
)

// maxRedirects is how many redirects one request follows.
const maxRedirects = 10

// Repository fetches the blobs of one repository of one registry host. It
// is safe for concurrent use, and cheap: create one per host and
// repository.
type Repository struct {
	repo     string
	cfg      config
	base     *url.URL // <scheme>://<host><prefix>/<repo>
	origin   string
	registry Doer       // sends requests to the registry's origin
	plain    Doer       // sends requests that must carry no credentials
	bufs     *chunkBufs // the budget of split downloads, all blobs together
}

// New returns a Repository that fetches blobs of repo ("library/alpine")
// from the registry API at host ("ghcr.io", "localhost:5000"), which is the
// host requests go to, not a docker.io-style alias. See the [Option]s for
// the defaults: https, http.DefaultClient, 5 retries, and downloads of
// 8 MiB and more split into parallel chunks when one stream is slow.
func New(host, repo string, opts ...Option) *Repository {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	scheme := "https"
	if cfg.plainHTTP {
		scheme = "http"
	}
	repo = strings.Trim(repo, "/")
	r := &Repository{
		repo: repo,
		cfg:  cfg,
		base: &url.URL{Scheme: scheme, Host: host, Path: cfg.pathPrefix + "/" + repo},
	}
	r.origin = originOf(r.base)
	r.registry, r.plain = cfg.client, noRedirects(http.DefaultClient)
	if hc, ok := cfg.client.(*http.Client); ok {
		r.registry = noRedirects(hc)
		r.plain = r.registry
	}
	r.bufs = newChunkBufs(cfg.chunkSize, int(max(cfg.chunkMemory/cfg.chunkSize, 1)))
	return r
}

// noRedirects returns a copy of hc that hands redirects back to the caller.
func noRedirects(hc *http.Client) *http.Client {
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// Fetch returns a reader of the blob desc. It sends the first request
// before returning, so a missing blob or a refused request is an error of
// Fetch (a [*ResponseError], classified with errdefs), after retries.
//
// Manifests and indexes (by media type) are fetched from
// /v2/<repo>/manifests/<digest> with an Accept header for their media
// type, everything else from /v2/<repo>/blobs/<digest>. A descriptor with a
// zero Size gives an empty reader without a request.
//
// The reader survives broken connections: it resumes with a Range request
// at the first byte it has not delivered, or, from a server that ignores
// Range, discards the bytes it already delivered, so the stream stays
// exact. It never returns more than desc.Size bytes, and fails with an
// error that matches io.ErrUnexpectedEOF (and the last failure's class)
// when it cannot get them all. It implements io.Seeker: seeking closes the
// current connection and the next Read asks for the new offset with Range.
// Reading stops promptly when ctx is done; ctx must stay live while the
// reader is used. The caller closes the reader. It does not verify the
// digest: the store does when it commits.
func (r *Repository) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return r.FetchFrom(ctx, desc, 0)
}

// FetchFrom is [Repository.Fetch] from byte offset, which must be in
// [0, desc.Size]: the first request asks for the blob from offset with a
// Range header (or, for a large blob, for the chunk there).
func (r *Repository) FetchFrom(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("fetch %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("fetch %s: negative size %d: %w", desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	if offset < 0 || offset > desc.Size {
		return nil, fmt.Errorf("fetch %s: offset %d outside [0, %d]: %w", desc.Digest, offset, desc.Size, errdefs.ErrInvalidArgument)
	}
	rd := newReader(ctx, r, desc, offset)
	err := rd.open()
	rd.flush()
	if err != nil {
		rd.Close()
		return nil, fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	return rd, nil
}

// source is where a blob is fetched from: the registry, or a foreign URL.
type source struct {
	url      *url.URL
	registry bool // the registry: credentials and configured headers allowed on its origin
}

// sources lists where desc may be fetched from, in order.
func (r *Repository) sources(desc ocispec.Descriptor) []source {
	var out []source
	if r.cfg.foreign {
		for _, s := range desc.URLs {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !r.foreignAllowed(u.Host) {
				continue
			}
			out = append(out, source{url: u})
		}
	}
	return append(out, r.registrySource(desc))
}

// registrySource is the registry's URL of desc: under manifests/ for
// manifests and indexes (by media type), else under blobs/.
func (r *Repository) registrySource(desc ocispec.Descriptor) source {
	kind := "blobs"
	if isManifestType(desc.MediaType) {
		kind = "manifests"
	}
	u := *r.base
	u.Path += "/" + kind + "/" + desc.Digest.String()
	return source{url: &u, registry: true}
}

// isManifestType reports whether mt is fetched from the manifests
// endpoint, with an Accept header naming it.
func isManifestType(mt string) bool {
	return handlers.IsManifest(mt) || handlers.IsIndex(mt) || handlers.IsSchema1(mt)
}

func (r *Repository) foreignAllowed(host string) bool {
	if len(r.cfg.foreignHosts) == 0 {
		return true
	}
	host = strings.ToLower(host)
	for _, re := range r.cfg.foreignHosts {
		if re.MatchString(host) {
			return true
		}
	}
	return false
}

// byteRange is the part of a blob a request asks for: [from, to), or all
// of it when from is 0 and to is the blob's size.
type byteRange struct{ from, to, size int64 }

func (b byteRange) header() string {
	switch {
	case b.from == 0 && b.to >= b.size:
		return ""
	case b.to >= b.size:
		return fmt.Sprintf("bytes=%d-", b.from)
	}
	return fmt.Sprintf("bytes=%d-%d", b.from, b.to-1)
}

// send sends a GET or HEAD (method) of src with the given range and
// returns the response, whatever its status, following up to maxRedirects
// redirects with the same method. A hop to another origin than the
// registry's carries no Authorization, no configured headers but
// User-Agent, and goes through the plain client.
func (r *Repository) send(ctx context.Context, method string, src source, desc ocispec.Descriptor, br byteRange) (*http.Response, error) {
	u := src.url
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v: %w", method, httpx.RedactURL(u), err, errdefs.ErrInvalidArgument)
		}
		trusted := src.registry && originOf(u) == r.origin
		if trusted {
			for k, vs := range r.cfg.header {
				req.Header[k] = append([]string(nil), vs...)
			}
		} else if ua := r.cfg.header.Get("User-Agent"); ua != "" {
			req.Header.Set("User-Agent", ua)
		}
		if src.registry && isManifestType(desc.MediaType) {
			req.Header.Set("Accept", desc.MediaType)
		}
		// Go's transport would otherwise ask for gzip and decompress
		// transparently, which breaks byte offsets.
		req.Header.Set("Accept-Encoding", "identity")
		if h := br.header(); h != "" {
			req.Header.Set("Range", h)
		}
		doer := r.plain
		if trusted {
			doer = r.registry
		} else {
			req.Header.Del("Authorization")
		}
		resp, err := doer.Do(req)
		if err != nil {
			return nil, redactError(err)
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
			http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			return resp, nil
		}
		loc := resp.Header.Get("Location")
		if loc == "" {
			return resp, nil
		}
		drain(resp)
		if hop >= maxRedirects {
			return nil, fmt.Errorf("%s %s: stopped after %d redirects: %w", method, httpx.RedactURL(src.url), maxRedirects, errdefs.ErrUnavailable)
		}
		next, err := u.Parse(loc)
		if err != nil || (next.Scheme != "http" && next.Scheme != "https") {
			return nil, fmt.Errorf("%s %s: redirect to an unusable Location: %w", method, httpx.RedactURL(u), errdefs.ErrUnavailable)
		}
		r.log(ctx, slog.LevelDebug, "redirect", desc, slog.String("from", httpx.RedactURL(u)), slog.String("to", httpx.RedactURL(next)))
		u = next
	}
}

// drain reads a little of an unused body, so the connection may be
// reused, and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
}

// originOf returns scheme://host:port of u, with the scheme's default port
// spelled out, so that "host" and "host:443" are one origin.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// retryable reports whether a failure of a request may go away if the
// request is sent again.
func retryable(err error) bool {
	var re *ResponseError
	if errors.As(err, &re) {
		switch c := re.StatusCode; {
		case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
			return re.RetryAfter == 0
		case c == http.StatusNotImplemented, c == http.StatusHTTPVersionNotSupported:
			return false
		case c >= 500 && c <= 599:
			return re.RetryAfter == 0
		}
		return false
	}
	switch {
	case httpx.Permanent(err):
		return false
	case errdefs.IsInvalidArgument(err), errdefs.IsFailedPrecondition(err), errdefs.IsNotImplemented(err):
		return false
	}
	return true
}

// backoff returns the wait before the attempt-th retry in a row.
func (r *Repository) backoff(attempt int) time.Duration {
	d := r.cfg.backoff
	for i := 1; i < attempt && d < r.cfg.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.cfg.maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// log logs msg about desc when a logger is set.
func (r *Repository) log(ctx context.Context, level slog.Level, msg string, desc ocispec.Descriptor, attrs ...slog.Attr) {
	if r.cfg.logger == nil {
		return
	}
	attrs = append([]slog.Attr{slog.String("digest", desc.Digest.String()), slog.String("repository", r.repo)}, attrs...)
	r.cfg.logger.LogAttrs(ctx, level, "fetch: "+msg, attrs...)
}
