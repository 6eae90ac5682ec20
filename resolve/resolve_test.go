package resolve_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

func TestResolve(t *testing.T) {
	reg := registrytest.NewT(t)
	img, manifest := pushImage(reg, "acme/app", "1.0", 1)
	dockerImg := registrytest.RandomImage(2, 1, 512, registrytest.WithDockerMediaTypes())
	dockerDesc := reg.PushImage("acme/docker", "v2", dockerImg)
	index := reg.PushIndex("acme/multi", "latest", registrytest.RandomImage(3, 1, 256), registrytest.RandomImage(4, 1, 256))
	signed, signedType := registrytest.Schema1Manifest(img, "acme/old", "s1", true)
	signedDesc := reg.PushManifest("acme/old", "s1", signedType, signed)
	unsigned, unsignedType := registrytest.Schema1Manifest(img, "acme/old", "u1", false)
	unsignedDesc := reg.PushManifest("acme/old", "u1", unsignedType, unsigned)
	// Served as application/json: the type comes from the body.
	plainDesc := reg.PushManifest("acme/plain", "v1", "application/json", img.ManifestBytes)

	h := reg.Host()
	tests := []struct {
		name, ref, wantName string
		want                ocispec.Descriptor
		wantType            string
	}{
		{"tag", h + "/acme/app:1.0", h + "/acme/app:1.0", manifest, ocispec.MediaTypeImageManifest},
		{"digest", h + "/acme/app@" + manifest.Digest.String(), h + "/acme/app@" + manifest.Digest.String(), manifest, ocispec.MediaTypeImageManifest},
		{"tag and digest", h + "/acme/app:1.0@" + manifest.Digest.String(), h + "/acme/app:1.0@" + manifest.Digest.String(), manifest, ocispec.MediaTypeImageManifest},
		{"docker schema 2", h + "/acme/docker:v2", h + "/acme/docker:v2", dockerDesc, handlers.MediaTypeDockerSchema2Manifest},
		{"index", h + "/acme/multi", h + "/acme/multi:latest", index, ocispec.MediaTypeImageIndex},
		{"schema 1 signed", h + "/acme/old:s1", h + "/acme/old:s1", signedDesc, handlers.MediaTypeDockerSchema1SignedManifest},
		{"schema 1 signed by digest", h + "/acme/old@" + signedDesc.Digest.String(), h + "/acme/old@" + signedDesc.Digest.String(), signedDesc, handlers.MediaTypeDockerSchema1SignedManifest},
		{"schema 1 unsigned", h + "/acme/old:u1", h + "/acme/old:u1", unsignedDesc, handlers.MediaTypeDockerSchema1Manifest},
		{"type from the body", h + "/acme/plain:v1", h + "/acme/plain:v1", plainDesc, ocispec.MediaTypeImageManifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			var events []fetch.Event
			var mu sync.Mutex
			r := resolve.New(resolve.WithObserver(func(e fetch.Event) {
				mu.Lock()
				defer mu.Unlock()
				events = append(events, e)
			}))
			name, desc, err := r.Resolve(ctx, tt.ref)
			if err != nil {
				t.Fatalf("Resolve(%q) error = %v", tt.ref, err)
			}
			if name != tt.wantName {
				t.Errorf("name = %q, want %q", name, tt.wantName)
			}
			if desc.MediaType != tt.wantType || desc.Digest != tt.want.Digest || desc.Size != tt.want.Size {
				t.Errorf("desc = %s %s %d, want %s %s %d", desc.MediaType, desc.Digest, desc.Size, tt.wantType, tt.want.Digest, tt.want.Size)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(events) != 1 || events[0].Kind != fetch.Resolved || events[0].Desc.Digest != desc.Digest || events[0].Total != desc.Size {
				t.Errorf("events = %+v, want one Resolved event for %s", events, desc.Digest)
			}
		})
	}
}

