package handlers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers/platforms"
)

// resolved is a manifest chosen for a platform, with its config if it had
// to be read to check the platform.
type resolved struct {
	desc     ocispec.Descriptor
	manifest ocispec.Manifest
	config   *ocispec.Image
}

// resolveManifest picks and reads the manifest for m under desc.
func resolveManifest(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m platforms.MatchComparer) (resolved, error) {
	if m == nil {
		m = platforms.All
	}
	switch {
	case IsSchema1(desc.MediaType):
		return resolved{}, fmt.Errorf("manifest %s: %s manifests must be converted by handlers/schema1: %w",
			desc.Digest, baseType(desc.MediaType), errdefs.ErrNotImplemented)
	case IsIndex(desc.MediaType):
		idx, err := readIndex(ctx, p, desc)
		if err != nil {
			return resolved{}, err
		}
		nested := func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			return ChildrenOf(ctx, p, d)
		}
		all, err := flatten(ctx, desc, idx.Manifests, nested)
		if err != nil {
			return resolved{}, err
		}
		var cands []ocispec.Descriptor
		for _, d := range all {
			if IsManifest(d.MediaType) || IsSchema1(d.MediaType) {
				cands = append(cands, d)
			}
		}
		best, err := selectManifests(cands, m, 1)
		if err != nil {
			return resolved{}, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		return resolveManifest(ctx, p, best[0], platforms.All)
	case IsManifest(desc.MediaType):
		man, err := readManifest(ctx, p, desc)
		if err != nil {
			return resolved{}, err
		}
		r := resolved{desc: desc, manifest: man}
		if m == platforms.All {
			return r, nil
		}
		// A manifest named directly says nothing of its platform unless its
		// descriptor does; its config does.
		if desc.Platform != nil {
			if !m.Match(*desc.Platform) {
				return resolved{}, fmt.Errorf("manifest %s: %w", desc.Digest, &NoMatchError{Offered: []ocispec.Platform{*desc.Platform}})
			}
			return r, nil
		}
		if !isImageConfig(man.Config.MediaType) {
			return r, nil
		}
		img, err := readConfig(ctx, p, man.Config)
		if err != nil {
			return resolved{}, err
		}
		r.config = &img
		if img.OS != "" && !m.Match(img.Platform) {
			return resolved{}, fmt.Errorf("manifest %s: %w", desc.Digest, &NoMatchError{Offered: []ocispec.Platform{img.Platform}})
		}
		return r, nil
	}
	return resolved{}, fmt.Errorf("manifest %s: %q is not a manifest or index media type: %w",
		desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
}

// isImageConfig reports whether mt may be an image config: an OCI or Docker
// config, or the legacy octet-stream type in a config slot.
func isImageConfig(mt string) bool {
	return IsConfig(mt) || baseType(mt) == MediaTypeLegacyConfig
}

// readConfig reads, verifies and decodes the image config desc.
func readConfig(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (ocispec.Image, error) {
	b, err := content.ReadBlob(ctx, p, desc, 0)
	if err != nil {
		return ocispec.Image{}, err
	}
	var img ocispec.Image
	if err := json.Unmarshal(b, &img); err != nil {
		return ocispec.Image{}, fmt.Errorf("decode config %s: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	return img, nil
}

// ManifestDescriptor returns the descriptor of the manifest to use for m
// under desc:
//
//   - for an index (OCI or Docker), the best match for m among its manifests
//     and those of the indexes nested in it, chosen as [LimitManifests]
//     chooses with n = 1, among the entries that are manifests;
//   - for a manifest, desc itself, once its platform is checked: the one
//     desc.Platform declares or, without one, the one its image config
//     declares (a config that declares no OS is not checked).
//
// A nil m, or platforms.All, accepts any platform and picks an index's first
// manifest. No match is a [*NoMatchError], which matches
// errdefs.ErrNotFound. Blobs are read from p, which must not be nil,
// verified and bounded as [ChildrenOf] reads them, with the same errors. A schema 1 manifest is an
// error that matches errdefs.ErrNotImplemented; any other media type is an
// error that matches errdefs.ErrInvalidArgument.
func ManifestDescriptor(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m platforms.MatchComparer) (ocispec.Descriptor, error) {
	r, err := resolveManifest(ctx, p, desc, m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return r.desc, nil
}

// Manifest returns the manifest for m under desc, picked as
// [ManifestDescriptor] picks it, and read, verified and decoded as
// [ChildrenOf] reads it.
func Manifest(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m platforms.MatchComparer) (ocispec.Manifest, error) {
	r, err := resolveManifest(ctx, p, desc, m)
	if err != nil {
		return ocispec.Manifest{}, err
	}
	return r.manifest, nil
}

// ConfigDescriptor returns the config descriptor of the manifest for m under
// desc (see [ManifestDescriptor]).
func ConfigDescriptor(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m platforms.MatchComparer) (ocispec.Descriptor, error) {
	r, err := resolveManifest(ctx, p, desc, m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return r.manifest.Config, nil
}

// Config returns the image config of the manifest for m under desc (see
// [ManifestDescriptor]), and the config's descriptor. The config is read
// with [content.ReadBlob]: verified, and refused over 4 MiB. A config whose
// media type is not an image config (an OCI or Docker config, or the legacy
// "application/octet-stream"), as with most artifacts, or that does not
// decode, is an error that matches errdefs.ErrInvalidArgument.
func Config(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m platforms.MatchComparer) (ocispec.Image, ocispec.Descriptor, error) {
	r, err := resolveManifest(ctx, p, desc, m)
	if err != nil {
		return ocispec.Image{}, ocispec.Descriptor{}, err
	}
	img, err := r.image(ctx, p)
	return img, r.manifest.Config, err
}

// image returns r's config, reading it unless it was read already.
func (r resolved) image(ctx context.Context, p content.Provider) (ocispec.Image, error) {
	cfg := r.manifest.Config
	if !isImageConfig(cfg.MediaType) {
		return ocispec.Image{}, fmt.Errorf("manifest %s: config %s has media type %q, not an image config: %w",
			r.desc.Digest, cfg.Digest, cfg.MediaType, errdefs.ErrInvalidArgument)
	}
	if r.config != nil {
		return *r.config, nil
	}
	return readConfig(ctx, p, cfg)
}

// DiffIDs returns the diff IDs of the image for m under desc (see
// [ManifestDescriptor]): the digests of its layers once uncompressed, bottom
// first, from its config's rootfs. It checks what an unpacker relies on, with
// errors that match errdefs.ErrInvalidArgument: a rootfs of type "layers",
// valid digests, and one diff ID for each layer of the manifest.
func DiffIDs(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m platforms.MatchComparer) ([]digest.Digest, error) {
	r, err := resolveManifest(ctx, p, desc, m)
	if err != nil {
		return nil, err
	}
	img, err := r.image(ctx, p)
	if err != nil {
		return nil, err
	}
	cfg := r.manifest.Config.Digest
	if img.RootFS.Type != "layers" {
		return nil, fmt.Errorf("config %s: rootfs type %q, want \"layers\": %w", cfg, img.RootFS.Type, errdefs.ErrInvalidArgument)
	}
	if len(img.RootFS.DiffIDs) != len(r.manifest.Layers) {
		return nil, fmt.Errorf("config %s: %d diff IDs for the %d layers of manifest %s: %w",
			cfg, len(img.RootFS.DiffIDs), len(r.manifest.Layers), r.desc.Digest, errdefs.ErrInvalidArgument)
	}
	for i, d := range img.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("config %s: diff ID %d %q: %v: %w", cfg, i, d, err, errdefs.ErrInvalidArgument)
		}
	}
	return img.RootFS.DiffIDs, nil
}
