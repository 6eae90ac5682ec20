package fetch

import (
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"time"
)

// Defaults of the [Option]s.
const (
	// DefaultRetries is how many times a failed request or a broken body is
	// retried, in a row, before Fetch or Read gives up.
	DefaultRetries = 5
	// DefaultBackoff and DefaultMaxBackoff bound the exponential backoff
	// between retries.
	DefaultBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	// DefaultMaxRetryAfter is the longest Retry-After wait that is honoured.
	DefaultMaxRetryAfter = time.Minute
	// DefaultStallTimeout is how long a connection may deliver no byte
	// before it is dropped and the download resumed on a new one.
	DefaultStallTimeout = 30 * time.Second
	// DefaultChunkSize and DefaultParallelism shape split downloads: a
	// download of at least 4 chunks (8 MiB) whose stream is slow goes on
	// over up to 4 connections, one chunk each. See [WithParallel].
	DefaultChunkSize   = 2 << 20
	DefaultParallelism = 4
	// DefaultChunkMemory bounds the chunks a Repository buffers, all
	// downloads together: 12 chunks, what 4 blobs downloaded at once (as
	// the root package's Pull does) use with 3 chunks each besides their
	// stream. See [WithChunkMemory].
	DefaultChunkMemory = 24 << 20
	// DefaultSplitBelow is the speed, in bytes per second, under which a
	// stream is split. See [WithSplitBelow].
	DefaultSplitBelow = 64e6
	// SplitAlways, given to [WithSplitBelow], splits every download large
	// enough from its first request, without measuring its stream.
	SplitAlways = math.MaxInt64
)

// Bounds that out-of-range option values are clamped to.
const (
	maxRetries     = 100
	minChunkSize   = 64 << 10
	maxChunkSize   = 256 << 20
	maxParallelism = 64
	// chunkThreshold is how many chunks a download must span to be chunked.
	chunkThreshold = 4
	// A stream is split when it was slow in slowWindows windows in a row,
	// each of 2 chunks or of probeTime spent waiting, whichever is first.
	slowWindows    = 2
	probeTime      = 100 * time.Millisecond
	minChunkMemory = 1 << 20
	maxChunkMemory = 4 << 30
)

// Option configures a [Repository]. Options are applied in order; a later
// option overrides an earlier one, except [WithHeader], whose headers add up.
type Option func(*config)

type config struct {
	client        Doer
	plainHTTP     bool
	pathPrefix    string
	header        http.Header
	retries       int
	backoff       time.Duration
	maxBackoff    time.Duration
	maxRetryAfter time.Duration
	stallTimeout  time.Duration
	chunkSize     int64
	parallelism   int
	chunkMemory   int64
	splitBelow    int64
	foreign       bool
	foreignHosts  []*regexp.Regexp
	observer      func(Event)
	logger        *slog.Logger
}

func defaultConfig() config {
	return config{
		client:        http.DefaultClient,
		pathPrefix:    "/v2",
		retries:       DefaultRetries,
		backoff:       DefaultBackoff,
		maxBackoff:    DefaultMaxBackoff,
		maxRetryAfter: DefaultMaxRetryAfter,
		stallTimeout:  DefaultStallTimeout,
		chunkSize:     DefaultChunkSize,
		parallelism:   DefaultParallelism,
		chunkMemory:   DefaultChunkMemory,
		splitBelow:    DefaultSplitBelow,
	}
}

// WithClient sets the Doer that sends registry requests. The default, and
// nil, is http.DefaultClient. Pass an *auth.Client to answer registry
// authentication challenges: every request's context names the pull scope
// of the repository (auth.WithScopes).
//
// When c is an *http.Client, redirects are followed by the Repository, not
// by c, so that no Authorization header reaches another scheme, host or
// port; an *auth.Client follows them itself with the same rule. Requests
// that must carry no credentials at all (redirect hops to another origin,
// foreign layer URLs) go through c when it is an *http.Client and through
// http.DefaultClient otherwise, never through an auth.Client.
func WithClient(c Doer) Option {
	return func(cfg *config) {
		if c == nil {
			c = http.DefaultClient
		}
		cfg.client = c
	}
}

// WithPlainHTTP makes requests to the registry use http instead of https.
// The default is https.
func WithPlainHTTP() Option {
	return func(cfg *config) { cfg.plainHTTP = true }
}

