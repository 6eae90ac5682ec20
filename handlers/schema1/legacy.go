package schema1

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
)

// ConvertLegacyConfig rewrites a manifest whose config has the legacy media
// type "application/octet-stream" (handlers.MediaTypeLegacyConfig), which
// early Docker clients pushed (distribution/distribution#1622), so that its
// config has the image config media type of its kind: Docker's for a
// Docker schema 2 manifest, OCI's for an OCI manifest. containerd does the
// same with images.ConvertManifest (it uses Docker's type for both).
//
// It reads desc from store (verified, at most 4 MiB, decoded and checked as
// handlers.ChildrenOf does), writes the rewritten manifest into store with
// the garbage-collection labels of its config and layers
// (handlers.ChildGCLabels), and returns its descriptor: desc with the new
// digest and size, its platform and annotations kept. Only the config's
// media type changes; every other member of the manifest is kept, though
// members are written in sorted order. The old manifest is left in store.
//
// Any other manifest, and any descriptor that is not an image manifest
// (handlers.IsManifest), such as an index, is returned as it is, unread.
// pullkit's own readers accept the legacy type in a manifest's config slot,
// so the rewrite is for tools that do not.
func ConvertLegacyConfig(ctx context.Context, store content.Store, desc ocispec.Descriptor) (ocispec.Descriptor, error) {
	if !handlers.IsManifest(desc.MediaType) {
		return desc, nil
	}
	children, err := handlers.ChildrenOf(ctx, store, desc)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert legacy config of %s: %w", desc.Digest, err)
	}
	if len(children) == 0 || children[0].MediaType != handlers.MediaTypeLegacyConfig {
		return desc, nil
	}
	configType := handlers.MediaTypeImageConfig
	if desc.MediaType == handlers.MediaTypeDockerSchema2Manifest {
		configType = handlers.MediaTypeDockerSchema2Config
	}

	// Read again as JSON objects, to change one member and keep the rest.
	b, err := content.ReadBlob(ctx, store, desc, 0)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert legacy config of %s: %w", desc.Digest, err)
	}
	var m, cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert legacy config of %s: %w", desc.Digest, invalid("decode: %v", err))
	}
	if err := json.Unmarshal(m["config"], &cfg); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert legacy config of %s: %w", desc.Digest, invalid("decode config: %v", err))
	}
	cfg["mediaType"] = mustMarshal(configType)
	m["config"] = mustMarshal(cfg)
	out, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert legacy config of %s: %w", desc.Digest, invalid("encode: %v", err))
	}

	children[0].MediaType = configType
	nd := desc
	nd.Digest, nd.Size = digest.FromBytes(out), int64(len(out))
	if err := content.WriteBlob(ctx, store, fetch.IngestRef(nd), bytes.NewReader(out), nd,
		content.WithLabels(handlers.ChildGCLabels(children))); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert legacy config of %s: write manifest: %w", desc.Digest, err)
	}
	return nd, nil
}
