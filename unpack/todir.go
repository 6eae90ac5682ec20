package unpack

import (
	"context"
	"fmt"
	"os"
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

// ToDir flattens the image desc, whose blobs are all in p, into the plain
// directory dir: it applies each layer in order straight into dir,
// verifying each one's DiffID against the image config, with no snapshots.
//
// desc is a manifest, or an index whose manifest for [WithPlatforms] (the
// host's platform by default) is used. dir is created, with mode 0755, when
// it does not exist; what it holds already is treated as a layer below the
// image's. [WithApplyOptions] passes options to [Apply]; [WithFetchSkipped]
// does nothing here.
//
// Nothing is written outside dir: a layer that would reach out of it fails
// ToDir with an [*UnsafeEntryError], and a DiffID that does not match with a
// [*DiffIDMismatchError]. ToDir does not roll back: after an error, dir
// holds part of the image and should be discarded. A manifest whose
// config is not an image config, or an encrypted layer, is an error that
// matches errdefs.ErrInvalidArgument or errdefs.ErrNotImplemented.
func ToDir(ctx context.Context, p content.Provider, desc ocispec.Descriptor, dir string, opts ...Option) error {
	cfg := newConfig(opts)
	mdesc, err := chooseManifest(ctx, p, desc, cfg.platforms)
	if err != nil {
		return fmt.Errorf("unpack %s to %s: %w", desc.Digest, dir, err)
	}
	manifest, err := handlers.Manifest(ctx, p, mdesc, platforms.All)
	if err != nil {
		return fmt.Errorf("unpack %s to %s: %w", mdesc.Digest, dir, err)
	}
	diffIDs, err := handlers.DiffIDs(ctx, p, mdesc, platforms.All)
	if err != nil {
		return fmt.Errorf("unpack %s to %s: %w", mdesc.Digest, dir, err)
	}
	if err := checkLayers(manifest.Layers); err != nil {
		return fmt.Errorf("unpack %s to %s: %w", mdesc.Digest, dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unpack %s: %w", mdesc.Digest, err)
	}
	for i, l := range manifest.Layers {
		if err := applyBlob(ctx, p, l, dir, append(slices.Clip(cfg.applyOpts), WithDiffID(diffIDs[i]))); err != nil {
			return fmt.Errorf("unpack %s to %s: layer %d (%s): %w", mdesc.Digest, dir, i, l.Digest, err)
		}
	}
	return nil
}

// applyBlob applies the layer blob l, read from p, onto dir.
func applyBlob(ctx context.Context, p content.Provider, l ocispec.Descriptor, dir string, opts []ApplyOption) error {
	ra, err := p.ReaderAt(ctx, l)
	if err != nil {
		return err
	}
	defer ra.Close()
	_, err = Apply(ctx, dir, content.NewReader(ra), opts...)
	return err
}