func TestResolveDockerHubName(t *testing.T) {
	// Docker Hub names are normalized before any request: the mirror is
	// the only host, and it keeps Docker Hub's repositories as they are.
	reg := registrytest.NewT(t)
	_, want := pushImage(reg, "library/alpine", "3.20", 1)
	r := resolve.New(resolve.WithHosts(resolve.Hosts(
		resolve.WithMirrors("docker.io", reg.URL()),
		resolve.WithoutFallback("docker.io"),
	)))
	name, desc, err := r.Resolve(testCtx(t), "alpine:3.20")
	if err != nil {
		t.Fatal(err)
	}
	if name != "docker.io/library/alpine:3.20" || desc.Digest != want.Digest {
		t.Errorf("Resolve() = %q, %s; want docker.io/library/alpine:3.20, %s", name, desc.Digest, want.Digest)
	}
}

func TestResolveUsesHEADOnly(t *testing.T) {
	reg := registrytest.NewT(t)
	_, want := pushImage(reg, "acme/app", "1.0", 1)
	r := resolve.New()
	if _, desc, err := r.Resolve(testCtx(t), reg.Host()+"/acme/app:1.0"); err != nil || desc.Digest != want.Digest {
		t.Fatalf("Resolve() = %v, %v", desc, err)
	}
	if heads, gets := count(reg, http.MethodHead, "/manifests/"), count(reg, http.MethodGet, "/manifests/"); heads != 1 || gets != 0 {
		t.Errorf("requests: %d HEAD, %d GET; want 1 HEAD and no GET", heads, gets)
	}
	for _, req := range reg.Requests() {
		if req.Method == http.MethodHead {
			for _, mt := range []string{ocispec.MediaTypeImageIndex, handlers.MediaTypeDockerSchema1SignedManifest, handlers.MediaTypeDockerSchema1Manifest, "*/*"} {
				if !strings.Contains(req.Accept, mt) {
					t.Errorf("Accept %q lacks %s", req.Accept, mt)
				}
			}
		}
	}
}

func TestResolveFallsBackToGET(t *testing.T) {
	reg := registrytest.NewT(t)
	img, want := pushImage(reg, "acme/app", "1.0", 1)
	signed, signedType := registrytest.Schema1Manifest(img, "acme/app", "s1", true)
	signedDesc := reg.PushManifest("acme/app", "s1", signedType, signed)

	stripHEADDigest := func(resp *http.Response) error {
		if resp.Request.Method == http.MethodHead {
			resp.Header.Del("Docker-Content-Digest")
		}
		return nil
	}
	stripAllDigests := func(resp *http.Response) error {
		resp.Header.Del("Docker-Content-Digest")
		return nil
	}
	noLength := func(resp *http.Response) error {
		if resp.Request.Method == http.MethodHead {
			resp.Header.Del("Content-Length")
			resp.ContentLength = -1
		}
		return nil
	}
	refuseHEAD := func(status int) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodHead {
				w.WriteHeader(status)
				return true
			}
			return false
		}
	}
	tests := []struct {
		name      string
		intercept func(http.ResponseWriter, *http.Request) bool
		modify    func(*http.Response) error
		tag       string
		want      ocispec.Descriptor
	}{
		{"no digest on HEAD", nil, stripHEADDigest, "1.0", want},
		{"no digest at all", nil, stripAllDigests, "1.0", want},
		{"no length on HEAD", nil, noLength, "1.0", want},
		{"HEAD 405", refuseHEAD(http.StatusMethodNotAllowed), nil, "1.0", want},
		{"HEAD 400", refuseHEAD(http.StatusBadRequest), nil, "1.0", want},
		{"HEAD 501", refuseHEAD(http.StatusNotImplemented), nil, "1.0", want},
		{"HEAD 404 on the last host", refuseHEAD(http.StatusNotFound), nil, "1.0", want},
		{"schema 1 signed without digest header", nil, stripAllDigests, "s1", signedDesc},
		{"schema 1 signed, HEAD refused", refuseHEAD(http.StatusMethodNotAllowed), nil, "s1", signedDesc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := front(t, reg.URL(), tt.intercept, tt.modify)
			reg.ResetStats()
			r := resolve.New()
			_, desc, err := r.Resolve(testCtx(t), hostOf(srv.URL)+"/acme/app:"+tt.tag)
			if err != nil {
				t.Fatalf("Resolve() error = %v", err)
			}
			if desc.Digest != tt.want.Digest || desc.Size != tt.want.Size || desc.MediaType != tt.want.MediaType {
				t.Errorf("desc = %+v, want %+v", desc, tt.want)
			}
			if gets := count(reg, http.MethodGet, "/manifests/"); gets != 1 {
				t.Errorf("%d GETs of the manifest, want 1", gets)
			}
		})
	}
}

