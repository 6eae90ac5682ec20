package resolve_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// testCtx returns a context that ends with the test, with a deadline far
// beyond what any test needs, so that a hang fails instead of blocking.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// fastFetch makes blob fetches fail at once instead of retrying.
var fastFetch = resolve.WithFetchOptions(fetch.WithRetries(0))

// pushImage pushes a small random image to repo:tag.
func pushImage(reg *registrytest.Registry, repo, tag string, seed int64) (registrytest.Image, ocispec.Descriptor) {
	img := registrytest.RandomImage(seed, 1, 1024)
	return img, reg.PushImage(repo, tag, img)
}

// count returns how many requests reg received with method whose path
// contains part.
func count(reg *registrytest.Registry, method, part string) int {
	n := 0
	for _, r := range reg.Requests() {
		if (method == "" || r.Method == method) && strings.Contains(r.Path, part) {
			n++
		}
	}
	return n
}

// front starts a plain HTTP server on 127.0.0.1 that passes requests to
// target (a URL such as reg.URL()), after intercept, which may answer
// a request itself by returning true, and changes responses with modify
// (which may be nil).
func front(t *testing.T, target string, intercept func(w http.ResponseWriter, r *http.Request) bool, modify func(*http.Response) error) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = modify
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if intercept != nil && intercept(w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// hostOf returns the host:port of a server URL.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	return u.Host
}

// closedHost returns the address of a server that was started and closed,
// where connections are refused.
func closedHost(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	h := hostOf(srv.URL)
	srv.Close()
	return h
}

// readAll fetches desc with f and returns its bytes.
func readAll(ctx context.Context, t *testing.T, f fetch.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	t.Helper()
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
