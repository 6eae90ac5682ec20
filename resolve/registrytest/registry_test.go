package registrytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

func TestPing(t *testing.T) {
	reg := registrytest.NewT(t)
	resp, body := do(t, reg.Client(), http.MethodGet, reg.URL()+"/v2/", nil, "")
	if resp.StatusCode != http.StatusOK || string(body) != "{}" {
		t.Fatalf("GET /v2/ = %d %q, want 200 {}", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
		t.Errorf("Docker-Distribution-API-Version = %q", got)
	}
	resp, body = do(t, reg.Client(), http.MethodPost, reg.URL()+"/v2/", nil, "")
	if resp.StatusCode != http.StatusMethodNotAllowed || errCode(t, body) != "UNSUPPORTED" {
		t.Errorf("POST /v2/ = %d %s, want 405 UNSUPPORTED", resp.StatusCode, body)
	}
}

func TestAddresses(t *testing.T) {
	reg := registrytest.NewT(t)
	if !strings.HasPrefix(reg.URL(), "http://127.0.0.1:") || reg.URL() != "http://"+reg.Host() {
		t.Errorf("URL() = %q, Host() = %q", reg.URL(), reg.Host())
	}
	if reg.CDNURL() == reg.URL() || !strings.HasPrefix(reg.CDNURL(), "http://127.0.0.1:") {
		t.Errorf("CDNURL() = %q", reg.CDNURL())
	}
	if reg.TokenURL() != "" {
		t.Errorf("TokenURL() = %q without token auth", reg.TokenURL())
	}
	reg.Close()
	reg.Close() // a second Close is harmless
	if _, err := http.Get(reg.URL() + "/v2/"); err == nil {
		t.Error("GET after Close succeeded")
	}
}

func TestManifests(t *testing.T) {
	reg := registrytest.NewT(t)
	img := registrytest.RandomImage(7, 2, 1000)
	desc := reg.PushImage("a/b/c", "v1", img)
	if desc.Digest != img.Manifest.Digest || desc.Platform == nil || desc.Platform.Architecture != "amd64" {
		t.Fatalf("PushImage() = %+v, want the manifest's descriptor with its platform", desc)
	}
	base := reg.URL() + "/v2/a/b/c/manifests/"
	tests := []struct {
		name, method, ref string
		wantStatus        int
		wantCode          string
	}{
		{"get by tag", http.MethodGet, "v1", 200, ""},
		{"get by digest", http.MethodGet, img.Manifest.Digest.String(), 200, ""},
		{"head by tag", http.MethodHead, "v1", 200, ""},
		{"unknown tag", http.MethodGet, "v2", 404, "MANIFEST_UNKNOWN"},
		{"unknown digest", http.MethodGet, digest.FromString("x").String(), 404, "MANIFEST_UNKNOWN"},
		{"layer digest is no manifest", http.MethodGet, img.Layers[0].Descriptor.Digest.String(), 404, "MANIFEST_UNKNOWN"},
		{"delete", http.MethodDelete, "v1", 405, "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, reg.Client(), tt.method, base+tt.ref, nil, "")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode != "" {
				if got := errCode(t, body); got != tt.wantCode {
					t.Errorf("code = %s, want %s", got, tt.wantCode)
				}
				return
			}
			if got := resp.Header.Get("Content-Type"); got != ocispec.MediaTypeImageManifest {
				t.Errorf("Content-Type = %q", got)
			}
			if got := resp.Header.Get("Docker-Content-Digest"); got != img.Manifest.Digest.String() {
				t.Errorf("Docker-Content-Digest = %q", got)
			}
			if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(img.ManifestBytes)) {
				t.Errorf("Content-Length = %q, want %d", got, len(img.ManifestBytes))
			}
			want := img.ManifestBytes
			if tt.method == http.MethodHead {
				want = nil
			}
			if !bytes.Equal(body, want) {
				t.Errorf("body = %q, want %q", body, want)
			}
		})
	}
	if _, err := reg.Resolve("a/b/c", "v1"); err != nil {
		t.Errorf("Resolve(v1) error = %v", err)
	}
	if _, err := reg.Resolve("a/b/c", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Resolve(nope) error = %v, want NotFound", err)
	}
}