func TestResolveVerifiesContent(t *testing.T) {
	reg := registrytest.NewT(t)
	_, want := pushImage(reg, "acme/app", "1.0", 1)
	other := reg.PushBlob("acme/app", []byte("another manifest"))
	corruptGET := registrytest.Fault{Kind: registrytest.FaultCorrupt, Method: http.MethodGet, Path: "/manifests/"}
	refuseHEAD := registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusMethodNotAllowed, Method: http.MethodHead}

	tests := []struct {
		name   string
		faults []registrytest.Fault
		modify func(*http.Response) error
		ref    string
	}{
		{"by digest, corrupt body", []registrytest.Fault{refuseHEAD, corruptGET}, nil, "/acme/app@" + want.Digest.String()},
		{"by tag, corrupt body", []registrytest.Fault{refuseHEAD, corruptGET}, nil, "/acme/app:1.0"},
		{"by tag, wrong digest header", []registrytest.Fault{refuseHEAD}, func(resp *http.Response) error {
			resp.Header.Set("Docker-Content-Digest", other.Digest.String())
			return nil
		}, "/acme/app:1.0"},
		{"by digest, HEAD disagrees, corrupt body", []registrytest.Fault{corruptGET}, func(resp *http.Response) error {
			resp.Header.Set("Docker-Content-Digest", other.Digest.String())
			return nil
		}, "/acme/app@" + want.Digest.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.ClearFaults()
			t.Cleanup(reg.ClearFaults)
			for _, f := range tt.faults {
				reg.Inject(f)
			}
			srv := front(t, reg.URL(), nil, tt.modify)
			r := resolve.New(resolve.WithRetries(0))
			_, _, err := r.Resolve(testCtx(t), hostOf(srv.URL)+tt.ref)
			var me *content.MismatchError
			if !errors.Is(err, content.ErrDigestMismatch) || !errdefs.IsFailedPrecondition(err) || !errors.As(err, &me) {
				t.Fatalf("Resolve() error = %v, want a *content.MismatchError", err)
			}
			var re *resolve.Error
			if !errors.As(err, &re) || len(re.Hosts) != 1 {
				t.Errorf("error %v is not a *resolve.Error with one host", err)
			}
		})
	}
}

func TestResolveManifestLimit(t *testing.T) {
	reg := registrytest.NewT(t)
	big := append([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"`),
		bytes.Repeat([]byte("a"), resolve.DefaultManifestLimit)...)
	big = append(big, `"}}`...)
	reg.PushManifest("acme/big", "v1", ocispec.MediaTypeImageManifest, big)
	_, small := pushImage(reg, "acme/small", "v1", 1)

	tests := []struct {
		name      string
		ref       string
		opts      []resolve.Option
		refuseGET bool
		wantLimit int64
	}{
		{"over 4 MiB", "/acme/big:v1", nil, false, resolve.DefaultManifestLimit},
		{"over 4 MiB, by GET", "/acme/big:v1", nil, true, resolve.DefaultManifestLimit},
		{"over a set limit", "/acme/small:v1", []resolve.Option{resolve.WithManifestLimit(small.Size - 1)}, false, small.Size - 1},
		{"over a set limit, by GET", "/acme/small:v1", []resolve.Option{resolve.WithManifestLimit(small.Size - 1)}, true, small.Size - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.ClearFaults()
			t.Cleanup(reg.ClearFaults)
			if tt.refuseGET {
				reg.Inject(registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusMethodNotAllowed, Method: http.MethodHead})
			}
			reg.ResetStats()
			r := resolve.New(tt.opts...)
			_, _, err := r.Resolve(testCtx(t), reg.Host()+tt.ref)
			var le *content.LimitError
			if !errors.Is(err, content.ErrTooLarge) || !errors.As(err, &le) || le.Limit != tt.wantLimit {
				t.Fatalf("Resolve() error = %v, want a *content.LimitError with limit %d", err, tt.wantLimit)
			}
		})
	}
	// The limit is checked against the size before the body is read.
	if served := reg.BytesServed(); served > resolve.DefaultManifestLimit/2 {
		t.Errorf("%d bytes served for refused manifests", served)
	}
}