// WithPathPrefix sets the path of the registry API under the host, for
// mirrors that serve it elsewhere. The default, and "", is "/v2"; "/" means
// the API is at the root. A missing leading slash is added and a trailing
// slash removed: blob URLs are <scheme>://<host><prefix>/<repo>/blobs/<digest>.
func WithPathPrefix(p string) Option {
	return func(cfg *config) {
		switch {
		case p == "":
			p = "/v2"
		case p[0] != '/':
			p = "/" + p
		}
		for len(p) > 0 && p[len(p)-1] == '/' {
			p = p[:len(p)-1]
		}
		cfg.pathPrefix = p
	}
}

// WithHeader adds headers to every request sent to the registry's origin,
// such as a User-Agent. Headers from several calls add up. Only User-Agent
// is also sent to another origin (a CDN a blob is redirected to, a foreign
// layer URL). Range, Accept and Accept-Encoding are set by the Repository
// and override any given here. The default is no extra headers.
func WithHeader(h http.Header) Option {
	return func(cfg *config) {
		if cfg.header == nil {
			cfg.header = http.Header{}
		}
		for k, vs := range h {
			for _, v := range vs {
				cfg.header.Add(k, v)
			}
		}
	}
}

// WithRetries sets how many times in a row a failure is retried before
// the fetch gives up: a failed request (a transport error, a stall, 408,
// 429, or a 5xx other than 501 and 505) or a broken body. A body that broke
// after delivering bytes starts a new count, as its first failure, and is
// resumed at once, without backoff. The default is [DefaultRetries]; n < 0
// means 0 (no retries, no resumption) and n > 100 means 100.
func WithRetries(n int) Option {
	return func(cfg *config) { cfg.retries = min(max(n, 0), maxRetries) }
}

// WithBackoff sets the exponential backoff between retries: the k-th retry
// in a row waits a random time between half and all of base×2^(k-1),
// capped at maxWait. The defaults are [DefaultBackoff] and
// [DefaultMaxBackoff]; base <= 0 means the default, and maxWait < base
// means base.
func WithBackoff(base, maxWait time.Duration) Option {
	return func(cfg *config) {
		if base <= 0 {
			base = DefaultBackoff
		}
		cfg.backoff, cfg.maxBackoff = base, max(maxWait, base)
	}
}

// WithMaxRetryAfter caps the wait a 429 or 503 response may ask for with
// Retry-After (in seconds or as an HTTP date). A longer wait is not
// honoured: the fetch fails at once with a [*ResponseError] that matches
// errdefs.ErrUnavailable and carries the wait in RetryAfter. The default,
// and d <= 0, is [DefaultMaxRetryAfter].
func WithMaxRetryAfter(d time.Duration) Option {
	return func(cfg *config) {
		if d <= 0 {
			d = DefaultMaxRetryAfter
		}
		cfg.maxRetryAfter = d
	}
}

// WithStallTimeout sets how long a request may wait for its response
// headers, and a body for its next byte, before the connection is dropped
// and the download resumed on a new one (counted as a failure by
// [WithRetries] unless the body delivered bytes). The clock runs only while
// a read is waiting, not while the caller is busy between reads. The
// default, and d <= 0, is [DefaultStallTimeout].
func WithStallTimeout(d time.Duration) Option {
	return func(cfg *config) {
		if d <= 0 {
			d = DefaultStallTimeout
		}
		cfg.stallTimeout = d
	}
}

