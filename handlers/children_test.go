package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

func digests(ds []ocispec.Descriptor) []digest.Digest {
	var out []digest.Digest
	for _, d := range ds {
		out = append(out, d.Digest)
	}
	return out
}

func TestChildrenOfManifest(t *testing.T) {
	ctx := context.Background()
	for _, docker := range []bool{false, true} {
		t.Run(fmt.Sprint("docker ", docker), func(t *testing.T) {
			s := newMemStore()
			img := s.putImage(t, "linux/amd64", 3, docker)
			kids, err := handlers.ChildrenOf(ctx, s, img.manifest)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]digest.Digest{img.config.Digest}, digests(img.layers)...)
			if got := digests(kids); !slices.Equal(got, want) {
				t.Errorf("children = %v, want config then layers %v", got, want)
			}
			if kids[0].MediaType != img.config.MediaType || kids[1].MediaType != img.layers[0].MediaType {
				t.Errorf("children media types = %q, %q", kids[0].MediaType, kids[1].MediaType)
			}
		})
	}
}

func TestChildrenOfSubjectIsNotAChild(t *testing.T) {
	s := newMemStore()
	base := s.putImage(t, "linux/amd64", 1, false)
	cfg := s.put(handlers.MediaTypeEmptyJSON, []byte("{}"))
	sig := s.put("application/vnd.dev.cosign.simplesigning.v1+json", []byte(`{"critical":{}}`))
	m := ocispec.Manifest{MediaType: handlers.MediaTypeImageManifest, ArtifactType: "application/vnd.example.sig",
		Config: cfg, Layers: []ocispec.Descriptor{sig}, Subject: &base.manifest}
	m.SchemaVersion = 2
	desc := s.putJSON(t, handlers.MediaTypeImageManifest, m)
	kids, err := handlers.ChildrenOf(context.Background(), s, desc)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digests(kids), []digest.Digest{cfg.Digest, sig.Digest}; !slices.Equal(got, want) {
		t.Errorf("children = %v, want %v (no subject)", got, want)
	}
}