func TestResolveErrors(t *testing.T) {
	ctx := testCtx(t)
	open := registrytest.NewT(t)
	pushImage(open, "acme/app", "1.0", 1)
	token := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "secret"), registrytest.WithDeniedRepos("acme/denied"))
	pushImage(token, "acme/app", "1.0", 1)
	pushImage(token, "acme/denied", "1.0", 1)

	tests := []struct {
		name     string
		r        *resolve.Registry
		ref      string
		fault    *registrytest.Fault
		want     error
		contains []string
	}{
		{"invalid reference", resolve.New(), "Acme/App", nil, errdefs.ErrInvalidArgument, []string{"lowercase"}},
		{"unknown tag", resolve.New(), open.Host() + "/acme/app:2.0", nil, errdefs.ErrNotFound,
			[]string{"resolve " + open.Host() + "/acme/app:2.0: " + open.Host() + ": 404 Not Found: MANIFEST_UNKNOWN"}},
		{"unknown repository", resolve.New(), open.Host() + "/acme/nothing:1.0", nil, errdefs.ErrNotFound, []string{"acme/nothing:1.0", "404 Not Found"}},
		{"no credentials", resolve.New(), token.Host() + "/acme/app:1.0", nil, errdefs.ErrUnauthenticated,
			[]string{"401 Unauthorized", "docker login " + token.Host()}},
		{"wrong credentials", resolve.New(resolve.WithKeychain(auth.Static(token.Host(), auth.Credential{Username: "alice", Password: "wrong"}))),
			token.Host() + "/acme/app:1.0", nil, errdefs.ErrUnauthenticated, []string{"check the credentials"}},
		{"denied", resolve.New(resolve.WithKeychain(auth.Static(token.Host(), auth.Credential{Username: "alice", Password: "secret"}))),
			token.Host() + "/acme/denied:1.0", nil, errdefs.ErrPermissionDenied, []string{"may not pull"}},
		{"rate limited beyond the wait cap", resolve.New(), open.Host() + "/acme/app:1.0",
			&registrytest.Fault{Kind: registrytest.FaultTooManyRequests, RetryAfter: time.Hour}, errdefs.ErrUnavailable,
			[]string{"429 Too Many Requests (retry after 1h0m0s)", "try again later"}},
		{"server error", resolve.New(resolve.WithRetries(0)), open.Host() + "/acme/app:1.0",
			&registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusBadGateway}, errdefs.ErrUnavailable, []string{"502 Bad Gateway"}},
		{"no host can resolve", resolve.New(resolve.WithHosts(func(string) ([]resolve.Host, error) {
			return []resolve.Host{{Host: open.Host(), Scheme: "http", Capabilities: resolve.CapabilityPull}}, nil
		})), open.Host() + "/acme/app:1.0", nil, errdefs.ErrFailedPrecondition, []string{"can resolve"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != nil {
				inj := open.Inject(*tt.fault)
				t.Cleanup(inj.Remove)
			}
			_, _, err := tt.r.Resolve(ctx, tt.ref)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Resolve(%q) error = %v, want %v", tt.ref, err, tt.want)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q carries a password", err)
			}
		})
	}
}

