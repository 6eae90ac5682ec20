package schema1

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
)

// Converter pulls one Docker schema 1 image and converts it to a Docker
// schema 2 image in a content store. Run its Handle over the schema 1
// manifest with handlers.Dispatch or handlers.Walk, then call Convert.
//
// Handle is safe for concurrent use; Convert must not run concurrently with
// Handle. A Converter converts one manifest: use a new one for the next.
type Converter struct {
	store    content.Store
	fetcher  fetch.Fetcher
	progress func(fetch.Event)

	mu       sync.Mutex
	manifest ocispec.Descriptor // the schema 1 manifest handled; zero before
	parsed   *parsed
	children []ocispec.Descriptor
	layers   map[digest.Digest]*layerState // the blobs to fetch
}

var _ handlers.Handler = (*Converter)(nil)

// layerState is what the converter knows of one layer blob.
type layerState struct {
	desc   ocispec.Descriptor // size and media type known once done
	diffID digest.Digest
	done   bool
}

// Option configures a [Converter].
type Option func(*config)

type config struct {
	progress func(fetch.Event)
}

// WithProgress sets a function that receives the events of the layer
// downloads, as fetch.WithProgress describes them (Started, Resumed,
// Progress, Committed, Skipped), with each layer's descriptor and size.
// It is called concurrently for layers handled in parallel and must not
// block. The default, and nil, is no observer.
func WithProgress(fn func(fetch.Event)) Option {
	return func(c *config) { c.progress = fn }
}

// NewConverter returns a Converter that fetches the schema 1 manifest and
// its layers with f and writes the layers and the converted image into
// store. Neither may be nil. f must be a [Stater] (fetch.Repository and
// resolve.Registry's fetchers are) to learn the sizes of layers that are
// not in store yet.
func NewConverter(store content.Store, f fetch.Fetcher, opts ...Option) *Converter {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	return &Converter{store: store, fetcher: f, progress: cfg.progress, layers: map[digest.Digest]*layerState{}}
}