// WithParallel sets how a slow download of a large blob is split over
// several connections. The rule:
//
//   - A download starts as one stream, which the reader reads straight
//     into the caller's buffer: no copy, no buffer of its own.
//   - A download of at least 4×chunkSize bytes is split once its stream
//     proves slow: when, in two windows in a row, it delivered slower than
//     [WithSplitBelow]. A window is 2×chunkSize bytes or 100 ms, whichever
//     comes first, and counts only the time spent waiting for the
//     connection: a slow consumer does not make a stream slow, and a
//     moment of a busy machine does not either.
//     On a fast link, such as a registry on the same machine, downloads
//     stay single streams; behind a per-connection bandwidth cap (a CDN),
//     they split.
//   - Split, the download keeps its stream up to the next chunk boundary
//     and fetches the following chunks with Range requests, up to
//     parallelism connections in all, each chunk retried and resumed on
//     its own, in a buffer of chunkSize bytes. The reader gets the bytes in
//     order, as each chunk fills; once it has caught up with a chunk, it
//     reads the rest of it from the chunk's connection directly and frees
//     its buffer. So a download holds at most parallelism-1 buffers.
//   - Chunk buffers come from the Repository's budget, shared by all its
//     downloads ([WithChunkMemory]). When it is spent, a download goes on
//     with the connections it has, down to one stream, and never waits for
//     a buffer; so memory stays bounded however many blobs are in flight.
//   - A server that answers a Range request with the whole blob gets a
//     single stream.
//
// The defaults are [DefaultChunkSize] (2 MiB) and [DefaultParallelism]
// (4). chunkSize <= 0 means the default, and it is clamped to [64 KiB,
// 256 MiB]; parallelism <= 0 means the default, 1 turns splitting off,
// and more than 64 means 64.
func WithParallel(chunkSize int64, parallelism int) Option {
	return func(cfg *config) {
		if chunkSize <= 0 {
			chunkSize = DefaultChunkSize
		}
		if parallelism <= 0 {
			parallelism = DefaultParallelism
		}
		cfg.chunkSize = min(max(chunkSize, minChunkSize), maxChunkSize)
		cfg.parallelism = min(parallelism, maxParallelism)
	}
}

// WithChunkMemory bounds the bytes of chunk buffers the Repository's split
// downloads hold at once, all blobs together (see [WithParallel]): it
// allows n/chunkSize buffers, at least one. Buffers are allocated when a
// download splits, reused, and released when no split download is left.
// The default, and n <= 0, is [DefaultChunkMemory] (24 MiB); n is clamped
// to [1 MiB, 4 GiB].
func WithChunkMemory(n int64) Option {
	return func(cfg *config) {
		if n <= 0 {
			n = DefaultChunkMemory
		}
		cfg.chunkMemory = min(max(n, minChunkMemory), maxChunkMemory)
	}
}

// WithSplitBelow sets the speed, in bytes per second, under which the
// stream of a large download is split into parallel chunks (see
// [WithParallel]). [SplitAlways] splits large downloads from their first
// request, which asks for the first chunk only, for links known to cap
// each connection. The default, and rate <= 0, is [DefaultSplitBelow]
// (64 MB/s).
func WithSplitBelow(rate int64) Option {
	return func(cfg *config) {
		if rate <= 0 {
			rate = DefaultSplitBelow
		}
		cfg.splitBelow = rate
	}
}

// WithForeignLayers lets Fetch download blobs from the URLs their
// descriptors list (desc.URLs: Docker foreign layers, OCI non-distributable
// layers), before asking the registry. Only http and https URLs whose host
// (with its port, if any) fully matches one of hosts are used; with no
// hosts, every host matches. Those requests carry no credentials and no
// headers but User-Agent. When every allowed URL fails, Fetch falls back to
// the registry. The default is to ignore desc.URLs and always use the
// registry.
func WithForeignLayers(hosts ...*regexp.Regexp) Option {
	return func(cfg *config) {
		cfg.foreign = true
		cfg.foreignHosts = cfg.foreignHosts[:0:0]
		for _, re := range hosts {
			if re != nil {
				// Anchor the pattern: "mcr\.microsoft\.com" must not match
				// "mcr.microsoft.com.example".
				cfg.foreignHosts = append(cfg.foreignHosts, regexp.MustCompile(`^(?:`+re.String()+`)$`))
			}
		}
	}
}

// WithObserver sets a function that receives the download's [Retried] and
// [Resumed] events. It is called on the goroutine that calls Fetch or the
// reader's Read, so never concurrently for one blob, but concurrently for
// blobs read on several goroutines. It must not block. The default, and
// nil, is no observer. See [WithProgress] for a handler's events.
func WithObserver(fn func(Event)) Option {
	return func(cfg *config) { cfg.observer = fn }
}

// WithLogger sets where retries, resumptions, redirects and fallbacks are
// logged (at Info and Debug levels). URLs are logged without their query
// and nothing logged carries credentials. The default, and nil, is to log
// nothing.
func WithLogger(l *slog.Logger) Option {
	return func(cfg *config) { cfg.logger = l }
}