func TestPushManifestRaw(t *testing.T) {
	reg := registrytest.NewT(t)
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`)
	desc := reg.PushManifest("lib/list", "latest", handlers.MediaTypeDockerSchema2ManifestList, body)
	if desc.Digest != digest.FromBytes(body) || desc.Size != int64(len(body)) || desc.MediaType != handlers.MediaTypeDockerSchema2ManifestList {
		t.Fatalf("PushManifest() = %+v", desc)
	}
	resp, got := do(t, reg.Client(), http.MethodGet, reg.URL()+"/v2/lib/list/manifests/latest", nil, "")
	if resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("Content-Type") != handlers.MediaTypeDockerSchema2ManifestList {
		t.Fatalf("GET = %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), got)
	}
	// A manifest is a blob of its repository too.
	resp, got = do(t, reg.Client(), http.MethodGet, reg.URL()+"/v2/lib/list/blobs/"+desc.Digest.String(), nil, "")
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET blob = %d %q", resp.StatusCode, got)
	}
	// Retagging moves the tag.
	other := reg.PushManifest("lib/list", "latest", "application/json", []byte(`{}`))
	if d, _ := reg.Resolve("lib/list", "latest"); d.Digest != other.Digest {
		t.Errorf("latest = %s after retag, want %s", d.Digest, other.Digest)
	}
}

func TestPushPanics(t *testing.T) {
	reg := registrytest.NewT(t)
	for _, f := range []func(){
		func() { reg.PushBlob("Upper", nil) },
		func() { reg.PushBlob("a//b", nil) },
		func() { reg.PushManifest("ok", "bad:tag", "x", nil) },
		func() { reg.Inject(registrytest.Fault{}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

func TestBlobRanges(t *testing.T) {
	reg := registrytest.NewT(t)
	data := make([]byte, 100)
	for i := range data {
		data[i] = byte(i)
	}
	desc := reg.PushBlob("r", data)
	u := reg.URL() + "/v2/r/blobs/" + desc.Digest.String()
	tests := []struct {
		rng          string
		wantStatus   int
		wantCR       string
		first, last  int // body is data[first:last+1]
		wantNoBody   bool
		ignoredRange bool
	}{
		{"", 200, "", 0, 99, false, false},
		{"bytes=0-9", 206, "bytes 0-9/100", 0, 9, false, false},
		{"bytes=90-", 206, "bytes 90-99/100", 90, 99, false, false},
		{"bytes=-10", 206, "bytes 90-99/100", 90, 99, false, false},
		{"bytes=-500", 206, "bytes 0-99/100", 0, 99, false, false},
		{"bytes=50-500", 206, "bytes 50-99/100", 50, 99, false, false},
		{"bytes=99-99", 206, "bytes 99-99/100", 99, 99, false, false},
		{"bytes=100-", 416, "bytes */100", 0, 0, true, false},
		{"bytes=200-300", 416, "bytes */100", 0, 0, true, false},
		{"bytes=-0", 416, "bytes */100", 0, 0, true, false},
		{"bytes=5-2", 200, "", 0, 99, false, true},
		{"bytes=0-1,5-6", 200, "", 0, 99, false, true},
		{"items=0-1", 200, "", 0, 99, false, true},
		{"bytes=x-", 200, "", 0, 99, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			var hdr http.Header
			if tt.rng != "" {
				hdr = h("Range", tt.rng)
			}
			resp, body := do(t, reg.Client(), http.MethodGet, u, hdr, "")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("Content-Range"); got != tt.wantCR {
				t.Errorf("Content-Range = %q, want %q", got, tt.wantCR)
			}
			if got := resp.Header.Get("Accept-Ranges"); got != "bytes" {
				t.Errorf("Accept-Ranges = %q", got)
			}
			want := data[tt.first : tt.last+1]
			if tt.wantNoBody {
				want = nil
			}
			if !bytes.Equal(body, want) {
				t.Errorf("body = %v, want %v", body, want)
			}
		})
	}

	resp, body := do(t, reg.Client(), http.MethodHead, u, h("Range", "bytes=0-9"), "")
	if resp.StatusCode != 200 || resp.ContentLength != 100 || len(body) != 0 ||
		resp.Header.Get("Docker-Content-Digest") != desc.Digest.String() || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("HEAD = %d, Content-Length %d, headers %v", resp.StatusCode, resp.ContentLength, resp.Header)
	}
}

func TestBlobErrors(t *testing.T) {
	reg := registrytest.NewT(t)
	desc := reg.PushBlob("one", []byte("only in one"))
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantCode           string
	}{
		{"unknown blob", http.MethodGet, "/v2/one/blobs/" + digest.FromString("nope").String(), 404, "BLOB_UNKNOWN"},
		{"other repository", http.MethodGet, "/v2/two/blobs/" + desc.Digest.String(), 404, "BLOB_UNKNOWN"},
		{"head other repository", http.MethodHead, "/v2/two/blobs/" + desc.Digest.String(), 404, ""},
		{"bad digest", http.MethodGet, "/v2/one/blobs/sha256:xyz", 400, "DIGEST_INVALID"},
		{"bad name", http.MethodGet, "/v2/One/blobs/" + desc.Digest.String(), 400, "NAME_INVALID"},
		{"delete", http.MethodDelete, "/v2/one/blobs/" + desc.Digest.String(), 405, "UNSUPPORTED"},
		{"no endpoint", http.MethodGet, "/v2/one/elsewhere", 404, "NOT_FOUND"},
		{"not v2", http.MethodGet, "/v1/_ping", 404, "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, reg.Client(), tt.method, reg.URL()+tt.path, nil, "")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode != "" {
				if got := errCode(t, body); got != tt.wantCode {
					t.Errorf("code = %s, want %s", got, tt.wantCode)
				}
			}
		})
	}
}

func TestTagsList(t *testing.T) {
	reg := registrytest.NewT(t)
	img := registrytest.RandomImage(1, 1, 10)
	for _, tag := range []string{"b", "a", "c"} {
		reg.PushImage("lib/app", tag, img)
	}
	if got := reg.Tags("lib/app"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Tags() = %v", got)
	}
	tests := []struct {
		query    string
		wantTags []string
		wantLink string
	}{
		{"", []string{"a", "b", "c"}, ""},
		{"?n=2", []string{"a", "b"}, `</v2/lib/app/tags/list?last=b&n=2>; rel="next"`},
		{"?n=2&last=b", []string{"c"}, ""},
		{"?last=c", []string{}, ""},
		{"?n=0", []string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, body := do(t, reg.Client(), http.MethodGet, reg.URL()+"/v2/lib/app/tags/list"+tt.query, nil, "")
			var got struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil {
				t.Fatalf("GET = %d %s", resp.StatusCode, body)
			}
			if got.Name != "lib/app" || !slices.Equal(got.Tags, tt.wantTags) || got.Tags == nil {
				t.Errorf("body = %s, want tags %v", body, tt.wantTags)
			}
			if link := resp.Header.Get("Link"); link != tt.wantLink {
				t.Errorf("Link = %q, want %q", link, tt.wantLink)
			}
		})
	}
	resp, body := do(t, reg.Client(), http.MethodGet, reg.URL()+"/v2/nope/tags/list", nil, "")
	if resp.StatusCode != 404 || errCode(t, body) != "NAME_UNKNOWN" {
		t.Errorf("unknown repository: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, reg.Client(), http.MethodGet, reg.URL()+"/v2/lib/app/tags/list?n=-1", nil, "")
	if resp.StatusCode != 400 || errCode(t, body) != "PAGINATION_NUMBER_INVALID" {
		t.Errorf("n=-1: %d %s", resp.StatusCode, body)
	}
}

func TestPushOverHTTP(t *testing.T) {
	reg := registrytest.NewT(t)
	c := reg.Client()
	base := reg.URL() + "/v2/team/app"
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("layer bytes, pushed in two chunks")
	cd, ld := digest.FromBytes(config), digest.FromBytes(layer)

	// Monolithic upload.
	resp, body := do(t, c, http.MethodPost, base+"/blobs/uploads/?digest="+cd.String(), h("Content-Type", "application/octet-stream"), string(config))
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != cd.String() || resp.Header.Get("Location") != "/v2/team/app/blobs/"+cd.String() {
		t.Fatalf("monolithic POST = %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// Monolithic upload with the wrong digest.
	resp, body = do(t, c, http.MethodPost, base+"/blobs/uploads/?digest="+ld.String(), nil, "not the layer")
	if resp.StatusCode != 400 || errCode(t, body) != "DIGEST_INVALID" {
		t.Fatalf("wrong digest POST = %d %s", resp.StatusCode, body)
	}

	// Chunked upload.
	resp, _ = do(t, c, http.MethodPost, base+"/blobs/uploads/", nil, "")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 202 || !strings.HasPrefix(loc, "/v2/team/app/blobs/uploads/") || resp.Header.Get("Range") != "0-0" {
		t.Fatalf("POST = %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, c, http.MethodPatch, reg.URL()+loc, h("Content-Range", "0-9"), string(layer[:10]))
	if resp.StatusCode != 202 || resp.Header.Get("Range") != "0-9" {
		t.Fatalf("PATCH = %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, c, http.MethodPatch, reg.URL()+loc, h("Content-Range", "3-9"), "xxxxxxx")
	if resp.StatusCode != 416 || resp.Header.Get("Range") != "0-9" {
		t.Fatalf("PATCH at the wrong offset = %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, c, http.MethodGet, reg.URL()+loc, nil, "")
	if resp.StatusCode != 204 || resp.Header.Get("Range") != "0-9" {
		t.Fatalf("GET upload = %d %v", resp.StatusCode, resp.Header)
	}
	resp, body = do(t, c, http.MethodPut, reg.URL()+loc+"?digest="+ld.String(), nil, string(layer[10:]))
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != ld.String() {
		t.Fatalf("PUT = %d %s", resp.StatusCode, body)
	}
	if got, ok := reg.Blob(ld); !ok || !bytes.Equal(got, layer) {
		t.Fatalf("Blob(layer) = %q, %v", got, ok)
	}
	resp, body = do(t, c, http.MethodPatch, reg.URL()+loc, nil, "more")
	if resp.StatusCode != 404 || errCode(t, body) != "BLOB_UPLOAD_UNKNOWN" {
		t.Fatalf("PATCH after PUT = %d %s", resp.StatusCode, body)
	}

	// A cancelled upload.
	resp, _ = do(t, c, http.MethodPost, base+"/blobs/uploads/", nil, "")
	loc2 := resp.Header.Get("Location")
	if resp, _ = do(t, c, http.MethodDelete, reg.URL()+loc2, nil, ""); resp.StatusCode != 204 {
		t.Fatalf("DELETE upload = %d", resp.StatusCode)
	}
	if resp, _ = do(t, c, http.MethodGet, reg.URL()+loc2, nil, ""); resp.StatusCode != 404 {
		t.Fatalf("GET cancelled upload = %d", resp.StatusCode)
	}

	// Manifest PUT: refused while a blob is missing, accepted after.
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(config))},
		Layers: []ocispec.Descriptor{
			{MediaType: ocispec.MediaTypeImageLayer, Digest: ld, Size: int64(len(layer))},
			{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("foreign"), Size: 7, URLs: []string{"https://example.com/x"}},
		},
	}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	md := digest.FromBytes(mb)
	resp, body = do(t, c, http.MethodPut, reg.URL()+"/v2/other/manifests/v1", h("Content-Type", ocispec.MediaTypeImageManifest), string(mb))
	if resp.StatusCode != 400 || errCode(t, body) != "MANIFEST_BLOB_UNKNOWN" {
		t.Fatalf("PUT manifest to a repository without its blobs = %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, c, http.MethodPut, base+"/manifests/"+digest.FromString("x").String(), h("Content-Type", ocispec.MediaTypeImageManifest), string(mb))
	if resp.StatusCode != 400 || errCode(t, body) != "DIGEST_INVALID" {
		t.Fatalf("PUT manifest under the wrong digest = %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, c, http.MethodPut, base+"/manifests/v1", h("Content-Type", ocispec.MediaTypeImageManifest), "{not json")
	if resp.StatusCode != 400 || errCode(t, body) != "MANIFEST_INVALID" {
		t.Fatalf("PUT invalid manifest = %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, c, http.MethodPut, base+"/manifests/v1", h("Content-Type", ocispec.MediaTypeImageManifest), string(mb))
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != md.String() {
		t.Fatalf("PUT manifest = %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, c, http.MethodGet, base+"/manifests/v1", nil, "")
	if resp.StatusCode != 200 || !bytes.Equal(body, mb) || resp.Header.Get("Content-Type") != ocispec.MediaTypeImageManifest {
		t.Fatalf("GET pushed manifest = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// Cross-repository mount, and a failed one that starts an upload.
	resp, _ = do(t, c, http.MethodPost, reg.URL()+"/v2/mirror/blobs/uploads/?mount="+ld.String()+"&from=team/app", nil, "")
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != ld.String() {
		t.Fatalf("mount = %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, c, http.MethodGet, reg.URL()+"/v2/mirror/blobs/"+ld.String(), nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET mounted blob = %d", resp.StatusCode)
	}
	resp, _ = do(t, c, http.MethodPost, reg.URL()+"/v2/mirror/blobs/uploads/?mount="+digest.FromString("no").String()+"&from=team/app", nil, "")
	if resp.StatusCode != 202 {
		t.Fatalf("mount of a missing blob = %d, want 202", resp.StatusCode)
	}
}

func TestTLS(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTLS())
	if !strings.HasPrefix(reg.URL(), "https://127.0.0.1:") || !strings.HasPrefix(reg.CDNURL(), "https://") {
		t.Fatalf("URL() = %q, CDNURL() = %q", reg.URL(), reg.CDNURL())
	}
	desc := reg.PushBlob("secure", []byte("over tls"))
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultRedirect})
	resp, body := do(t, reg.Client(), http.MethodGet, reg.URL()+"/v2/secure/blobs/"+desc.Digest.String(), nil, "")
	if resp.StatusCode != 200 || string(body) != "over tls" {
		t.Fatalf("GET via the CDN over TLS = %d %q", resp.StatusCode, body)
	}
	if _, err := http.Get(reg.URL() + "/v2/"); err == nil {
		t.Error("a client that does not trust the test certificate connected")
	}
}

func TestStats(t *testing.T) {
	reg := registrytest.NewT(t)
	a := reg.PushBlob("s", []byte("aaaaaaaaaa"))
	b := reg.PushBlob("s", []byte("bb"))
	blobURL := func(d digest.Digest) string { return reg.URL() + "/v2/s/blobs/" + d.String() }

	do(t, reg.Client(), http.MethodGet, blobURL(a.Digest), h("Range", "bytes=2-", "Authorization", "Bearer secret-value"), "")
	do(t, reg.Client(), http.MethodGet, blobURL(b.Digest), h("Accept", "x/y", "Accept", "z/w"), "")
	do(t, reg.Client(), http.MethodHead, blobURL(b.Digest), nil, "")
	do(t, reg.Client(), http.MethodGet, blobURL(digest.FromString("none")), nil, "")

	reqs := reg.Requests()
	if len(reqs) != 4 {
		t.Fatalf("Requests() = %d requests, want 4", len(reqs))
	}
	r0 := reqs[0]
	if r0.Server != registrytest.ServerRegistry || r0.Method != "GET" || r0.Path != "/v2/s/blobs/"+a.Digest.String() ||
		r0.Range != "bytes=2-" || !r0.Authorization || r0.AuthScheme != "Bearer" || r0.Status != 206 || r0.Bytes != 8 {
		t.Errorf("Requests()[0] = %+v", r0)
	}
	for _, r := range reqs {
		if strings.Contains(r.Query+r.Path+r.AuthScheme, "secret") {
			t.Errorf("a credential was recorded: %+v", r)
		}
	}
	if reqs[1].Accept != "x/y, z/w" || reqs[1].Authorization || reqs[1].Bytes != 2 {
		t.Errorf("Requests()[1] = %+v", reqs[1])
	}
	if reqs[2].Method != "HEAD" || reqs[2].Bytes != 0 || reqs[2].Status != 200 {
		t.Errorf("Requests()[2] = %+v", reqs[2])
	}
	if reqs[3].Status != 404 || reqs[3].Bytes == 0 {
		t.Errorf("Requests()[3] = %+v (error bodies count in Request.Bytes)", reqs[3])
	}
	if got := reg.BytesServed(); got != 10 {
		t.Errorf("BytesServed() = %d, want 10 (8 of a, 2 of b, no error body)", got)
	}
	if got := reg.BlobBytesServed(a.Digest); got != 8 {
		t.Errorf("BlobBytesServed(a) = %d, want 8", got)
	}
	reg.ResetStats()
	if len(reg.Requests()) != 0 || reg.BytesServed() != 0 || reg.BlobBytesServed(a.Digest) != 0 {
		t.Errorf("after ResetStats: %d requests, %d bytes", len(reg.Requests()), reg.BytesServed())
	}
}

func TestReaderAt(t *testing.T) {
	reg := registrytest.NewT(t)
	arm := registrytest.RandomImage(2, 1, 100, registrytest.WithPlatform(ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}))
	amd := registrytest.RandomImage(3, 1, 100)
	idx := reg.PushIndex("multi", "latest", amd, arm)
	ctx := context.Background()

	children, err := handlers.ChildrenOf(ctx, reg, idx)
	if err != nil {
		t.Fatalf("ChildrenOf(index) error = %v", err)
	}
	if len(children) != 2 || children[0].Digest != amd.Manifest.Digest || children[1].Platform.Architecture != "arm64" {
		t.Fatalf("ChildrenOf(index) = %+v", children)
	}
	ra, err := reg.ReaderAt(ctx, amd.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	buf := make([]byte, ra.Size())
	if _, err := ra.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, amd.ConfigBytes) {
		t.Errorf("ReadAt(config) = %q, %v", buf, err)
	}
	if _, err := reg.ReaderAt(ctx, ocispec.Descriptor{Digest: digest.FromString("missing")}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ReaderAt(missing) error = %v, want NotFound", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := reg.ReaderAt(cctx, amd.Config); !errors.Is(err, context.Canceled) {
		t.Errorf("ReaderAt(cancelled) error = %v", err)
	}
}

// TestConcurrent serves, pushes and injects faults at once, for the race
// detector.
func TestConcurrent(t *testing.T) {
	reg := registrytest.NewT(t)
	img := registrytest.RandomImage(4, 2, 2048)
	reg.PushImage("c", "v1", img)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 5 {
				switch (i + j) % 4 {
				case 0:
					reg.PushBlob("c", []byte{byte(i), byte(j)})
				case 1:
					inj := reg.Inject(registrytest.Fault{Kind: registrytest.FaultIgnoreRange, Times: 1})
					inj.Hits()
				case 2:
					_ = reg.Requests()
				}
				resp, err := reg.Client().Get(reg.URL() + "/v2/c/blobs/" + img.Layers[0].Descriptor.Digest.String())
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := len(reg.Requests()); n != 40 {
		t.Errorf("Requests() = %d, want 40", n)
	}
}
