package resolve_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// pullAll resolves ref with r and fetches the manifest, config and layers
// of the image, checking each against its digest.
func pullAll(t *testing.T, r *resolve.Registry, ref string, img registrytest.Image) {
	t.Helper()
	ctx := testCtx(t)
	_, desc, err := r.Resolve(ctx, ref)
	if err != nil {
		t.Fatalf("Resolve(%q) error = %v", ref, err)
	}
	if desc.Digest != img.Manifest.Digest {
		t.Fatalf("Resolve(%q) digest = %s, want %s", ref, desc.Digest, img.Manifest.Digest)
	}
	f, err := r.Fetcher(ctx, ref)
	if err != nil {
		t.Fatalf("Fetcher(%q) error = %v", ref, err)
	}
	descs := []ocispec.Descriptor{desc, img.Config}
	for _, l := range img.Layers {
		descs = append(descs, l.Descriptor)
	}
	for _, d := range descs {
		b, err := readAll(ctx, t, f, d)
		if err != nil {
			t.Fatalf("Fetch(%s) error = %v", d.Digest, err)
		}
		if got := digest.FromBytes(b); got != d.Digest {
			t.Fatalf("Fetch(%s) returned content with digest %s", d.Digest, got)
		}
	}
}

func TestMirrorFailover(t *testing.T) {
	upstream := registrytest.NewT(t)
	img, _ := pushImage(upstream, "acme/app", "1.0", 1)

	tests := []struct {
		name   string
		mirror func(t *testing.T) (url string, reg *registrytest.Registry)
	}{
		{"503", func(t *testing.T) (string, *registrytest.Registry) {
			m := registrytest.NewT(t, registrytest.WithFault(registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusServiceUnavailable}))
			pushImage(m, "acme/app", "1.0", 1)
			return m.URL(), m
		}},
		{"429", func(t *testing.T) (string, *registrytest.Registry) {
			m := registrytest.NewT(t, registrytest.WithFault(registrytest.Fault{Kind: registrytest.FaultTooManyRequests}))
			pushImage(m, "acme/app", "1.0", 1)
			return m.URL(), m
		}},
		{"404", func(t *testing.T) (string, *registrytest.Registry) {
			m := registrytest.NewT(t)
			return m.URL(), m
		}},
		{"401", func(t *testing.T) (string, *registrytest.Registry) {
			m := registrytest.NewT(t, registrytest.WithTokenAuth("bob", "other"))
			pushImage(m, "acme/app", "1.0", 1)
			return m.URL(), m
		}},
		{"403", func(t *testing.T) (string, *registrytest.Registry) {
			m := registrytest.NewT(t, registrytest.WithDeniedRepos("acme/app"))
			pushImage(m, "acme/app", "1.0", 1)
			return m.URL(), m
		}},
		{"connection refused", func(t *testing.T) (string, *registrytest.Registry) {
			return "http://" + closedHost(t), nil
		}},
		{"blobs missing", func(t *testing.T) (string, *registrytest.Registry) {
			// The mirror has the manifest but none of the blobs.
			m := registrytest.NewT(t)
			m.PushManifest("acme/app", "1.0", img.Manifest.MediaType, img.ManifestBytes)
			return m.URL(), m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mirrorURL, mirror := tt.mirror(t)
			upstream.ResetStats()
			r := resolve.New(resolve.WithHosts(resolve.Hosts(resolve.WithMirrors(upstream.Host(), mirrorURL))))
			pullAll(t, r, upstream.Host()+"/acme/app:1.0", img)
			if mirror != nil && len(mirror.Requests()) == 0 {
				t.Error("the mirror was not asked")
			}
			if len(upstream.Requests()) == 0 {
				t.Error("the upstream was not asked")
			}
		})
	}
}

func TestMirrorServes(t *testing.T) {
	upstream := registrytest.NewT(t)
	mirror := registrytest.NewT(t)
	img, _ := pushImage(mirror, "acme/app", "1.0", 1)
	r := resolve.New(resolve.WithHosts(resolve.Hosts(resolve.WithMirrors(upstream.Host(), mirror.URL()))))
	pullAll(t, r, upstream.Host()+"/acme/app:1.0", img)
	if n := len(upstream.Requests()); n != 0 {
		t.Errorf("upstream received %d requests, want none", n)
	}
}

