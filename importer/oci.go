package importer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/reference"
)

// annotationImageName is containerd's annotation for an image's full name
// on an index.json entry.
const annotationImageName = "io.containerd.image.name"

// visit is what walking one manifest or index found.
type visit struct {
	// n counts the manifests kept.
	n int
	// configs are the digests of their configs.
	configs []digest.Digest
}

// decodeIndexJSON decodes and checks an OCI layout's index.json: every
// entry has a valid digest, a media type and a size that is not negative.
func decodeIndexJSON(b []byte) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Index{}, invalid("decode index.json: %v", err)
	}
	if idx.MediaType != "" && !handlers.IsIndex(idx.MediaType) {
		return ocispec.Index{}, invalid("index.json has media type %q", idx.MediaType)
	}
	if len(idx.Manifests) > handlers.MaxIndexManifests {
		return ocispec.Index{}, fmt.Errorf("index.json: %w",
			&content.LimitError{What: "index manifests", Limit: handlers.MaxIndexManifests, Got: int64(len(idx.Manifests))})
	}
	for i, d := range idx.Manifests {
		if err := checkDescriptor(d); err != nil {
			return ocispec.Index{}, fmt.Errorf("index.json: entry %d: %w", i, err)
		}
	}
	return idx, nil
}

// importLayout imports the entries of an OCI image layout's index.json.
func (im *importer) importLayout(ctx context.Context, a *archive) ([]*image, error) {
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(a.files[fileLayout].data, &layout); err != nil {
		return nil, invalid("decode oci-layout: %v", err)
	}
	if layout.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("oci-layout version %q, want %q: %w", layout.Version, ocispec.ImageLayoutVersion, ErrUnsupported)
	}
	ie := a.files[fileIndex]
	if ie == nil {
		return nil, fmt.Errorf("OCI layout: %q: %w", fileIndex, ErrMissing)
	}
	idx, err := decodeIndexJSON(ie.data)
	if err != nil {
		return nil, err
	}
	var imgs []*image
	for i, d := range idx.Manifests {
		names, err := im.ociNames(d)
		if err != nil {
			return nil, fmt.Errorf("index.json: entry %d: %w", i, err)
		}
		v, err := im.visit(ctx, a, d, 0)
		if err != nil {
			return nil, fmt.Errorf("index.json: entry %d: %w", i, err)
		}
		if v.n == 0 {
			continue
		}
		target := ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Platform: d.Platform}
		imgs = append(imgs, &image{target: target, names: names, configs: v.configs})
	}
	return imgs, nil
}

// ociNames returns the name an index.json entry gives: containerd's full
// name annotation, else the OCI ref name, which is taken as a tag of the
// name prefix when it has no '/', ':' or '@'.
func (im *importer) ociNames(d ocispec.Descriptor) ([]string, error) {
	var (
		ref reference.Reference
		err error
	)
	if n := d.Annotations[annotationImageName]; n != "" {
		ref, err = reference.Parse(n)
	} else if n = d.Annotations[ocispec.AnnotationRefName]; n == "" {
		return nil, nil
	} else if !strings.ContainsAny(n, "/:@") {
		ref, err = im.prefix.WithTag(n)
	} else {
		ref, err = reference.Parse(n)
	}
	if err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	if ref.Digest != "" && ref.Digest != d.Digest {
		return nil, invalid("name %q pins %s, but the entry is %s", ref, ref.Digest, d.Digest)
	}
	return []string{ref.String()}, nil
}

// has reports whether the store has the blob d: streamed in by this
// import, or there before.
func (im *importer) has(ctx context.Context, d digest.Digest) (bool, error) {
	_, err := im.store.Info(ctx, d)
	switch {
	case err == nil:
		return true, nil
	case errdefs.IsNotFound(err):
		return false, nil
	}
	return false, err
}

