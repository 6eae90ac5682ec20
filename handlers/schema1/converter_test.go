package schema1_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/handlers/schema1"
	"github.com/pullkit/pullkit/resolve/registrytest"
	"github.com/pullkit/pullkit/unpack"
)

func TestConvert(t *testing.T) {
	for _, kind := range []string{signedEmptyDigest, unsignedEmptyDigest, unsignedThrowaway} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, kind)
			if kind == signedEmptyDigest && f.desc.Digest == digest.FromBytes(f.body) {
				t.Fatal("fixture: a signed manifest should be named by its payload digest")
			}
			got := f.convert(t, f.fetcher)

			if got.MediaType != handlers.MediaTypeDockerSchema2Manifest {
				t.Errorf("media type = %q, want %q", got.MediaType, handlers.MediaTypeDockerSchema2Manifest)
			}
			if got.Platform == nil || got.Platform.OS != "linux" || got.Platform.Architecture != "arm64" {
				t.Errorf("platform = %+v, want linux/arm64", got.Platform)
			}

			// The manifest: two layers, base then top, the empty one dropped.
			m, err := handlers.Manifest(ctx, f.store, got, nil)
			if err != nil {
				t.Fatalf("handlers.Manifest() error = %v", err)
			}
			base, top := f.img.Layers[0], f.img.Layers[2]
			if len(m.Layers) != 2 {
				t.Fatalf("manifest has %d layers, want 2", len(m.Layers))
			}
			for i, want := range []registrytest.Layer{base, top} {
				l := m.Layers[i]
				if l.Digest != want.Descriptor.Digest || l.Size != want.Descriptor.Size || l.MediaType != handlers.MediaTypeDockerSchema2Layer {
					t.Errorf("layer %d = %s %d %s, want %s %d %s", i, l.Digest, l.Size, l.MediaType,
						want.Descriptor.Digest, want.Descriptor.Size, handlers.MediaTypeDockerSchema2Layer)
				}
			}
			if m.Config.MediaType != handlers.MediaTypeDockerSchema2Config {
				t.Errorf("config media type = %q, want %q", m.Config.MediaType, handlers.MediaTypeDockerSchema2Config)
			}

			// The config: platform, diff IDs computed here, history.
			img, _, err := handlers.Config(ctx, f.store, got, nil)
			if err != nil {
				t.Fatalf("handlers.Config() error = %v", err)
			}
			if img.OS != "linux" || img.Architecture != "arm64" {
				t.Errorf("config platform = %s/%s, want linux/arm64", img.OS, img.Architecture)
			}
			wantDiffIDs := []digest.Digest{diffIDOf(t, base.Data), diffIDOf(t, top.Data)}
			if !slices.Equal(img.RootFS.DiffIDs, wantDiffIDs) || img.RootFS.Type != "layers" {
				t.Errorf("rootfs = %s %v, want layers %v", img.RootFS.Type, img.RootFS.DiffIDs, wantDiffIDs)
			}
			if len(img.History) != 3 {
				t.Fatalf("history has %d entries, want 3", len(img.History))
			}
			for i, h := range img.History {
				if h.EmptyLayer != (i == 1) {
					t.Errorf("history[%d].empty_layer = %v, want %v", i, h.EmptyLayer, i == 1)
				}
				if !strings.HasPrefix(h.CreatedBy, "/bin/sh -c #(nop) ADD layer") || h.Created == nil || h.Created.Year() != 2024 {
					t.Errorf("history[%d] = %q at %v, want the v1Compatibility's Cmd and created", i, h.CreatedBy, h.Created)
				}
			}
			if !slices.Equal(img.Config.Cmd, []string{"/bin/sh"}) {
				t.Errorf("config.Cmd = %q, want the top entry's [/bin/sh]", img.Config.Cmd)
			}
			raw, err := content.ReadBlob(ctx, f.store, m.Config, 0)
			if err != nil {
				t.Fatal(err)
			}
			var members map[string]json.RawMessage
			if err := json.Unmarshal(raw, &members); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"id", "parent", "throwaway"} {
				if _, ok := members[k]; ok {
					t.Errorf("config keeps the legacy member %q", k)
				}
			}

			// GC labels on the new manifest; diff IDs on the layers.
			info, err := f.store.Info(ctx, got.Digest)
			if err != nil {
				t.Fatal(err)
			}
			wantLabels := map[string]string{
				"containerd.io/gc.ref.content.config": m.Config.Digest.String(),
				"containerd.io/gc.ref.content.l.0":    base.Descriptor.Digest.String(),
				"containerd.io/gc.ref.content.l.1":    top.Descriptor.Digest.String(),
			}
			if !maps.Equal(info.Labels, wantLabels) {
				t.Errorf("manifest labels = %v, want %v", info.Labels, wantLabels)
			}
			for i, l := range m.Layers {
				li, err := f.store.Info(ctx, l.Digest)
				if err != nil {
					t.Fatal(err)
				}
				if li.Labels[schema1.LabelUncompressed] != wantDiffIDs[i].String() {
					t.Errorf("layer %d label %s = %q, want %s", i, schema1.LabelUncompressed, li.Labels[schema1.LabelUncompressed], wantDiffIDs[i])
				}
			}

			// The empty layer was never downloaded, nor stored.
			empty := f.img.Layers[1].Descriptor.Digest
			for _, p := range blobRequests(f.reg) {
				if strings.Contains(p, empty.String()) {
					t.Errorf("the empty layer was requested: GET %s", p)
				}
			}
			if _, err := f.store.Info(ctx, empty); !errdefs.IsNotFound(err) {
				t.Errorf("store.Info(empty layer) error = %v, want not found", err)
			}

			// The image unpacks, each layer verified against its diff ID.
			root := filepath.Join(t.TempDir(), "rootfs")
			if err := unpack.ToDir(ctx, f.store, got, root,
				unpack.WithPlatforms(platforms.All), unpack.WithApplyOptions(unpack.WithUnprivileged())); err != nil {
				t.Fatalf("unpack.ToDir() error = %v", err)
			}
			want := map[string]bool{} // every entry of the tree: the layers' files and their directories
			for _, l := range []registrytest.Layer{base, top} {
				for name, data := range l.Files {
					b, err := os.ReadFile(filepath.Join(root, name))
					if err != nil || string(b) != string(data) {
						t.Errorf("unpacked %s: %d bytes, error %v; want %d bytes", name, len(b), err, len(data))
					}
					for p := name; p != "."; p = filepath.Dir(p) {
						want[p] = true
					}
				}
			}
			var extra []string
			err = filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
				rel, _ := filepath.Rel(root, p)
				if err == nil && rel != "." && !want[filepath.ToSlash(rel)] {
					extra = append(extra, rel)
				}
				return err
			})
			if err != nil || len(extra) > 0 || len(want) < 4 {
				t.Errorf("unpacked tree: extra entries %v, error %v; want exactly %d entries", extra, err, len(want))
			}
		})
	}
}