func TestMirrorWithoutFallback(t *testing.T) {
	ctx := testCtx(t)
	upstream := registrytest.NewT(t)
	img, want := pushImage(upstream, "acme/app", "1.0", 1)
	mirror := registrytest.NewT(t, registrytest.WithFault(registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusServiceUnavailable}))
	r := resolve.New(resolve.WithRetries(0), fastFetch, resolve.WithHosts(resolve.Hosts(
		resolve.WithMirrors(upstream.Host(), mirror.URL()),
		resolve.WithoutFallback(upstream.Host()),
	)))
	ref := upstream.Host() + "/acme/app:1.0"
	if _, _, err := r.Resolve(ctx, ref); !errdefs.IsUnavailable(err) {
		t.Errorf("Resolve() error = %v, want Unavailable", err)
	}
	f, err := r.Fetcher(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(ctx, t, f, img.Config); !errdefs.IsUnavailable(err) {
		t.Errorf("Fetch() error = %v, want Unavailable", err)
	}
	if _, err := readAll(ctx, t, f, want); !errdefs.IsUnavailable(err) {
		t.Errorf("Fetch(manifest) error = %v, want Unavailable", err)
	}
	if n := len(upstream.Requests()); n != 0 {
		t.Errorf("upstream received %d requests, want none", n)
	}
}

func TestFailoverErrorNamesEachHost(t *testing.T) {
	ctx := testCtx(t)
	upstream := registrytest.NewT(t)
	pushImage(upstream, "acme/app", "1.0", 1)
	down := registrytest.NewT(t, registrytest.WithFault(registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusServiceUnavailable}))
	refused := closedHost(t)
	r := resolve.New(resolve.WithRetries(0), fastFetch, resolve.WithHosts(resolve.Hosts(
		resolve.WithMirrors(upstream.Host(), down.URL(), "http://"+refused),
	)))

	check := func(t *testing.T, err error, op, upstreamAnswer string) {
		t.Helper()
		if !errdefs.IsNotFound(err) || errdefs.IsUnavailable(err) {
			t.Errorf("error = %v, want NotFound (the upstream's answer) and not Unavailable", err)
		}
		var re *resolve.Error
		if !errors.As(err, &re) || len(re.Hosts) != 3 {
			t.Fatalf("error = %#v, want a *resolve.Error with 3 hosts", err)
		}
		var status *fetch.ResponseError
		if !errors.As(err, &status) || status.StatusCode != http.StatusNotFound {
			t.Errorf("errors.As(*fetch.ResponseError) = %v, want the upstream's 404", status)
		}
		msg := err.Error()
		for _, want := range []string{
			op + ": " + down.Host() + ": 503 Service Unavailable",
			"; " + refused + ": ",
			"; " + upstream.Host() + ": 404 Not Found: " + upstreamAnswer,
			"connection refused",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not contain %q", msg, want)
			}
		}
		if strings.Count(msg, op) != 1 {
			t.Errorf("error %q repeats %q", msg, op)
		}
	}

	t.Run("resolve", func(t *testing.T) {
		ref := upstream.Host() + "/acme/app:9.9"
		_, _, err := r.Resolve(ctx, ref)
		check(t, err, "resolve "+ref, "MANIFEST_UNKNOWN")
	})
	t.Run("fetch", func(t *testing.T) {
		f, err := r.Fetcher(ctx, upstream.Host()+"/acme/app:1.0")
		if err != nil {
			t.Fatal(err)
		}
		missing := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString("missing"), Size: 7}
		_, err = f.Fetch(ctx, missing)
		check(t, err, "fetch "+missing.Digest.String(), "BLOB_UNKNOWN")
	})
}

