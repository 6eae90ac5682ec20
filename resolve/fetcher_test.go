package resolve_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers/schema1"
	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// stater returns r's fetcher for ref as the schema1.Stater it is.
func stater(t *testing.T, r *resolve.Registry, ref string) schema1.Stater {
	t.Helper()
	f, err := r.Fetcher(testCtx(t), ref)
	if err != nil {
		t.Fatalf("Fetcher(%q) error = %v", ref, err)
	}
	s, ok := f.(schema1.Stater)
	if !ok {
		t.Fatalf("Fetcher(%q) = %T, which has no Stat method", ref, f)
	}
	return s
}

// TestFetcherStat asks a mirror, then the upstream, for the size of a
// layer: the first host that tells it answers.
func TestFetcherStat(t *testing.T) {
	upstream := registrytest.NewT(t)
	img, _ := pushImage(upstream, "acme/app", "1.0", 1)
	layer := img.Layers[0].Descriptor
	query := layer
	query.Size = -1

	tests := []struct {
		name         string
		mirror       func(t *testing.T) (url string, reg *registrytest.Registry)
		upstreamAsks int  // HEADs of the layer the upstream gets
		rangedGET    bool // the mirror gets a GET of one byte
	}{
		{"mirror serves", func(t *testing.T) (string, *registrytest.Registry) {
			m := registrytest.NewT(t)
			pushImage(m, "acme/app", "1.0", 1)
			return m.URL(), m
		}, 0, false},
		{"mirror refuses HEAD: GET of one byte", func(t *testing.T) (string, *registrytest.Registry) {
			m := registrytest.NewT(t, registrytest.WithFault(registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusMethodNotAllowed, Method: http.MethodHead}))
			pushImage(m, "acme/app", "1.0", 1)
			return m.URL(), m
		}, 0, true},
		{"mirror 503", func(t *testing.T) (string, *registrytest.Registry) {
			m := registrytest.NewT(t, registrytest.WithFault(registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusServiceUnavailable}))
			pushImage(m, "acme/app", "1.0", 1)
			return m.URL(), m
		}, 1, false},
		{"mirror lacks the blob", func(t *testing.T) (string, *registrytest.Registry) {
			m := registrytest.NewT(t)
			return m.URL(), m
		}, 1, false},
		{"mirror 401", func(t *testing.T) (string, *registrytest.Registry) {
			m := registrytest.NewT(t, registrytest.WithTokenAuth("bob", "other"))
			pushImage(m, "acme/app", "1.0", 1)
			return m.URL(), m
		}, 1, false},
		{"mirror refuses connections", func(t *testing.T) (string, *registrytest.Registry) {
			return "http://" + closedHost(t), nil
		}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mirrorURL, mirror := tt.mirror(t)
			upstream.ResetStats()
			r := resolve.New(resolve.WithHosts(resolve.Hosts(resolve.WithMirrors(upstream.Host(), mirrorURL))))
			got, err := stater(t, r, upstream.Host()+"/acme/app:1.0").Stat(testCtx(t), query)
			if err != nil || got != layer.Size {
				t.Fatalf("Stat() = %d, %v; want %d", got, err, layer.Size)
			}
			if mirror != nil && len(mirror.Requests()) == 0 {
				t.Error("the mirror was not asked")
			}
			if n := count(upstream, http.MethodHead, "/blobs/"+layer.Digest.String()); n != tt.upstreamAsks {
				t.Errorf("the upstream got %d HEADs of the layer, want %d", n, tt.upstreamAsks)
			}
			if mirror != nil {
				ranged := false
				for _, req := range mirror.Requests() {
					ranged = ranged || (req.Method == http.MethodGet && req.Range == "bytes=0-0")
				}
				if ranged != tt.rangedGET {
					t.Errorf("the mirror got a GET of one byte: %v, want %v", ranged, tt.rangedGET)
				}
			}
			for _, reg := range []*registrytest.Registry{mirror, upstream} {
				if reg != nil && reg.BytesServed() > 1 {
					t.Errorf("%s served %d body bytes, want at most 1", reg.Host(), reg.BytesServed())
				}
			}
		})
	}
}

// When no host tells the size, the error names each host's answer and is
// classified by the last one, the registry's.
func TestFetcherStatErrorNamesEachHost(t *testing.T) {
	ctx := testCtx(t)
	upstream := registrytest.NewT(t)
	pushImage(upstream, "acme/app", "1.0", 1)
	down := registrytest.NewT(t, registrytest.WithFault(registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusServiceUnavailable}))
	refused := closedHost(t)
	r := resolve.New(resolve.WithRetries(0), fastFetch, resolve.WithHosts(resolve.Hosts(
		resolve.WithMirrors(upstream.Host(), down.URL(), "http://"+refused),
	)))
	s := stater(t, r, upstream.Host()+"/acme/app:1.0")

	missing := ocispec.Descriptor{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: digest.FromString("missing"), Size: -1}
	_, err := s.Stat(ctx, missing)
	if !errdefs.IsNotFound(err) || errdefs.IsUnavailable(err) {
		t.Errorf("Stat() error = %v, want NotFound (the upstream's answer) and not Unavailable", err)
	}
	var re *resolve.Error
	if !errors.As(err, &re) || len(re.Hosts) != 3 {
		t.Fatalf("Stat() error = %#v, want a *resolve.Error with 3 hosts", err)
	}
	var status *fetch.ResponseError
	if !errors.As(err, &status) || status.StatusCode != http.StatusNotFound || status.Method != http.MethodHead {
		t.Errorf("errors.As(*fetch.ResponseError) = %+v, want the upstream's 404 to HEAD", status)
	}
	op := "stat " + missing.Digest.String()
	msg := err.Error()
	for _, want := range []string{
		op + ": " + down.Host() + ": 503 Service Unavailable",
		"; " + refused + ": ",
		"connection refused",
		"; " + upstream.Host() + ": 404 Not Found",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Count(msg, op) != 1 {
		t.Errorf("error %q repeats %q", msg, op)
	}

	if _, err := s.Stat(ctx, ocispec.Descriptor{Digest: "sha256:nope"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Stat(invalid digest) error = %v, want InvalidArgument", err)
	}
}

// A redirect to the CDN is followed by Stat without the registry's token.
func TestFetcherStatRedirect(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "s3cret"),
		registrytest.WithFault(registrytest.Fault{Kind: registrytest.FaultRedirect}))
	img, _ := pushImage(reg, "acme/app", "1.0", 1)
	layer := img.Layers[0].Descriptor
	r := resolve.New(resolve.WithKeychain(auth.Static(reg.Host(), auth.Credential{Username: "alice", Password: "s3cret"})))
	got, err := stater(t, r, reg.Host()+"/acme/app:1.0").Stat(testCtx(t), layer)
	if err != nil || got != layer.Size {
		t.Fatalf("Stat() = %d, %v; want %d", got, err, layer.Size)
	}
	if reg.CDNSawAuthorization() {
		t.Error("the CDN got the registry's Authorization header")
	}
	var cdnHeads int
	for _, req := range reg.Requests() {
		if req.Server == registrytest.ServerCDN && req.Method == http.MethodHead {
			cdnHeads++
		}
	}
	if cdnHeads != 1 {
		t.Errorf("the CDN got %d HEADs, want 1", cdnHeads)
	}
}