// A second conversion into the same store downloads nothing and writes
// the same manifest.
func TestConvertAgain(t *testing.T) {
	f := newFixture(t, signedEmptyDigest)
	first := f.convert(t, f.fetcher)
	f.reg.ResetStats()
	second := f.convert(t, f.fetcher)
	if second.Digest != first.Digest {
		t.Errorf("second Convert() = %s, want %s", second.Digest, first.Digest)
	}
	if got := blobRequests(f.reg); len(got) != 0 {
		t.Errorf("second conversion fetched blobs: %v", got)
	}
}

// A layer in the store without the diff ID label is read back, not fetched.
func TestConvertLayerInStore(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, unsignedEmptyDigest)
	base := f.img.Layers[0]
	if err := content.WriteBlob(ctx, f.store, "seed", strings.NewReader(string(base.Data)), base.Descriptor); err != nil {
		t.Fatal(err)
	}
	got := f.convert(t, f.fetcher)
	for _, p := range blobRequests(f.reg) {
		if strings.Contains(p, base.Descriptor.Digest.String()) {
			t.Errorf("a layer the store had was requested: GET %s", p)
		}
	}
	ids, err := handlers.DiffIDs(ctx, f.store, got, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != diffIDOf(t, base.Data) {
		t.Errorf("diff ID of the stored layer = %s, want %s", ids[0], diffIDOf(t, base.Data))
	}
}