// missing turns a NotFound from the store into ErrMissing; what names the
// blob.
func missing(what string, err error) error {
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("%s: %w", what, ErrMissing)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// visit checks the manifest or index d and what it references, and plans
// their labels. It returns how many manifests under d pass the platform
// filter; a manifest passes when its descriptor or, without a platform
// there, its config names a matching platform.
func (im *importer) visit(ctx context.Context, a *archive, d ocispec.Descriptor, depth int) (visit, error) {
	if d.Platform != nil && !im.matches(*d.Platform) {
		return visit{}, nil
	}
	if v, ok := im.visited[d.Digest]; ok {
		return v, nil
	}
	if depth > handlers.MaxIndexDepth {
		return visit{}, &content.LimitError{What: "index nesting depth", Limit: handlers.MaxIndexDepth, Got: int64(depth)}
	}
	var (
		v   visit
		err error
	)
	switch mt := d.MediaType; {
	case handlers.IsIndex(mt):
		v, err = im.visitIndex(ctx, a, d, depth)
	case handlers.IsManifest(mt):
		v, err = im.visitManifest(ctx, a, d)
	case handlers.IsSchema1(mt):
		err = fmt.Errorf("%s: schema 1 manifest: %w", d.Digest, ErrUnsupported)
	default:
		err = invalid("%s: media type %q is neither a manifest nor an index", d.Digest, mt)
	}
	if err != nil {
		return visit{}, err
	}
	im.visited[d.Digest] = v
	return v, nil
}

// visitIndex visits the manifests of the index d that the archive (or the
// store) has; the others are left out, as docker save leaves out the
// platforms it was not asked for. A top-level index none of whose
// manifests is there is an error that matches ErrMissing.
func (im *importer) visitIndex(ctx context.Context, a *archive, d ocispec.Descriptor, depth int) (visit, error) {
	children, err := handlers.ChildrenOf(ctx, im.store, d)
	if err != nil {
		return visit{}, missing(fmt.Sprintf("index %s", d.Digest), err)
	}
	var (
		out     visit
		kept    []ocispec.Descriptor
		present bool
	)
	for _, c := range children {
		ok, err := im.has(ctx, c.Digest)
		if err != nil {
			return visit{}, err
		}
		if !ok {
			continue
		}
		mt := c.MediaType
		if !handlers.IsIndex(mt) && !handlers.IsManifest(mt) && !handlers.IsSchema1(mt) {
			// Not an image (an artifact's blob listed in the index):
			// keep it referenced.
			kept = append(kept, c)
			continue
		}
		present = true
		v, err := im.visit(ctx, a, c, depth+1)
		if err != nil {
			return visit{}, fmt.Errorf("index %s: %w", d.Digest, err)
		}
		if v.n > 0 {
			kept = append(kept, c)
			out.n += v.n
			out.configs = append(out.configs, v.configs...)
		}
	}
	if !present && depth == 0 {
		return visit{}, fmt.Errorf("index %s: none of its %d manifests: %w", d.Digest, len(children), ErrMissing)
	}
	if out.n > 0 {
		im.plan(d.Digest, handlers.ChildGCLabels(kept))
	}
	return out, nil
}

// visitManifest checks that the manifest d's config and layers are
// present with the sizes it gives, and the layers' diffIDs against the
// config's. Foreign and non-distributable layers may be absent.
func (im *importer) visitManifest(ctx context.Context, a *archive, d ocispec.Descriptor) (visit, error) {
	where := fmt.Sprintf("manifest %s", d.Digest)
	children, err := handlers.ChildrenOf(ctx, im.store, d)
	if err != nil {
		return visit{}, missing(where, err)
	}
	cfg, layers := children[0], children[1:]
	var config *ocispec.Image
	if handlers.IsConfig(cfg.MediaType) {
		b, err := content.ReadBlob(ctx, im.store, cfg, MaxJSONSize)
		if err != nil {
			return visit{}, missing(fmt.Sprintf("%s: config %s", where, cfg.Digest), err)
		}
		config = new(ocispec.Image)
		if err := json.Unmarshal(b, config); err != nil {
			return visit{}, invalid("%s: config %s: %v", where, cfg.Digest, err)
		}
		if d.Platform == nil && !im.matches(platformOf(*config)) {
			return visit{}, nil
		}
	}
	for i, c := range children {
		info, err := im.store.Info(ctx, c.Digest)
		switch {
		case errdefs.IsNotFound(err) && i > 0 && mayBeAbsent(c):
			continue
		case err != nil:
			return visit{}, missing(fmt.Sprintf("%s: blob %s", where, c.Digest), err)
		case info.Size != c.Size:
			return visit{}, fmt.Errorf("%s: blob %s: %w", where, c.Digest,
				&content.MismatchError{Expected: c.Digest, ExpectedSize: c.Size, ActualSize: info.Size})
		}
	}
	if config != nil {
		if err := checkDiffIDs(a, layers, config.RootFS.DiffIDs); err != nil {
			return visit{}, fmt.Errorf("%s: %w", where, err)
		}
	}
	im.plan(d.Digest, handlers.ChildGCLabels(children))
	im.planLayerLabels(a, layers)
	return visit{n: 1, configs: []digest.Digest{cfg.Digest}}, nil
}

// mayBeAbsent reports whether a layer may be missing from an archive:
// foreign and non-distributable layers are fetched from their URLs, never
// shipped.
func mayBeAbsent(l ocispec.Descriptor) bool {
	return len(l.URLs) > 0 || strings.Contains(l.MediaType, ".foreign.") || strings.Contains(l.MediaType, ".nondistributable.")
}