func TestResolveWithCredentials(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "secret"))
	_, want := pushImage(reg, "acme/app", "1.0", 1)
	r := resolve.New(resolve.WithKeychain(auth.Static(reg.Host(), auth.Credential{Username: "alice", Password: "secret"})))
	ctx := testCtx(t)
	_, desc, err := r.Resolve(ctx, reg.Host()+"/acme/app:1.0")
	if err != nil || desc.Digest != want.Digest {
		t.Fatalf("Resolve() = %v, %v; want %s", desc, err, want.Digest)
	}
	f, err := r.Fetcher(ctx, reg.Host()+"/acme/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := readAll(ctx, t, f, desc)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(b) != want.Digest {
		t.Error("fetched manifest does not match its digest")
	}
}

func TestResolveRetriesTheLastHost(t *testing.T) {
	tests := []struct {
		name  string
		fault registrytest.Fault
	}{
		{"503", registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusServiceUnavailable, Times: 1}},
		{"429 with a short wait", registrytest.Fault{Kind: registrytest.FaultTooManyRequests, Times: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registrytest.NewT(t, registrytest.WithFault(tt.fault))
			_, want := pushImage(reg, "acme/app", "1.0", 1)
			_, desc, err := resolve.New().Resolve(testCtx(t), reg.Host()+"/acme/app:1.0")
			if err != nil || desc.Digest != want.Digest {
				t.Fatalf("Resolve() = %v, %v", desc, err)
			}
		})
	}
}

func TestResolveWithClient(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithBasicAuth("alice", "secret"))
	img, _ := pushImage(reg, "acme/app", "1.0", 1)
	c := auth.NewClient(auth.WithKeychain(auth.Static(reg.Host(), auth.Credential{Username: "alice", Password: "secret"})))
	pullAll(t, resolve.New(resolve.WithClient(c)), reg.Host()+"/acme/app:1.0", img)

	// A plain *http.Client sends no credentials, whatever the keychain.
	r := resolve.New(resolve.WithClient(http.DefaultClient), resolve.WithKeychain(auth.Static(reg.Host(), auth.Credential{Username: "alice", Password: "secret"})))
	if _, _, err := r.Resolve(testCtx(t), reg.Host()+"/acme/app:1.0"); !errdefs.IsUnauthorized(err) {
		t.Errorf("Resolve() error = %v, want Unauthenticated", err)
	}
}

func TestResolveConcurrently(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "secret"), registrytest.WithAnonymousPull())
	mirror := registrytest.NewT(t)
	var imgs []registrytest.Image
	for i := range 4 {
		img, _ := pushImage(reg, "acme/app", "v"+strconv.Itoa(i), int64(i))
		imgs = append(imgs, img)
	}
	r := resolve.New(resolve.WithHosts(resolve.Hosts(resolve.WithMirrors(reg.Host(), mirror.URL()))))
	t.Run("pulls", func(t *testing.T) {
		for i := range 16 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				pullAll(t, r, reg.Host()+"/acme/app:v"+strconv.Itoa(i%4), imgs[i%4])
			})
		}
	})
	tokens := 0
	for _, req := range reg.Requests() {
		if req.Server == registrytest.ServerToken {
			tokens++
		}
	}
	if tokens == 0 || tokens > 4 {
		t.Errorf("%d token requests for one repository, want the token shared", tokens)
	}
}

func TestFailoverIsLogged(t *testing.T) {
	upstream := registrytest.NewT(t)
	img, _ := pushImage(upstream, "acme/app", "1.0", 1)
	down := registrytest.NewT(t, registrytest.WithFault(registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusServiceUnavailable}))
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := resolve.New(resolve.WithLogger(logger), resolve.WithHosts(resolve.Hosts(resolve.WithMirrors(upstream.Host(), down.URL()))))
	pullAll(t, r, upstream.Host()+"/acme/app:1.0", img)
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	for _, want := range []string{"resolve: host failed, trying the next", "fetch: host failed, trying the next", down.Host() + ": 503 Service Unavailable"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not contain %q:\n%s", want, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