// An ingest left by an interrupted pull is resumed: with a ResumeFetcher
// only the missing bytes are asked for, and the diff ID is read back from
// the store; with a plain Fetcher the stream is read from the start, once.
func TestConvertResumesIngest(t *testing.T) {
	for _, resumable := range []bool{true, false} {
		t.Run(map[bool]string{true: "ResumeFetcher", false: "Fetcher"}[resumable], func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, signedEmptyDigest)
			top := f.img.Layers[2]
			half := top.Descriptor.Size / 2
			w, err := f.store.Writer(ctx, content.WithRef(fetch.IngestRef(top.Descriptor)), content.WithDescriptor(top.Descriptor))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(top.Data[:half]); err != nil {
				t.Fatal(err)
			}
			w.Close()

			var fetcher fetch.Fetcher = f.fetcher
			if !resumable {
				fetcher = statFetcher{Fetcher: fetch.FetcherFunc(f.fetcher.Fetch), Stater: f.fetcher}
			}
			got := f.convert(t, fetcher)
			ids, err := handlers.DiffIDs(ctx, f.store, got, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := diffIDOf(t, top.Data); ids[1] != want {
				t.Errorf("diff ID of the resumed layer = %s, want %s", ids[1], want)
			}
			var ranged bool
			for _, r := range f.reg.Requests() {
				if strings.Contains(r.Path, top.Descriptor.Digest.String()) && r.Range != "" {
					ranged = true
				}
			}
			if ranged != resumable {
				t.Errorf("a Range request for the resumed layer: %v, want %v", ranged, resumable)
			}
		})
	}
}

// Layers that are plain tars keep the uncompressed media type, and their
// diff ID is their digest.
func TestConvertUncompressedLayers(t *testing.T) {
	reg := registrytest.NewT(t)
	f := pushFixture(t, reg, "test/plain", unsignedEmptyDigest,
		registrytest.RandomImage(3, 2, 4<<10, registrytest.WithDockerMediaTypes(), registrytest.WithCompression(handlers.CompressionNone)))
	got := f.convert(t, f.fetcher)
	m, err := handlers.Manifest(context.Background(), f.store, got, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := handlers.DiffIDs(context.Background(), f.store, got, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers {
		if l.MediaType != handlers.MediaTypeDockerSchema2LayerUncompressed || ids[i] != l.Digest {
			t.Errorf("layer %d = %s with diff ID %s, want %s with its digest", i, l.MediaType, ids[i], handlers.MediaTypeDockerSchema2LayerUncompressed)
		}
	}
}

func TestConvertOCIMediaTypes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, signedEmptyDigest)
	got := f.convert(t, f.fetcher, schema1.WithOCIMediaTypes())
	if got.MediaType != handlers.MediaTypeImageManifest {
		t.Errorf("media type = %q, want %q", got.MediaType, handlers.MediaTypeImageManifest)
	}
	m, err := handlers.Manifest(ctx, f.store, got, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != handlers.MediaTypeImageConfig {
		t.Errorf("config media type = %q, want %q", m.Config.MediaType, handlers.MediaTypeImageConfig)
	}
	for i, l := range m.Layers {
		if l.MediaType != handlers.MediaTypeImageLayerGzip {
			t.Errorf("layer %d media type = %q, want %q", i, l.MediaType, handlers.MediaTypeImageLayerGzip)
		}
	}
	if _, err := handlers.DiffIDs(ctx, f.store, got, nil); err != nil {
		t.Errorf("handlers.DiffIDs() error = %v", err)
	}
}

func TestConvertProgress(t *testing.T) {
	f := newFixture(t, unsignedEmptyDigest)
	var mu sync.Mutex
	committed := map[digest.Digest]int64{}
	c := schema1.NewConverter(f.store, f.fetcher, schema1.WithProgress(func(ev fetch.Event) {
		if ev.Kind == fetch.Committed {
			mu.Lock()
			committed[ev.Desc.Digest] = ev.Total
			mu.Unlock()
		}
	}))
	if err := handlers.Dispatch(context.Background(), c, 2, f.desc); err != nil {
		t.Fatal(err)
	}
	want := map[digest.Digest]int64{
		f.img.Layers[0].Descriptor.Digest: f.img.Layers[0].Descriptor.Size,
		f.img.Layers[2].Descriptor.Digest: f.img.Layers[2].Descriptor.Size,
	}
	if !maps.Equal(committed, want) {
		t.Errorf("Committed events = %v, want %v", committed, want)
	}
}

// The manifest must be the one its descriptor names: by its payload
// digest or its whole-body digest. Signatures are not checked.
func TestHandleVerifiesDigest(t *testing.T) {
	reg := registrytest.NewT(t)
	img := registrytest.RandomImage(5, 2, 1<<10, registrytest.WithDockerMediaTypes())
	signed, signedType := registrytest.Schema1Manifest(img, "test/app", "v1", true)
	unsigned, unsignedType := registrytest.Schema1Manifest(img, "test/app", "v1", false)
	signedDigest := reg.PushManifest("test/app", "", signedType, signed).Digest // the payload's

	tamper := func(b []byte, old, new string) []byte { return []byte(strings.Replace(string(b), old, new, 1)) }
	top := img.Layers[1].Descriptor.Digest.String()
	other := digest.FromString("other").String()

	tests := []struct {
		name       string
		mediaType  string
		named      digest.Digest // the descriptor's digest
		served     []byte
		wantErr    error
		wantLayers int
	}{
		{"signed, by payload digest", signedType, signedDigest, signed, nil, 2},
		{"signed, by whole-body digest", signedType, digest.FromBytes(signed), signed, nil, 2},
		{"signed, signature altered", signedType, signedDigest, tamper(signed, `"signature": "`, `"signature": "AAAA`), nil, 2},
		{"signed, payload altered", signedType, signedDigest, tamper(signed, top, other), content.ErrDigestMismatch, 0},
		{"signed, protected header altered", signedType, signedDigest, tamper(signed, `"protected": "`, `"protected": "e30`), content.ErrDigestMismatch, 0},
		{"unsigned", unsignedType, digest.FromBytes(unsigned), unsigned, nil, 2},
		{"unsigned, altered", unsignedType, digest.FromBytes(unsigned), tamper(unsigned, top, other), content.ErrDigestMismatch, 0},
		{"not JSON", unsignedType, digest.FromBytes(unsigned), []byte(strings.Repeat("x", len(unsigned))), content.ErrDigestMismatch, 0},
		{"shorter than named", unsignedType, digest.FromBytes(unsigned), unsigned[:10], content.ErrDigestMismatch, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desc := ocispec.Descriptor{MediaType: tt.mediaType, Digest: tt.named, Size: int64(len(tt.served))}
			if tt.name == "shorter than named" {
				desc.Size = int64(len(unsigned))
			}
			c := schema1.NewConverter(memory.New(), bytesFetcher(map[digest.Digest][]byte{tt.named: tt.served}))
			children, err := c.Handle(context.Background(), desc)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Handle() error = %v, want %v", err, tt.wantErr)
			}
			if len(children) != tt.wantLayers {
				t.Errorf("Handle() returned %d children, want %d", len(children), tt.wantLayers)
			}
		})
	}

	// Over real HTTP: a registry that corrupts the manifest.
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultCorrupt, Path: "/manifests/"})
	c := schema1.NewConverter(memory.New(), fetch.New(reg.Host(), "test/app", fetch.WithClient(reg.Client()), fetch.WithPlainHTTP()))
	desc := ocispec.Descriptor{MediaType: signedType, Digest: signedDigest, Size: int64(len(signed))}
	if _, err := c.Handle(context.Background(), desc); !errors.Is(err, content.ErrDigestMismatch) {
		t.Errorf("Handle(corrupted by the registry) error = %v, want %v", err, content.ErrDigestMismatch)
	}
}