func TestChildrenOfIndex(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	amd := s.putImage(t, "linux/amd64", 1, false)
	arm := s.putImage(t, "linux/arm64", 1, false)
	idx := s.putIndex(t, amd.manifest, arm.manifest)
	kids, err := handlers.ChildrenOf(ctx, s, idx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digests(kids), []digest.Digest{amd.manifest.Digest, arm.manifest.Digest}; !slices.Equal(got, want) {
		t.Fatalf("children = %v, want %v", got, want)
	}
	if kids[1].Platform == nil || platforms.Format(*kids[1].Platform) != "linux/arm64" {
		t.Errorf("second child platform = %v, want linux/arm64", kids[1].Platform)
	}

	// A Docker manifest list, through the handler form.
	list := s.put(handlers.MediaTypeDockerSchema2ManifestList, fmt.Appendf(nil,
		`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"os":"linux","architecture":"amd64"}}]}`,
		handlers.MediaTypeDockerSchema2ManifestList, amd.manifest.MediaType, amd.manifest.Digest, amd.manifest.Size))
	kids, err = handlers.Children(s).Handle(ctx, list)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digests(kids), []digest.Digest{amd.manifest.Digest}; !slices.Equal(got, want) {
		t.Errorf("children = %v, want %v", got, want)
	}
}

func TestChildrenOfLeavesAreNotRead(t *testing.T) {
	s := newMemStore()
	img := s.putImage(t, "linux/amd64", 1, false)
	for _, d := range []ocispec.Descriptor{
		img.config,
		img.layers[0],
		{MediaType: "application/x.unknown", Digest: digest.FromString("absent"), Size: 6},
	} {
		kids, err := handlers.ChildrenOf(context.Background(), s, d)
		if err != nil || kids != nil {
			t.Errorf("ChildrenOf(%s) = %v, %v; want nil, nil", d.MediaType, kids, err)
		}
		if n := s.readCount(d.Digest); n != 0 {
			t.Errorf("ChildrenOf(%s) read the blob %d times", d.MediaType, n)
		}
	}
}

func TestChildrenOfErrors(t *testing.T) {
	s := newMemStore()
	img := s.putImage(t, "linux/amd64", 1, false)
	layer := img.layers[0]
	raw := func(mt, body string) ocispec.Descriptor { return s.put(mt, []byte(body)) }
	manifest := func(body string) ocispec.Descriptor { return raw(handlers.MediaTypeImageManifest, body) }
	index := func(body string) ocispec.Descriptor { return raw(handlers.MediaTypeImageIndex, body) }
	layerJSON := fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, layer.MediaType, layer.Digest, layer.Size)
	manyLayers := strings.Repeat(layerJSON+",", handlers.MaxLayers) + layerJSON
	manyManifests := manyLayers

	// Oversize: a valid manifest padded with spaces past 4 MiB.
	pad := bytes.Repeat([]byte(" "), content.DefaultReadLimit)
	big := s.put(handlers.MediaTypeImageManifest, append(pad, fmt.Appendf(nil, `{"schemaVersion":2,"config":%s,"layers":[]}`, layerJSON)...))

	tampered := img.manifest
	tampered.Digest = digest.FromString("something else")
	s.mu.Lock()
	s.blobs[tampered.Digest] = s.blobs[img.manifest.Digest]
	s.mu.Unlock()

	tests := []struct {
		name    string
		desc    ocispec.Descriptor
		wantErr error
		wantMsg []string
	}{
		{"missing blob", ocispec.Descriptor{MediaType: handlers.MediaTypeImageIndex, Digest: digest.FromString("absent"), Size: 6}, errdefs.ErrNotFound, nil},
		{"tampered blob", tampered, content.ErrDigestMismatch, nil},
		{"oversize manifest", big, content.ErrTooLarge, []string{"exceeds the limit of 4194304"}},
		{"not json", manifest(`{"schemaVersion":2,`), errdefs.ErrInvalidArgument, nil},
		{"media type mismatch", manifest(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":%s}`, handlers.MediaTypeDockerSchema2Manifest, layerJSON)),
			errdefs.ErrInvalidArgument, []string{handlers.MediaTypeDockerSchema2Manifest, handlers.MediaTypeImageManifest}},
		{"index labelled manifest", manifest(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[]}`, handlers.MediaTypeImageIndex)),
			errdefs.ErrInvalidArgument, []string{handlers.MediaTypeImageIndex}},
		{"manifest with manifests", manifest(fmt.Sprintf(`{"schemaVersion":2,"config":%s,"manifests":[]}`, layerJSON)), errdefs.ErrInvalidArgument, []string{"manifests"}},
		{"index with layers", index(`{"schemaVersion":2,"manifests":[],"layers":[]}`), errdefs.ErrInvalidArgument, nil},
		{"index with config", index(fmt.Sprintf(`{"schemaVersion":2,"manifests":[],"config":%s}`, layerJSON)), errdefs.ErrInvalidArgument, nil},
		{"no config", manifest(`{"schemaVersion":2,"layers":[]}`), errdefs.ErrInvalidArgument, nil},
		{"schema1 body", manifest(`{"schemaVersion":1,"fsLayers":[]}`), errdefs.ErrInvalidArgument, nil},
		{"bad layer digest", manifest(fmt.Sprintf(`{"schemaVersion":2,"config":%s,"layers":[{"mediaType":"a","digest":"sha256:abc","size":1}]}`, layerJSON)), errdefs.ErrInvalidArgument, []string{"layer 0"}},
		{"no layer media type", manifest(fmt.Sprintf(`{"schemaVersion":2,"config":%s,"layers":[{"digest":%q,"size":1}]}`, layerJSON, layer.Digest)), errdefs.ErrInvalidArgument, nil},
		{"negative size", index(fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":%q,"size":-1}]}`, layer.Digest)), errdefs.ErrInvalidArgument, []string{"manifest 0"}},
		{"too many layers", manifest(fmt.Sprintf(`{"schemaVersion":2,"config":%s,"layers":[%s]}`, layerJSON, manyLayers)), content.ErrTooLarge, []string{"1025"}},
		{"too many manifests", index(fmt.Sprintf(`{"schemaVersion":2,"manifests":[%s]}`, manyManifests)), content.ErrTooLarge, []string{"1025"}},
		{"schema1", raw(handlers.MediaTypeDockerSchema1SignedManifest, `{"schemaVersion":1}`), errdefs.ErrNotImplemented, []string{"handlers/schema1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kids, err := handlers.ChildrenOf(context.Background(), s, tt.desc)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ChildrenOf() error = %v, want %v", err, tt.wantErr)
			}
			if kids != nil {
				t.Errorf("ChildrenOf() children = %v, want none on error", kids)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}

	t.Run("limits are typed", func(t *testing.T) {
		_, err := handlers.ChildrenOf(context.Background(), s, big)
		var le *content.LimitError
		if !errors.As(err, &le) || !errdefs.IsResourceExhausted(err) {
			t.Fatalf("error = %v, want a *content.LimitError", err)
		}
	})
}

func TestChildrenOfAtLimits(t *testing.T) {
	s := newMemStore()
	img := s.putImage(t, "linux/amd64", 1, false)
	layers := slices.Repeat([]ocispec.Descriptor{img.layers[0]}, handlers.MaxLayers)
	m := ocispec.Manifest{Config: img.config, Layers: layers}
	m.SchemaVersion = 2
	kids, err := handlers.ChildrenOf(context.Background(), s, s.putJSON(t, handlers.MediaTypeImageManifest, m))
	if err != nil || len(kids) != handlers.MaxLayers+1 {
		t.Errorf("manifest with MaxLayers layers: %d children, %v", len(kids), err)
	}
	idx := s.putIndex(t, slices.Repeat([]ocispec.Descriptor{img.manifest}, handlers.MaxIndexManifests)...)
	kids, err = handlers.ChildrenOf(context.Background(), s, idx)
	if err != nil || len(kids) != handlers.MaxIndexManifests {
		t.Errorf("index with MaxIndexManifests manifests: %d children, %v", len(kids), err)
	}
}
