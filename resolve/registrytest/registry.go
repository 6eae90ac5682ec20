package registrytest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Service is the service name the token server expects and the registry
// names in its Bearer challenges.
const Service = "registrytest"

// DefaultTokenTTL is how long a token lives unless [WithTokenTTL] says
// otherwise.
const DefaultTokenTTL = 5 * time.Minute

// An Option configures a [Registry] made by [New] or [NewT].
type Option func(*config)

type authMode int

const (
	authNone authMode = iota
	authBasic
	authToken
)

type config struct {
	tls             bool
	auth            authMode
	user, pass      string
	anonAll         bool
	anonRepos       map[string]bool
	denied          map[string]bool
	tokenTTL        time.Duration
	tokenPOSTStatus int
	faults          []Fault
}

// WithTLS serves the registry, its CDN and its token server over HTTPS with
// httptest's certificate for 127.0.0.1. [Registry.Client] trusts it. The
// default is plain HTTP.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// WithBasicAuth makes the registry require HTTP Basic credentials user and
// pass: requests without them, or with others, are answered 401 with
// `WWW-Authenticate: Basic realm="registrytest"`. The default is no
// authentication. The last of WithBasicAuth and [WithTokenAuth] wins.
func WithBasicAuth(user, pass string) Option {
	return func(c *config) { c.auth, c.user, c.pass = authBasic, user, pass }
}

// WithTokenAuth makes the registry require Bearer tokens from its own token
// server (see [Registry.TokenURL]), which grants them to user and pass, and
// to anonymous clients for the repositories [WithAnonymousPull] names. The
// default is no authentication. The last of [WithBasicAuth] and
// WithTokenAuth wins.
func WithTokenAuth(user, pass string) Option {
	return func(c *config) { c.auth, c.user, c.pass = authToken, user, pass }
}

// WithAnonymousPull lets clients without credentials pull the repositories
// named, or every repository when none is named. With Basic auth they read
// without credentials; with token auth the token server grants them pull
// tokens for those repositories. Without it, anonymous clients get nothing.
// It has no effect without authentication. Several calls add up.
func WithAnonymousPull(repos ...string) Option {
	return func(c *config) {
		if len(repos) == 0 {
			c.anonAll = true
			return
		}
		if c.anonRepos == nil {
			c.anonRepos = map[string]bool{}
		}
		for _, r := range repos {
			c.anonRepos[r] = true
		}
	}
}

// WithDeniedRepos denies the repositories named to everyone, authenticated
// or not: the registry answers 403 with the code DENIED once the client has
// authenticated (any client, when there is no authentication), and the
// token server grants no scope on them. Several calls add up.
func WithDeniedRepos(repos ...string) Option {
	return func(c *config) {
		if c.denied == nil {
			c.denied = map[string]bool{}
		}
		for _, r := range repos {
			c.denied[r] = true
		}
	}
}

// WithTokenTTL sets how long the token server's access tokens live, and the
// expires_in it reports (in whole seconds, rounded up). d <= 0 means
// [DefaultTokenTTL]. A tiny d, such as time.Nanosecond, issues tokens that
// have expired by the time they are used; [Registry.ExpireTokens] expires
// the issued ones on demand.
func WithTokenTTL(d time.Duration) Option {
	return func(c *config) { c.tokenTTL = d }
}

// WithTokenPOSTStatus makes the token server answer every POST (the OAuth2
// form) with status code and no token, as some registries do (GCR answered
// 404, Artifactory 401, ACR 400), so clients can test their fallback to GET.
// The default, 0, serves POST normally.
func WithTokenPOSTStatus(code int) Option {
	return func(c *config) { c.tokenPOSTStatus = code }
}

// WithFault injects f from the start, as [Registry.Inject] would. Several
// calls add up, in order.
func WithFault(f Fault) Option {
	return func(c *config) { c.faults = append(c.faults, f) }
}

