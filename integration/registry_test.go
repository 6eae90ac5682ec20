package integration

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	// Registered for their side effects: the storage driver and the access
	// controllers the registries below are configured with.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

func TestMain(m *testing.M) {
	// distribution logs every request through logrus' standard logger;
	// the tests check what the registries answer, not what they say.
	logrus.SetOutput(io.Discard)
	logrus.SetLevel(logrus.ErrorLevel)
	os.Exit(m.Run())
}

// testCtx returns a context that ends with the test, with a deadline far
// beyond what any test needs, so that a hang fails instead of blocking.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// registry is a distribution registry served on 127.0.0.1, with a log of
// the requests it received.
type registry struct {
	srv *httptest.Server
	// URL is the registry's base URL: "http://127.0.0.1:PORT".
	URL string
	// Host is the registry's host as references name it: "127.0.0.1:PORT".
	Host string
	log  requestLog
}

// registryOption adjusts the configuration of a registry before it starts.
type registryOption func(*configuration.Configuration)

// withAuth configures the registry's access controller: "htpasswd" or
// "token" with its parameters.
func withAuth(kind string, params configuration.Parameters) registryOption {
	return func(c *configuration.Configuration) {
		c.Auth = configuration.Auth{kind: params}
	}
}

// withProxy makes the registry a pull-through cache of remoteURL, whose
// cached content never expires (no scheduler runs).
func withProxy(remoteURL string) registryOption {
	return func(c *configuration.Configuration) {
		never := time.Duration(0)
		c.Proxy = configuration.Proxy{RemoteURL: remoteURL, TTL: &never}
	}
}

// startRegistry starts a registry with in-memory storage on a free port of
// 127.0.0.1, speaking plain HTTP, or TLS with the server certificate in
// tlsConfig when it is not nil. The registry stops when the test ends.
func startRegistry(t *testing.T, tlsConfig *tls.Config, opts ...registryOption) *registry {
	t.Helper()
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"inmemory": configuration.Parameters{},
			// No purger goroutine that sleeps for up to an hour.
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Secret = "pullkit-integration-secret"
	for _, o := range opts {
		o(cfg)
	}
	app := handlers.NewApp(context.Background(), cfg)

	r := &registry{}
	r.srv = httptest.NewUnstartedServer(r.log.wrap(app))
	// The TLS tests make clients fail handshakes on purpose; the server
	// need not log each one.
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsConfig != nil {
		r.srv.TLS = tlsConfig
		r.srv.StartTLS()
	} else {
		r.srv.Start()
	}
	t.Cleanup(r.srv.Close)
	r.URL = r.srv.URL
	r.Host = strings.TrimPrefix(strings.TrimPrefix(r.URL, "http://"), "https://")
	return r
}

// Close stops the registry: new connections are refused.
func (r *registry) Close() { r.srv.Close() }

// loggedRequest is what the request log keeps of a request.
type loggedRequest struct {
	Method string
	Path   string
	Header http.Header
}

// requestLog records the requests a handler receives.
type requestLog struct {
	mu   sync.Mutex
	reqs []loggedRequest
}

// wrap returns h with every request recorded in l first.
func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, loggedRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()})
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// count returns how many recorded requests match.
func (l *requestLog) count(match func(loggedRequest) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reqs {
		if match(r) {
			n++
		}
	}
	return n
}

// reset forgets the requests recorded so far.
func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = nil
}

// contentRequest matches the requests for manifests and blobs (not uploads)
// with method.
func contentRequest(method string) func(loggedRequest) bool {
	return func(r loggedRequest) bool {
		return r.Method == method && (strings.Contains(r.Path, "/manifests/") || strings.Contains(r.Path, "/blobs/sha256:"))
	}
}

// requestFor matches GET and HEAD requests whose path ends in suffix, such
// as "/blobs/sha256:…".
func requestFor(suffix string) func(loggedRequest) bool {
	return func(r loggedRequest) bool {
		return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasSuffix(r.Path, suffix)
	}
}
