package schema1_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/schema1"
	"github.com/pullkit/pullkit/internal/compresstest"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// emptyGzip is the gzipped empty tar Docker pushed for layers that change
// nothing; its digest is schema1.EmptyLayer.
var emptyGzip = []byte{
	0x1f, 0x8b, 0x08, 0x00, 0x00, 0x09, 0x6e, 0x88, 0x00, 0xff, 0x62, 0x18, 0x05, 0xa3, 0x60, 0x14,
	0x8c, 0x58, 0x00, 0x08, 0x00, 0x00, 0xff, 0xff, 0x2e, 0xaf, 0xb5, 0xef, 0x00, 0x04, 0x00, 0x00,
}

// Fixture kinds: how the empty middle layer is marked, and whether the
// manifest is signed.
const (
	signedEmptyDigest   = "signed, empty by digest"
	unsignedEmptyDigest = "unsigned, empty by digest"
	unsignedThrowaway   = "unsigned, empty by throwaway"
)

// fixture is a three-layer schema 1 image served by a registry: a base
// layer, an empty layer and a top layer.
type fixture struct {
	reg     *registrytest.Registry
	repo    string
	img     registrytest.Image // base first: base, empty, top
	body    []byte
	desc    ocispec.Descriptor // the schema 1 manifest, as pushed
	fetcher *fetch.Repository
	store   *memory.Store
}

// newFixture pushes a schema 1 image of the given kind for linux/arm64.
func newFixture(t *testing.T, kind string) *fixture {
	t.Helper()
	reg := registrytest.NewT(t)
	return pushFixture(t, reg, "test/app", kind, registrytest.RandomImage(7, 2, 8<<10,
		registrytest.WithDockerMediaTypes(), registrytest.WithPlatform(ocispec.Platform{OS: "linux", Architecture: "arm64"})))
}

// pushFixture pushes base's two layers with an empty layer between them
// as a schema 1 image of the given kind.
func pushFixture(t *testing.T, reg *registrytest.Registry, repo, kind string, base registrytest.Image) *fixture {
	t.Helper()
	empty := registrytest.Layer{Data: emptyGzip}
	if kind == unsignedThrowaway {
		empty.Data = goEmptyTarGzip(t) // not Docker's bytes: only the history says it is empty
	}
	empty.Descriptor = ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Layer, Digest: digest.FromBytes(empty.Data), Size: int64(len(empty.Data))}
	img := base
	img.Layers = []registrytest.Layer{base.Layers[0], empty, base.Layers[1]}

	body, mt := registrytest.Schema1Manifest(img, repo, "v1", kind == signedEmptyDigest)
	if kind == unsignedThrowaway {
		body = markThrowaway(t, body, 1)
	}
	for i, l := range img.Layers {
		if i == 1 && kind == unsignedThrowaway {
			continue // never pushed: a converter that fetched it would fail
		}
		reg.PushBlob(repo, l.Data)
	}
	desc := reg.PushManifest(repo, "v1", mt, body)
	return &fixture{
		reg:     reg,
		repo:    repo,
		img:     img,
		body:    body,
		desc:    desc,
		fetcher: fetch.New(reg.Host(), repo, fetch.WithClient(reg.Client()), fetch.WithPlainHTTP()),
		store:   memory.New(),
	}
}

// convert runs a converter over f's manifest and returns the new manifest.
func (f *fixture) convert(t *testing.T, fetcher fetch.Fetcher, opts ...schema1.ConvertOption) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	c := schema1.NewConverter(f.store, fetcher)
	if err := handlers.Dispatch(ctx, c, 4, f.desc); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	got, err := c.Convert(ctx, opts...)
	if err != nil {
		t.Fatalf("Convert() error = %v", err)
	}
	return got
}

// goEmptyTarGzip returns an empty tar gzipped by Go: an empty layer whose
// digest is not schema1.EmptyLayer.
func goEmptyTarGzip(t *testing.T) []byte {
	t.Helper()
	var tarball bytes.Buffer
	if err := tar.NewWriter(&tarball).Close(); err != nil {
		t.Fatal(err)
	}
	return compresstest.Gzip(tarball.Bytes())
}

// markThrowaway sets "throwaway": true in the v1Compatibility of the
// history entry i (top first) of an unsigned schema 1 manifest.
func markThrowaway(t *testing.T, body []byte, i int) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	h := m["history"].([]any)[i].(map[string]any)
	var v1 map[string]any
	if err := json.Unmarshal([]byte(h["v1Compatibility"].(string)), &v1); err != nil {
		t.Fatal(err)
	}
	v1["throwaway"] = true
	b, err := json.Marshal(v1)
	if err != nil {
		t.Fatal(err)
	}
	h["v1Compatibility"] = string(b)
	out, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffIDOf gunzips a layer blob and returns the SHA-256 of the tar.
func diffIDOf(t *testing.T, blob []byte) digest.Digest {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, zr); err != nil {
		t.Fatal(err)
	}
	return digest.NewDigest(digest.SHA256, h)
}

// blobRequests returns the paths of the blob GETs the registry received.
func blobRequests(reg *registrytest.Registry) []string {
	var out []string
	for _, r := range reg.Requests() {
		if r.Method == "GET" && strings.Contains(r.Path, "/blobs/") {
			out = append(out, r.Path)
		}
	}
	return out
}

// bytesFetcher serves fixed bodies by digest, whatever the descriptor's
// size, to feed a converter content a registry would not serve.
func bytesFetcher(bodies map[digest.Digest][]byte) fetch.FetcherFunc {
	return func(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		b, ok := bodies[desc.Digest]
		if !ok {
			return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}