// Handle handles the descriptors of a schema 1 pull:
//
//   - a schema 1 manifest (handlers.IsSchema1), signed or not: Handle fetches
//     it, at most 4 MiB (a larger desc.Size is a *content.LimitError),
//     checks it against desc.Digest (see the package documentation),
//     strips its signatures and decodes it, and returns its layers, base
//     first and each blob once, leaving out empty layers. The children have
//     the Docker gzip layer media type and Size -1: schema 1 does not record
//     sizes. Handling the same manifest again returns the same children;
//     another manifest is an error that matches errdefs.ErrFailedPrecondition.
//   - one of those layers: Handle learns its size from the store, from
//     desc.Size when it is positive, or else from the fetcher, which must
//     then be a [Stater] (an HTTP HEAD per layer, with fetch.Repository): a
//     fetcher without Stat fails with an error that matches
//     errdefs.ErrNotImplemented. Then it downloads the layer
//     into the store with fetch.Handler, unless the store has it, and
//     records its size, its diff ID (computed from the stream while it is
//     written, or read back from the store when the download resumed an
//     earlier ingest or was not needed) and whether it is gzip-compressed
//     or a plain tar. The diff ID is also recorded on the blob as the
//     label [LabelUncompressed], which later conversions trust. It returns
//     no children. A layer stream that does not decompress matches
//     errdefs.ErrInvalidArgument; one that expands more than 500 times
//     beyond its first 16 MiB (or past 64 GiB) is a *content.LimitError.
//
// Any other descriptor is an error that matches errdefs.ErrInvalidArgument,
// and a layer that is not one of the manifest's (or arrives before it) one
// that matches errdefs.ErrFailedPrecondition.
func (c *Converter) Handle(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	switch {
	case handlers.IsSchema1(desc.MediaType):
		return c.handleManifest(ctx, desc)
	case handlers.IsLayer(desc.MediaType):
		return nil, c.handleLayer(ctx, desc)
	}
	return nil, fmt.Errorf("schema 1 conversion: %s (%s) is neither a schema 1 manifest nor one of its layers: %w",
		desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
}

// handleManifest fetches, verifies and decodes the schema 1 manifest desc
// and returns its non-empty layers.
func (c *Converter) handleManifest(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	c.mu.Lock()
	if c.parsed != nil {
		defer c.mu.Unlock()
		if c.manifest.Digest != desc.Digest {
			return nil, fmt.Errorf("schema 1 manifest %s: this converter already converts %s: %w",
				desc.Digest, c.manifest.Digest, errdefs.ErrFailedPrecondition)
		}
		return append([]ocispec.Descriptor(nil), c.children...), nil
	}
	c.mu.Unlock()

	p, err := fetchManifest(ctx, c.fetcher, desc)
	if err != nil {
		return nil, fmt.Errorf("schema 1 manifest %s: %w", desc.Digest, err)
	}

	// Blobs to fetch: those of non-empty layers, base first, once each.
	var children []ocispec.Descriptor
	layers := map[digest.Digest]*layerState{}
	for i := len(p.layers) - 1; i >= 0; i-- {
		e := p.layers[i]
		if e.empty || layers[e.blob] != nil {
			continue
		}
		d := ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Layer, Digest: e.blob, Size: -1}
		layers[e.blob] = &layerState{desc: d}
		children = append(children, d)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parsed != nil { // another call got there first
		if c.manifest.Digest != desc.Digest {
			return nil, fmt.Errorf("schema 1 manifest %s: this converter already converts %s: %w",
				desc.Digest, c.manifest.Digest, errdefs.ErrFailedPrecondition)
		}
		return append([]ocispec.Descriptor(nil), c.children...), nil
	}
	c.manifest, c.parsed, c.children, c.layers = desc, p, children, layers
	return append([]ocispec.Descriptor(nil), children...), nil
}

// fetchManifest fetches desc with f, verifies it and decodes its payload.
func fetchManifest(ctx context.Context, f fetch.Fetcher, desc ocispec.Descriptor) (*parsed, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, invalid("digest %q: %v", desc.Digest, err)
	}
	if desc.Size > content.DefaultReadLimit {
		return nil, &content.LimitError{What: "schema 1 manifest", Limit: content.DefaultReadLimit, Got: desc.Size}
	}
	if desc.Size <= 0 {
		return nil, invalid("size %d", desc.Size)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	rc.Close()
	if err != nil {
		return nil, err
	}
	if int64(len(body)) != desc.Size {
		return nil, &content.MismatchError{Expected: desc.Digest, ExpectedSize: desc.Size, ActualSize: int64(len(body))}
	}
	payload, err := payloadOf(body)
	if err != nil {
		// A body that is not what desc names need not even parse: say so.
		if got := desc.Digest.Algorithm().FromBytes(body); got != desc.Digest {
			return nil, &content.MismatchError{Expected: desc.Digest, Actual: got, ExpectedSize: desc.Size, ActualSize: desc.Size}
		}
		return nil, err
	}
	if err := verify(body, payload, desc.Digest); err != nil {
		return nil, err
	}
	return decodePayload(payload)
}

// ConvertOption configures [Converter.Convert].
type ConvertOption func(*convertConfig)

type convertConfig struct {
	oci bool
}

// WithOCIMediaTypes makes Convert write an OCI image manifest and config,
// with OCI layer media types, instead of the default Docker schema 2 ones.
func WithOCIMediaTypes() ConvertOption {
	return func(c *convertConfig) { c.oci = true }
}

// Convert writes the converted image into the store and returns the
// descriptor of its manifest, with the image's platform. It must be called
// once Handle has handled the schema 1 manifest and every child it
// returned; before that it fails with an error that matches
// errdefs.ErrFailedPrecondition.
//
// The image config is the newest history entry's v1Compatibility object
// (its config, container_config, created, author, os, architecture and
// any other member), without the legacy members id, parent, parent_id,
// layer_id, Size and throwaway, and with:
//
//   - "history": an entry per schema 1 layer, base first, with its created,
//     author and comment, created_by from its container_config.Cmd, and
//     empty_layer for the empty layers;
//   - "rootfs": the diff IDs of the non-empty layers, base first;
//   - "architecture" from the manifest when the entry has none (else "amd64"),
//     and "os" "linux" when it has none, as all schema 1 images were.
//
// The manifest lists the config and the non-empty layers, base first,
// a blob as often as the schema 1 manifest does, with their sizes and
// compression (a plain tar layer gets the uncompressed media type).
// Both are Docker schema 2 unless WithOCIMediaTypes is given. The
// config is written first, then the manifest, labelled with
// handlers.ChildGCLabels of its config and layers. Writing what the store
// already has is not an error, so Convert may be called again and returns
// the same descriptor.
func (c *Converter) Convert(ctx context.Context, opts ...ConvertOption) (ocispec.Descriptor, error) {
	var cfg convertConfig
	for _, o := range opts {
		o(&cfg)
	}
	c.mu.Lock()
	p, mdesc := c.parsed, c.manifest
	states := make(map[digest.Digest]layerState, len(c.layers))
	for d, s := range c.layers {
		states[d] = *s
	}
	c.mu.Unlock()
	if p == nil {
		return ocispec.Descriptor{}, fmt.Errorf("schema 1 conversion: no schema 1 manifest was handled: %w", errdefs.ErrFailedPrecondition)
	}

	history := make([]ocispec.History, 0, len(p.layers))
	diffIDs := []digest.Digest{}
	var layers []ocispec.Descriptor
	var missing []string
	for i := len(p.layers) - 1; i >= 0; i-- {
		e := p.layers[i]
		h := ocispec.History{Author: e.v1.Author, Comment: e.v1.Comment, EmptyLayer: e.empty}
		if e.v1.Created != nil && !e.v1.Created.IsZero() {
			t := *e.v1.Created
			h.Created = &t
		}
		if e.v1.ContainerConfig != nil {
			h.CreatedBy = strings.Join(e.v1.ContainerConfig.Cmd, " ")
		}
		history = append(history, h)
		if e.empty {
			continue
		}
		s := states[e.blob]
		if !s.done {
			missing = append(missing, e.blob.String())
			continue
		}
		diffIDs = append(diffIDs, s.diffID)
		l := s.desc
		if cfg.oci {
			l.MediaType = ociLayerType(l.MediaType)
		}
		layers = append(layers, l)
	}
	if len(missing) > 0 {
		return ocispec.Descriptor{}, fmt.Errorf("convert schema 1 manifest %s: layers not fetched yet (handle the manifest's children first): %s: %w",
			mdesc.Digest, strings.Join(missing, ", "), errdefs.ErrFailedPrecondition)
	}

	configBytes, platform, err := buildConfig(p, history, diffIDs)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert schema 1 manifest %s: %w", mdesc.Digest, err)
	}
	configType, manifestType := handlers.MediaTypeDockerSchema2Config, handlers.MediaTypeDockerSchema2Manifest
	if cfg.oci {
		configType, manifestType = handlers.MediaTypeImageConfig, handlers.MediaTypeImageManifest
	}
	configDesc := ocispec.Descriptor{MediaType: configType, Digest: digest.FromBytes(configBytes), Size: int64(len(configBytes))}
	manifestBytes, err := marshalManifest(manifestType, configDesc, layers)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert schema 1 manifest %s: %w", mdesc.Digest, err)
	}
	desc := ocispec.Descriptor{MediaType: manifestType, Digest: digest.FromBytes(manifestBytes), Size: int64(len(manifestBytes))}

	if err := content.WriteBlob(ctx, c.store, fetch.IngestRef(configDesc), bytes.NewReader(configBytes), configDesc); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert schema 1 manifest %s: write config: %w", mdesc.Digest, err)
	}
	labels := handlers.ChildGCLabels(append([]ocispec.Descriptor{configDesc}, layers...))
	if err := content.WriteBlob(ctx, c.store, fetch.IngestRef(desc), bytes.NewReader(manifestBytes), desc, content.WithLabels(labels)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("convert schema 1 manifest %s: write manifest: %w", mdesc.Digest, err)
	}
	desc.Platform = &platform
	return desc, nil
}

// ociLayerType returns the OCI counterpart of a Docker layer media type.
func ociLayerType(mt string) string {
	if mt == handlers.MediaTypeDockerSchema2LayerUncompressed {
		return handlers.MediaTypeImageLayer
	}
	return handlers.MediaTypeImageLayerGzip
}
