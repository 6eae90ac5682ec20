package resolve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/reference"
)

// Resolver turns image references into descriptors and gives access to
// their content.
type Resolver interface {
	// Resolve returns the normalized name of ref
	// ("docker.io/library/alpine:3.20") and the descriptor of the manifest
	// or index it points at: media type, digest and size.
	Resolve(ctx context.Context, ref string) (name string, desc ocispec.Descriptor, err error)
	// Fetcher returns a Fetcher for the content of ref's repository: the
	// manifests, indexes, configs and layers Resolve's descriptor leads to.
	Fetcher(ctx context.Context, ref string) (fetch.Fetcher, error)
}

// Defaults of the [Option]s.
const (
	// DefaultManifestLimit is the largest manifest or index Resolve reads.
	DefaultManifestLimit = 4 << 20
	// DefaultRetries is how many times Resolve retries a transient failure
	// of the last host.
	DefaultRetries = 2
)

// Retry timing of Resolve.
const (
	retryBackoff    = 200 * time.Millisecond
	retryMaxBackoff = 5 * time.Second
	// maxRetryAfter is the longest Retry-After that Resolve waits for.
	maxRetryAfter = 30 * time.Second
	// manifestTimeout bounds one HEAD-then-GET of a manifest, which is
	// small; blob downloads have no such limit.
	manifestTimeout = 2 * time.Minute
	// maxAuthClients bounds the auth clients kept for distinct
	// Host.Clients, in case a HostsFunc makes a new one per call.
	maxAuthClients = 256
)

// Option configures a [Registry].
type Option func(*config)

type config struct {
	hosts     HostsFunc
	keychain  auth.Keychain
	client    fetch.Doer
	fetchOpts []fetch.Option
	observer  func(fetch.Event)
	logger    *slog.Logger
	limit     int64
	retries   int
}

// WithHosts sets where a registry's content is asked for: its mirrors and
// itself, in order. The default, and nil, is Hosts() with no options: the
// registry itself, registry-1.docker.io for docker.io, plain HTTP for
// loopback hosts.
func WithHosts(fn HostsFunc) Option {
	return func(c *config) { c.hosts = fn }
}

// WithKeychain sets where credentials come from. Requests to each host
// go through an *auth.Client that asks k for that host's credentials
// (mirrors get their own, never the registry's) and answers Bearer and
// Basic challenges; tokens are cached for the life of the Registry. The
// default, and nil, is auth.Anonymous: anonymous tokens only, which is
// enough for public images on Docker Hub and most registries.
func WithKeychain(k auth.Keychain) Option {
	return func(c *config) { c.keychain = k }
}

// WithClient sets the Doer that sends requests to hosts without a Client
// of their own ([Host].Client nil), as it is: pass an *auth.Client to
// authenticate; a plain *http.Client sends no credentials, and
// [WithKeychain] does not apply to it. Hosts with their own Client (TLS
// settings) still use it, wrapped with the keychain. The default, and
// nil, is an *auth.Client with the keychain over a shared, pooled
// *http.Client (HTTP/2, 32 idle connections per host, bounded dial, TLS
// handshake and response-header waits, no limit on body time).
func WithClient(d fetch.Doer) Option {
	return func(c *config) { c.client = d }
}

// WithFetchOptions adds options to the fetch.Repository made for each
// host by [Registry.Fetcher], after the resolver's own (client, scheme,
// path, headers, observer, logger), so they can tune retries, chunking,
// stall timeout or foreign layers. Mirrors are made with
// fetch.WithRetries(0) after these, so that a failing mirror hands the
// request to the next host at once; the last host keeps the retries set
// here (fetch.DefaultRetries by default). Several calls add up.
func WithFetchOptions(opts ...fetch.Option) Option {
	return func(c *config) { c.fetchOpts = append(c.fetchOpts, opts...) }
}

// WithObserver sets a function that receives a [fetch.Resolved] event
// for each resolved reference, and the Retried and Resumed events of the
// fetchers (fetch.WithObserver). It must not block, and may be called
// concurrently. The default, and nil, is no observer.
func WithObserver(fn func(fetch.Event)) Option {
	return func(c *config) { c.observer = fn }
}

// WithLogger sets where failovers between hosts (Info) and the host that
// answered (Debug) are logged; the fetchers log to it too. Nothing logged
// carries credentials. The default, and nil, is to log nothing.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithManifestLimit sets the largest manifest or index, in bytes, that
// Resolve accepts; a larger one fails with a *content.LimitError (which
// matches content.ErrTooLarge) before its body is read. The default, and
// n <= 0, is [DefaultManifestLimit] (4 MiB).
func WithManifestLimit(n int64) Option {
	return func(c *config) {
		if n <= 0 {
			n = DefaultManifestLimit
		}
		c.limit = n
	}
}

// WithRetries sets how many times Resolve retries a transient failure
// (a transport error, 408, 429, or a 5xx other than 501 and 505) of the
// last host, with exponential backoff from 200ms, honouring a Retry-After
// of up to 30s; a longer one fails at once. Earlier hosts are never
// retried: the next host is asked instead. The default is
// [DefaultRetries]; n < 0 means 0. Retries of blob downloads are set with
// WithFetchOptions(fetch.WithRetries(n)).
func WithRetries(n int) Option {
	return func(c *config) { c.retries = max(n, 0) }
}