// A Registry is an in-process OCI distribution registry for tests, with a
// token server and a CDN beside it. Its methods are safe for concurrent use.
type Registry struct {
	cfg     config
	srv     *httptest.Server
	cdn     *httptest.Server
	tokens  *httptest.Server // nil without token auth
	closing chan struct{}
	once    sync.Once

	mu       sync.Mutex
	blobs    map[digest.Digest][]byte
	repos    map[string]*repository
	uploads  map[string]*upload
	faults   []*Injection
	requests []*Request
	served   int64
	perBlob  map[digest.Digest]int64
	access   map[string]*token // access token → grant
	refresh  map[string]string // refresh token → user
	cdnAuth  bool              // the CDN saw an Authorization header
	seq      uint64            // upload ids
	gen      uint64            // bumped by ResetStats
}

// New starts a registry on 127.0.0.1, on a free port, with a CDN server
// beside it and, with [WithTokenAuth], a token server. The registry starts
// empty; push content with [Registry.PushBlob], [Registry.PushManifest],
// [Registry.PushImage] and [Registry.PushIndex], or over HTTP. Close it
// when done. It panics if it cannot listen, as httptest does.
func New(opts ...Option) *Registry {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.tokenTTL <= 0 {
		cfg.tokenTTL = DefaultTokenTTL
	}
	r := &Registry{
		cfg:     cfg,
		closing: make(chan struct{}),
		blobs:   map[digest.Digest][]byte{},
		repos:   map[string]*repository{},
		uploads: map[string]*upload{},
		perBlob: map[digest.Digest]int64{},
		access:  map[string]*token{},
		refresh: map[string]string{},
	}
	for _, f := range cfg.faults {
		r.Inject(f)
	}
	r.srv = r.start(http.HandlerFunc(r.serveRegistry))
	r.cdn = r.start(http.HandlerFunc(r.serveCDN))
	if cfg.auth == authToken {
		r.tokens = r.start(http.HandlerFunc(r.serveToken))
	}
	return r
}

// NewT is [New] for a test: it registers [Registry.Close] with t.Cleanup.
func NewT(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r := New(opts...)
	t.Cleanup(r.Close)
	return r
}

func (r *Registry) start(h http.Handler) *httptest.Server {
	s := httptest.NewUnstartedServer(h)
	// Clients that reject the test certificate or drop connections make the
	// server log; that is the test's business, not noise for its output.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	if r.cfg.tls {
		s.StartTLS()
	} else {
		s.Start()
	}
	return s
}

// Close stops the registry, its CDN and its token server, and closes the
// connections of requests still being served, so that it returns even when
// a client stopped reading a body. Bodies being trickled or stalled by a
// fault end at once. Close may be called more than once.
func (r *Registry) Close() {
	r.once.Do(func() {
		close(r.closing)
		for _, s := range []*httptest.Server{r.srv, r.cdn, r.tokens} {
			if s != nil {
				s.CloseClientConnections()
				s.Close()
			}
		}
	})
}

// URL returns the registry's base URL, "http://127.0.0.1:port" (https with
// [WithTLS]), without a trailing slash.
func (r *Registry) URL() string { return r.srv.URL }

// Host returns the registry's "127.0.0.1:port", the host part of image
// references that name it.
func (r *Registry) Host() string { return r.srv.Listener.Addr().String() }

// Client returns an HTTP client for the registry, its CDN and its token
// server; with [WithTLS] it trusts their certificate. Like any
// *http.Client it follows redirects, and it forwards an Authorization header
// it was given to the CDN, which shares the registry's host name: the CDN
// rejects such requests.
func (r *Registry) Client() *http.Client { return r.srv.Client() }

// CDNURL returns the base URL of the CDN that [FaultRedirect] sends blob
// requests to.
func (r *Registry) CDNURL() string { return r.cdn.URL }

// TokenURL returns the token server's endpoint, the realm of the registry's
// Bearer challenges, or "" without [WithTokenAuth].
func (r *Registry) TokenURL() string {
	if r.tokens == nil {
		return ""
	}
	return r.tokens.URL + "/token"
}

// denied reports whether repo is denied by [WithDeniedRepos].
func (r *Registry) denied(repo string) bool { return r.cfg.denied[repo] }

// anonymous reports whether anonymous clients may pull repo.
func (r *Registry) anonymous(repo string) bool {
	return r.cfg.anonAll || r.cfg.anonRepos[repo]
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
