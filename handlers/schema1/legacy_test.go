package schema1_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/schema1"
)

// putManifest stores a manifest of media type mt whose config has media
// type configType, and returns its descriptor and its layer.
func putManifest(t *testing.T, store *memory.Store, mt, configType string) (ocispec.Descriptor, ocispec.Descriptor, ocispec.Descriptor) {
	t.Helper()
	ctx := context.Background()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	configDesc := ocispec.Descriptor{MediaType: configType, Digest: digest.FromBytes(config), Size: int64(len(config))}
	if err := content.WriteBlob(ctx, store, "config", bytes.NewReader(config), configDesc); err != nil {
		t.Fatal(err)
	}
	layer := ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Layer, Digest: digest.FromString("layer"), Size: 5}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mt,
		"config":        map[string]any{"mediaType": configType, "digest": configDesc.Digest, "size": configDesc.Size, "annotations": map[string]string{"k": "v"}},
		"layers":        []ocispec.Descriptor{layer},
		"annotations":   map[string]string{"org.example": "kept"},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b)), Platform: p}
	if err := content.WriteBlob(ctx, store, "manifest", bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
	return desc, configDesc, layer
}

func TestConvertLegacyConfig(t *testing.T) {
	tests := []struct {
		name, mediaType, configType string
		wantType                    string // the config's type after; "" for unchanged
	}{
		{"Docker manifest, legacy config", handlers.MediaTypeDockerSchema2Manifest, handlers.MediaTypeLegacyConfig, handlers.MediaTypeDockerSchema2Config},
		{"OCI manifest, legacy config", handlers.MediaTypeImageManifest, handlers.MediaTypeLegacyConfig, handlers.MediaTypeImageConfig},
		{"Docker config", handlers.MediaTypeDockerSchema2Manifest, handlers.MediaTypeDockerSchema2Config, ""},
		{"OCI config", handlers.MediaTypeImageManifest, handlers.MediaTypeImageConfig, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			store := memory.New()
			desc, configDesc, layer := putManifest(t, store, tt.mediaType, tt.configType)
			got, err := schema1.ConvertLegacyConfig(ctx, store, desc)
			if err != nil {
				t.Fatalf("ConvertLegacyConfig() error = %v", err)
			}
			if tt.wantType == "" {
				if got.Digest != desc.Digest {
					t.Errorf("ConvertLegacyConfig() = %s, want the manifest unchanged (%s)", got.Digest, desc.Digest)
				}
				return
			}
			if got.Digest == desc.Digest || got.MediaType != desc.MediaType || got.Platform == nil || got.Platform.Architecture != "amd64" {
				t.Fatalf("ConvertLegacyConfig() = %+v, want a new manifest of the same type and platform", got)
			}
			m, err := handlers.Manifest(ctx, store, got, nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.MediaType != tt.wantType || m.Config.Digest != configDesc.Digest || m.Config.Annotations["k"] != "v" {
				t.Errorf("config = %+v, want %s with the rest kept", m.Config, tt.wantType)
			}
			if m.Annotations["org.example"] != "kept" || len(m.Layers) != 1 || m.Layers[0].Digest != layer.Digest {
				t.Errorf("manifest = %+v, want its annotations and layers kept", m)
			}
			info, err := store.Info(ctx, got.Digest)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"containerd.io/gc.ref.content.config": configDesc.Digest.String(),
				"containerd.io/gc.ref.content.l.0":    layer.Digest.String(),
			}
			if !maps.Equal(info.Labels, want) {
				t.Errorf("labels = %v, want %v", info.Labels, want)
			}
			if _, _, err := handlers.Config(ctx, store, got, nil); err != nil {
				t.Errorf("handlers.Config() error = %v", err)
			}
		})
	}
}

func TestConvertLegacyConfigOthers(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	// Not a manifest: returned as it is, unread (it is not even stored).
	idx := ocispec.Descriptor{MediaType: handlers.MediaTypeImageIndex, Digest: digest.FromString("index"), Size: 5}
	if got, err := schema1.ConvertLegacyConfig(ctx, store, idx); err != nil || got.Digest != idx.Digest {
		t.Errorf("ConvertLegacyConfig(index) = %s, %v; want it unchanged", got.Digest, err)
	}
	// A manifest the store does not have.
	missing := ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Manifest, Digest: digest.FromString("m"), Size: 1}
	if _, err := schema1.ConvertLegacyConfig(ctx, store, missing); !errdefs.IsNotFound(err) {
		t.Errorf("ConvertLegacyConfig(missing) error = %v, want not found", err)
	}
	// A manifest that does not decode.
	bad := []byte(`{"schemaVersion":2,"config":"nope"}`)
	badDesc := ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Manifest, Digest: digest.FromBytes(bad), Size: int64(len(bad))}
	if err := content.WriteBlob(ctx, store, "bad", bytes.NewReader(bad), badDesc); err != nil {
		t.Fatal(err)
	}
	if _, err := schema1.ConvertLegacyConfig(ctx, store, badDesc); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ConvertLegacyConfig(undecodable) error = %v, want invalid argument", err)
	}
}