// Registry is the [Resolver] for OCI and Docker registries, with mirrors
// and failover. It is safe for concurrent use; share one per program, so
// that connections and tokens are reused.
type Registry struct {
	cfg config

	mu          sync.Mutex
	authClients map[*http.Client]*auth.Client
}

var _ Resolver = (*Registry)(nil)

// New returns a Registry configured by opts. See the [Option]s for the
// defaults.
func New(opts ...Option) *Registry {
	cfg := config{limit: DefaultManifestLimit, retries: DefaultRetries}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.hosts == nil {
		cfg.hosts = Hosts()
	}
	if cfg.keychain == nil {
		cfg.keychain = auth.Anonymous
	}
	return &Registry{cfg: cfg, authClients: map[*http.Client]*auth.Client{}}
}

// Resolve parses ref (see package reference) and asks the hosts that can
// resolve (CapabilityResolve), in order, for its manifest, as described
// in the package documentation. It returns the normalized name
// ("docker.io/library/alpine:3.20") and the manifest's descriptor, and
// sends a [fetch.Resolved] event to the observer.
//
// Errors: an invalid ref matches errdefs.ErrInvalidArgument; a registry
// with no resolve host errdefs.ErrFailedPrecondition; otherwise the error
// is an [*Error] that lists every host's answer and is classified by the
// last one: errdefs.ErrNotFound, ErrUnauthenticated, ErrPermissionDenied,
// ErrUnavailable (429, 5xx), content.ErrDigestMismatch or
// content.ErrTooLarge.
func (r *Registry) Resolve(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	parsed, err := reference.Parse(ref)
	if err != nil {
		return "", ocispec.Descriptor{}, err
	}
	name := parsed.String()
	hosts, err := r.hostsFor(parsed.Registry, CapabilityResolve)
	if err != nil {
		return "", ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", name, err)
	}
	var fails []HostError
	for i, h := range hosts {
		desc, err := r.resolveOn(ctx, h, parsed, i == len(hosts)-1)
		if err == nil {
			r.log(ctx, slog.LevelDebug, "resolve: resolved", slog.String("ref", name), slog.String("host", h.String()), slog.String("digest", desc.Digest.String()))
			if r.cfg.observer != nil {
				r.cfg.observer(fetch.Event{Kind: fetch.Resolved, Desc: desc, Total: desc.Size})
			}
			return name, desc, nil
		}
		if ctx.Err() != nil {
			return "", ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", name, err)
		}
		he := HostError{Host: h.String(), Err: err}
		fails = append(fails, he)
		if i < len(hosts)-1 {
			r.log(ctx, slog.LevelInfo, "resolve: host failed, trying the next", slog.String("ref", name), slog.String("error", he.Error()))
		}
	}
	return "", ocispec.Descriptor{}, &Error{Op: "resolve " + name, Registry: parsed.Registry, Hosts: fails}
}

// hostsFor returns registry's hosts that have capability want.
func (r *Registry) hostsFor(registry string, want Capability) ([]Host, error) {
	all, err := r.cfg.hosts(registry)
	if err != nil {
		return nil, err
	}
	var hosts []Host
	for _, h := range all {
		if h.Host != "" && h.Capabilities.Has(want) {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("no host of %s can %s: check the hosts configuration (capabilities, WithoutFallback): %w",
			registry, want, errdefs.ErrFailedPrecondition)
	}
	return hosts, nil
}

// resolveOn resolves ref on h, retrying transient failures when h is the
// last host.
func (r *Registry) resolveOn(ctx context.Context, h Host, ref reference.Reference, last bool) (ocispec.Descriptor, error) {
	retries := 0
	if last {
		retries = r.cfg.retries
	}
	for attempt := 1; ; attempt++ {
		desc, err := r.resolveOnce(ctx, h, ref, last)
		if err == nil || attempt > retries || ctx.Err() != nil || !transient(err) {
			return desc, err
		}
		wait := backoff(attempt)
		var re *fetch.ResponseError
		if errors.As(err, &re) && re.RetryAfter > 0 {
			if re.RetryAfter > maxRetryAfter {
				return desc, err
			}
			wait = re.RetryAfter
		}
		r.log(ctx, slog.LevelInfo, "resolve: retrying", slog.String("host", h.String()), slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.String("error", err.Error()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return desc, err
		case <-t.C:
		}
	}
}

// backoff returns the wait before the attempt-th retry: a random time
// between half and all of 200ms×2^(attempt-1), capped at 5s.
func backoff(attempt int) time.Duration {
	d := retryBackoff
	for i := 1; i < attempt && d < retryMaxBackoff; i++ {
		d *= 2
	}
	d = min(d, retryMaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// doer returns what sends h's requests: the configured client for hosts
// without their own, else an auth.Client over h.Client, one per Client.
func (r *Registry) doer(h Host) fetch.Doer {
	hc := h.Client
	if hc == nil {
		if r.cfg.client != nil {
			return r.cfg.client
		}
		hc = sharedClient()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.authClients[hc]; ok {
		return c
	}
	if len(r.authClients) >= maxAuthClients {
		clear(r.authClients)
	}
	c := auth.NewClient(auth.WithHTTPClient(hc), auth.WithKeychain(r.cfg.keychain))
	r.authClients[hc] = c
	return c
}

func (r *Registry) log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if r.cfg.logger != nil {
		r.cfg.logger.LogAttrs(ctx, level, msg, attrs...)
	}
}