func TestFetchFailoverMidStream(t *testing.T) {
	ctx := testCtx(t)
	upstream := registrytest.NewT(t)
	blob := make([]byte, 256<<10)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	desc := upstream.PushBlob("acme/app", blob)
	half := len(blob) / 2

	// The mirror sends half of the blob, then drops the connection, and
	// answers 503 to the Range request that tries to resume.
	var mu sync.Mutex
	var mirrorRanges []string
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/blobs/"+desc.Digest.String()) {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		mirrorRanges = append(mirrorRanges, r.Header.Get("Range"))
		mu.Unlock()
		if r.Header.Get("Range") != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.WriteHeader(http.StatusOK)
		w.Write(blob[:half])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(mirror.Close)

	r := resolve.New(resolve.WithHosts(resolve.Hosts(resolve.WithMirrors(upstream.Host(), mirror.URL))))
	f, err := r.Fetcher(ctx, upstream.Host()+"/acme/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(ctx, t, f, desc)
	if err != nil {
		t.Fatalf("Fetch() error = %v", err)
	}
	if digest.FromBytes(got) != desc.Digest {
		t.Fatal("fetched blob does not match its digest")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(mirrorRanges) == 0 || mirrorRanges[0] != "" {
		t.Errorf("mirror requests with ranges %q, want a request for the whole blob first", mirrorRanges)
	}
	var upstreamRange string
	for _, req := range upstream.Requests() {
		if req.Method == http.MethodGet && strings.Contains(req.Path, "/blobs/") {
			upstreamRange = req.Range
		}
	}
	if !strings.HasPrefix(upstreamRange, "bytes=") || upstreamRange == "bytes=0-" {
		t.Errorf("upstream Range = %q, want the rest of the blob after the mirror's bytes", upstreamRange)
	}
}

func TestPathPrefixedMirrorScopes(t *testing.T) {
	// A pull-through cache that keeps Docker Hub under "proxy/": its token
	// server grants anonymous pulls of proxy/library/alpine only, so the
	// pull works only if the scope names the repository as the mirror
	// knows it.
	mirror := registrytest.NewT(t, registrytest.WithTokenAuth("admin", "pw"), registrytest.WithAnonymousPull("proxy/library/alpine"))
	img, _ := pushImage(mirror, "proxy/library/alpine", "3.20", 1)

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "docker.io"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The upstream keeps only the push capability: Docker Hub is never
	// asked.
	toml := `server = "https://registry-1.docker.io"
capabilities = ["push"]

[host."` + mirror.URL() + `/v2/proxy"]
  capabilities = ["pull", "resolve"]
  override_path = true
`
	if err := os.WriteFile(filepath.Join(dir, "docker.io", "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		hosts resolve.HostsFunc
	}{
		{"WithMirrors", resolve.Hosts(resolve.WithMirrors("docker.io", mirror.URL()+"/v2/proxy"), resolve.WithoutFallback("docker.io"))},
		{"hosts.toml override_path", resolve.Hosts(resolve.WithHostsDir(dir))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mirror.ResetStats()
			r := resolve.New(resolve.WithHosts(tt.hosts))
			pullAll(t, r, "alpine:3.20", img)
			var scopes []string
			for _, req := range mirror.Requests() {
				if req.Server != registrytest.ServerToken {
					continue
				}
				q, err := url.ParseQuery(req.Query)
				if err != nil {
					t.Fatal(err)
				}
				scopes = append(scopes, q["scope"]...)
			}
			if len(scopes) == 0 {
				t.Fatal("no token was asked for")
			}
			for _, s := range scopes {
				if s != "repository:proxy/library/alpine:pull" {
					t.Errorf("token scope %q, want repository:proxy/library/alpine:pull", s)
				}
			}
			for _, req := range mirror.Requests() {
				if req.Server == registrytest.ServerRegistry && req.Path != "/v2/" && !strings.HasPrefix(req.Path, "/v2/proxy/library/alpine/") {
					t.Errorf("request for %s, want it under /v2/proxy/library/alpine/", req.Path)
				}
			}
		})
	}
}

func TestMirrorMissIsOneHEAD(t *testing.T) {
	upstream := registrytest.NewT(t)
	_, want := pushImage(upstream, "acme/app", "1.0", 1)
	mirror := registrytest.NewT(t)
	r := resolve.New(resolve.WithHosts(resolve.Hosts(resolve.WithMirrors(upstream.Host(), mirror.URL()))))
	if _, desc, err := r.Resolve(testCtx(t), upstream.Host()+"/acme/app:1.0"); err != nil || desc.Digest != want.Digest {
		t.Fatalf("Resolve() = %v, %v", desc, err)
	}
	if heads, gets := count(mirror, http.MethodHead, "/manifests/"), count(mirror, http.MethodGet, "/manifests/"); heads != 1 || gets != 0 {
		t.Errorf("the mirror got %d HEAD and %d GET, want 1 HEAD", heads, gets)
	}
}