// The children are the non-empty blobs, base first, each once.
func TestHandleChildren(t *testing.T) {
	a, b := digest.FromString("a"), digest.FromString("b")
	v1 := func(extra string) string { return `{"id":"x","created":"2020-01-01T00:00:00Z"` + extra + `}` }
	m := map[string]any{
		"schemaVersion": 1, "name": "test/app", "tag": "v1", "architecture": "amd64",
		"fsLayers": []map[string]string{{"blobSum": a.String()}, {"blobSum": schema1.EmptyLayer.String()}, {"blobSum": b.String()}, {"blobSum": a.String()}, {"blobSum": b.String()}},
		"history": []map[string]string{
			{"v1Compatibility": v1(`,"os":"linux"`)}, {"v1Compatibility": v1("")}, {"v1Compatibility": v1(`,"throwaway":true`)},
			{"v1Compatibility": v1("")}, {"v1Compatibility": v1("")},
		},
	}
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(body)
	c := schema1.NewConverter(memory.New(), bytesFetcher(map[digest.Digest][]byte{d: body}))
	children, err := c.Handle(context.Background(), ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema1Manifest, Digest: d, Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	var got []digest.Digest
	for _, ch := range children {
		if ch.MediaType != handlers.MediaTypeDockerSchema2Layer || ch.Size != -1 {
			t.Errorf("child %s: media type %q size %d, want %q size -1", ch.Digest, ch.MediaType, ch.Size, handlers.MediaTypeDockerSchema2Layer)
		}
		got = append(got, ch.Digest)
	}
	if want := []digest.Digest{b, a}; !slices.Equal(got, want) {
		t.Errorf("children = %v, want %v (base first, once each, empty ones dropped)", got, want)
	}
}

func TestHandleErrors(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, signedEmptyDigest)
	other := registrytest.RandomImage(9, 1, 1<<10, registrytest.WithDockerMediaTypes())
	otherBody, otherType := registrytest.Schema1Manifest(other, f.repo, "other", false)
	otherDesc := f.reg.PushManifest(f.repo, "other", otherType, otherBody)
	missingBody, missingType := registrytest.Schema1Manifest(other, f.repo, "missing", true) // its layer is not pushed
	missingDesc := f.reg.PushManifest(f.repo, "missing", missingType, missingBody)
	badGzip := f.reg.PushBlob(f.repo, []byte("\x1f\x8bnot gzip at all"))
	zstd := f.reg.PushBlob(f.repo, []byte("\x28\xb5\x2f\xfdzstd frame"))
	withBlob := func(d digest.Digest) ocispec.Descriptor {
		img := other
		img.Layers = []registrytest.Layer{{Descriptor: ocispec.Descriptor{Digest: d}}}
		body, mt := registrytest.Schema1Manifest(img, f.repo, "", false)
		return f.reg.PushManifest(f.repo, "", mt, body)
	}
	layer := ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Layer, Digest: f.img.Layers[0].Descriptor.Digest, Size: -1}

	tests := []struct {
		name    string
		run     func(c *schema1.Converter) error
		wantErr error
	}{
		{"manifest over 4 MiB", func(c *schema1.Converter) error {
			d := f.desc
			d.Size = content.DefaultReadLimit + 1
			_, err := c.Handle(ctx, d)
			return err
		}, content.ErrTooLarge},
		{"not a schema 1 descriptor", func(c *schema1.Converter) error {
			_, err := c.Handle(ctx, f.img.Config)
			return err
		}, errdefs.ErrInvalidArgument},
		{"layer before its manifest", func(c *schema1.Converter) error {
			_, err := c.Handle(ctx, layer)
			return err
		}, errdefs.ErrFailedPrecondition},
		{"a second manifest", func(c *schema1.Converter) error {
			if _, err := c.Handle(ctx, f.desc); err != nil {
				return err
			}
			_, err := c.Handle(ctx, otherDesc)
			return err
		}, errdefs.ErrFailedPrecondition},
		{"a layer of another manifest", func(c *schema1.Converter) error {
			if _, err := c.Handle(ctx, otherDesc); err != nil {
				return err
			}
			_, err := c.Handle(ctx, layer)
			return err
		}, errdefs.ErrFailedPrecondition},
		{"convert before any manifest", func(c *schema1.Converter) error {
			_, err := c.Convert(ctx)
			return err
		}, errdefs.ErrFailedPrecondition},
		{"convert before the layers", func(c *schema1.Converter) error {
			if _, err := c.Handle(ctx, f.desc); err != nil {
				return err
			}
			_, err := c.Convert(ctx)
			return err
		}, errdefs.ErrFailedPrecondition},
		{"missing layer", func(c *schema1.Converter) error {
			return handlers.Dispatch(ctx, c, 2, missingDesc)
		}, errdefs.ErrNotFound},
		{"layer that is not gzip", func(c *schema1.Converter) error {
			return handlers.Dispatch(ctx, c, 2, withBlob(badGzip.Digest))
		}, errdefs.ErrInvalidArgument},
		{"zstd layer", func(c *schema1.Converter) error {
			return handlers.Dispatch(ctx, c, 2, withBlob(zstd.Digest))
		}, errdefs.ErrNotImplemented},
		{"schema 2 served as schema 1", func(c *schema1.Converter) error {
			d := f.reg.PushManifest(f.repo, "", handlers.MediaTypeDockerSchema1Manifest, f.img.ManifestBytes)
			_, err := c.Handle(ctx, d)
			return err
		}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := schema1.NewConverter(f.store, f.fetcher)
			if err := tt.run(c); !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestErrConversionDisabled(t *testing.T) {
	err := fmt.Errorf("pull %s: %w", "example.com/app:v1", schema1.ErrConversionDisabled)
	if !errdefs.IsNotImplemented(err) || !errors.Is(err, schema1.ErrConversionDisabled) {
		t.Errorf("error = %v, want ErrConversionDisabled matching errdefs.ErrNotImplemented", err)
	}
	if !strings.Contains(err.Error(), "pullkit.WithSchema1Conversion") {
		t.Errorf("error %q does not name the option that enables the conversion", err)
	}
}
