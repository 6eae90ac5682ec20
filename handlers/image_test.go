package handlers_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

func TestManifestAndConfig(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	amd := s.putImage(t, "linux/amd64", 2, true)
	arm := s.putImage(t, "linux/arm64", 1, true)
	list := s.putJSON(t, handlers.MediaTypeDockerSchema2ManifestList, map[string]any{
		"schemaVersion": 2,
		"mediaType":     handlers.MediaTypeDockerSchema2ManifestList,
		"manifests":     []ocispec.Descriptor{amd.manifest, arm.manifest},
	})
	only := func(spec string) platforms.MatchComparer { return platforms.Only(platforms.MustParse(spec)) }

	for _, tc := range []struct {
		name string
		root ocispec.Descriptor
		m    platforms.MatchComparer
		want testImage
	}{
		{"list amd64", list, only("linux/amd64"), amd},
		{"list arm64", list, only("linux/arm64"), arm},
		{"list nil matcher takes first", list, nil, amd},
		{"manifest checked by config", withPlatform(arm.manifest, ""), only("linux/arm64"), arm},
		{"manifest nil matcher", withPlatform(arm.manifest, ""), nil, arm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md, err := handlers.ManifestDescriptor(ctx, s, tc.root, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if md.Digest != tc.want.manifest.Digest {
				t.Errorf("ManifestDescriptor() = %s, want %s", md.Digest, tc.want.manifest.Digest)
			}
			man, err := handlers.Manifest(ctx, s, tc.root, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(digests(man.Layers), digests(tc.want.layers)) || man.MediaType != handlers.MediaTypeDockerSchema2Manifest {
				t.Errorf("Manifest() = %+v, want the manifest of %s", man, tc.want.manifest.Digest)
			}
			cd, err := handlers.ConfigDescriptor(ctx, s, tc.root, tc.m)
			if err != nil || cd.Digest != tc.want.config.Digest {
				t.Errorf("ConfigDescriptor() = %s, %v; want %s", cd.Digest, err, tc.want.config.Digest)
			}
			img, cd, err := handlers.Config(ctx, s, tc.root, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if cd.Digest != tc.want.config.Digest || img.Architecture != platforms.MustParse(tc.want.manifest.Platform.Architecture).Architecture {
				t.Errorf("Config() = %s for %s, want %s", cd.Digest, img.Architecture, tc.want.config.Digest)
			}
			ids, err := handlers.DiffIDs(ctx, s, tc.root, tc.m)
			if err != nil || !slices.Equal(ids, tc.want.diffIDs) {
				t.Errorf("DiffIDs() = %v, %v; want %v", ids, err, tc.want.diffIDs)
			}
		})
	}

	t.Run("config read once", func(t *testing.T) {
		s := newMemStore()
		img := s.putImage(t, "linux/amd64", 1, false)
		if _, _, err := handlers.Config(ctx, s, withPlatform(img.manifest, ""), only("linux/amd64")); err != nil {
			t.Fatal(err)
		}
		if n := s.readCount(img.config.Digest); n != 1 {
			t.Errorf("config read %d times, want once", n)
		}
	})
}

func TestManifestErrors(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	amd := s.putImage(t, "linux/amd64", 1, false)
	arm64 := platforms.Only(platforms.MustParse("linux/arm64"))
	layerOnly := s.putIndex(t, withPlatform(amd.layers[0], "linux/arm64"))
	schema1 := s.put(handlers.MediaTypeDockerSchema1SignedManifest, []byte(`{"schemaVersion":1}`))
	listsSchema1 := s.putIndex(t, withPlatform(schema1, "linux/arm64"))

	tests := []struct {
		name    string
		desc    ocispec.Descriptor
		wantErr error
		offered []string
	}{
		{"index without match", s.putIndex(t, amd.manifest), errdefs.ErrNotFound, []string{"linux/amd64"}},
		{"manifest for another platform", withPlatform(amd.manifest, ""), errdefs.ErrNotFound, []string{"linux/amd64"}},
		{"descriptor platform wins", withPlatform(amd.manifest, "linux/ppc64le"), errdefs.ErrNotFound, []string{"linux/ppc64le"}},
		{"index of non-manifests", layerOnly, errdefs.ErrNotFound, []string{}},
		{"schema1", schema1, errdefs.ErrNotImplemented, nil},
		{"index picks schema1", listsSchema1, errdefs.ErrNotImplemented, nil},
		{"a layer", amd.layers[0], errdefs.ErrInvalidArgument, nil},
		{"missing", ocispec.Descriptor{MediaType: handlers.MediaTypeImageIndex, Digest: digest.FromString("x"), Size: 1}, errdefs.ErrNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := handlers.Manifest(ctx, s, tt.desc, arm64)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Manifest() error = %v, want %v", err, tt.wantErr)
			}
			var nm *handlers.NoMatchError
			if errors.As(err, &nm) != (tt.offered != nil) {
				t.Fatalf("Manifest() error = %v; a *NoMatchError: %v", err, tt.offered != nil)
			}
			if nm != nil {
				got := []string{}
				for _, p := range nm.Offered {
					got = append(got, platforms.Format(p))
				}
				if !slices.Equal(got, tt.offered) {
					t.Errorf("Offered = %v, want %v", got, tt.offered)
				}
			}
			if _, _, cerr := handlers.Config(ctx, s, tt.desc, arm64); !errors.Is(cerr, tt.wantErr) {
				t.Errorf("Config() error = %v, want %v", cerr, tt.wantErr)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	img := s.putImage(t, "linux/amd64", 2, false)
	manifest := func(config ocispec.Descriptor, layers []ocispec.Descriptor) ocispec.Descriptor {
		m := ocispec.Manifest{MediaType: handlers.MediaTypeImageManifest, Config: config, Layers: layers}
		m.SchemaVersion = 2
		return s.putJSON(t, handlers.MediaTypeImageManifest, m)
	}
	config := func(rootfs ocispec.RootFS) ocispec.Descriptor {
		return s.putJSON(t, handlers.MediaTypeImageConfig, ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, RootFS: rootfs})
	}

	artifact := manifest(s.put(handlers.MediaTypeEmptyJSON, []byte("{}")), img.layers)
	if _, _, err := handlers.Config(ctx, s, artifact, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Config(artifact) error = %v, want InvalidArgument", err)
	}
	if cd, err := handlers.ConfigDescriptor(ctx, s, artifact, nil); err != nil || cd.MediaType != handlers.MediaTypeEmptyJSON {
		t.Errorf("ConfigDescriptor(artifact) = %v, %v; want the empty config", cd, err)
	}
	broken := manifest(s.put(handlers.MediaTypeImageConfig, []byte("{not json")), nil)
	if _, _, err := handlers.Config(ctx, s, broken, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Config(broken) error = %v, want InvalidArgument", err)
	}
	// A legacy octet-stream config is still an image config.
	legacy := config(ocispec.RootFS{Type: "layers", DiffIDs: img.diffIDs[:1]})
	legacy.MediaType = handlers.MediaTypeLegacyConfig
	if ids, err := handlers.DiffIDs(ctx, s, manifest(legacy, img.layers[:1]), platforms.Only(platforms.MustParse("linux/amd64"))); err != nil || len(ids) != 1 {
		t.Errorf("DiffIDs(legacy config) = %v, %v", ids, err)
	}

	for _, tt := range []struct {
		name   string
		rootfs ocispec.RootFS
	}{
		{"one diff ID short", ocispec.RootFS{Type: "layers", DiffIDs: img.diffIDs[:1]}},
		{"wrong type", ocispec.RootFS{Type: "tarballs", DiffIDs: img.diffIDs}},
		{"bad diff ID", ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{img.diffIDs[0], "sha256:nothex"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := handlers.DiffIDs(ctx, s, manifest(config(tt.rootfs), img.layers), nil)
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("DiffIDs() error = %v, want InvalidArgument", err)
			}
		})
	}
}
