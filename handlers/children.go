package handlers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

// Limits on what one manifest or index may reference. Content over a limit
// is refused with a [*content.LimitError], which matches content.ErrTooLarge
// and errdefs.ErrResourceExhausted. The manifest or index itself is never
// read past content.DefaultReadLimit (4 MiB).
const (
	// MaxIndexManifests is the most manifests an index may list, counting
	// those of the indexes nested in it when they are flattened
	// ([LimitManifests], [Manifest]). Real indexes list a few dozen at most
	// (every platform plus an attestation manifest for each); 1024 leaves
	// room for generous artifact indexes while bounding the goroutines and
	// fetches one index can start.
	MaxIndexManifests = 1024
	// MaxLayers is the most layers a manifest may list. The Docker engine
	// builds at most 127 and an overlay mount stacks a few hundred at most,
	// so 1024 refuses no runnable image and bounds the work of a hostile one.
	MaxLayers = 1024
	// MaxIndexDepth is how deeply indexes may nest inside one another when
	// [LimitManifests] or [Manifest] flatten them. Real images nest at most
	// once or twice.
	MaxIndexDepth = 16
)

// manifestOrIndex holds the fields of both manifests and indexes, so that a
// document that claims one but carries the other's fields is caught.
type manifestOrIndex struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	ArtifactType  string               `json:"artifactType,omitempty"`
	Config        *ocispec.Descriptor  `json:"config,omitempty"`
	Layers        []ocispec.Descriptor `json:"layers,omitempty"`
	Manifests     []ocispec.Descriptor `json:"manifests,omitempty"`
	Subject       *ocispec.Descriptor  `json:"subject,omitempty"`
	Annotations   map[string]string    `json:"annotations,omitempty"`
}

// ChildrenOf returns the descriptors that desc references, reading desc's
// blob from p when it is a manifest or an index:
//
//   - an OCI image manifest or a Docker schema 2 manifest: its config, then
//     its layers in order (its subject, if any, is not a child);
//   - an OCI index or a Docker manifest list: its manifests, in order;
//   - any other type (layers, configs, unknown types): nothing; the blob is
//     not read.
//
// The blob is read with [content.ReadBlob], so it is verified against
// desc.Size and desc.Digest and refused over 4 MiB. It is decoded as JSON;
// undecodable JSON, a body "mediaType" that differs from desc.MediaType, a
// manifest with "manifests" or an index with "config" or "layers" (OCI's
// guard against documents that read as both), and a child without a valid
// digest, a media type or a non-negative size are errors that match
// errdefs.ErrInvalidArgument. More than [MaxLayers] layers or
// [MaxIndexManifests] manifests is a [*content.LimitError].
//
// Docker schema 1 manifests are an error that matches
// errdefs.ErrNotImplemented: convert them with handlers/schema1 first.
func ChildrenOf(ctx context.Context, p content.Provider, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	switch {
	case IsSchema1(desc.MediaType):
		return nil, fmt.Errorf("children of %s: %s manifests must be converted by handlers/schema1: %w",
			desc.Digest, baseType(desc.MediaType), errdefs.ErrNotImplemented)
	case IsManifest(desc.MediaType):
		m, err := readManifest(ctx, p, desc)
		if err != nil {
			return nil, err
		}
		children := make([]ocispec.Descriptor, 0, 1+len(m.Layers))
		children = append(children, m.Config)
		return append(children, m.Layers...), nil
	case IsIndex(desc.MediaType):
		idx, err := readIndex(ctx, p, desc)
		if err != nil {
			return nil, err
		}
		return idx.Manifests, nil
	}
	return nil, nil
}

// Children returns the handler form of [ChildrenOf]: for each descriptor it
// returns the children ChildrenOf reads from p. p must not be nil.
func Children(p content.Provider) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		return ChildrenOf(ctx, p, desc)
	}
}

// readManifest reads, verifies and decodes the manifest desc.
func readManifest(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (ocispec.Manifest, error) {
	b, err := content.ReadBlob(ctx, p, desc, 0)
	if err != nil {
		return ocispec.Manifest{}, err
	}
	return decodeManifest(desc, b)
}

// readIndex reads, verifies and decodes the index desc.
func readIndex(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (ocispec.Index, error) {
	b, err := content.ReadBlob(ctx, p, desc, 0)
	if err != nil {
		return ocispec.Index{}, err
	}
	return decodeIndex(desc, b)
}

// decodeBody decodes b, the blob of desc, and checks what manifests and
// indexes share: valid JSON, a schema 2 body, a media type that agrees with
// desc's.
func decodeBody(desc ocispec.Descriptor, what string, b []byte) (manifestOrIndex, error) {
	var body manifestOrIndex
	if err := json.Unmarshal(b, &body); err != nil {
		return body, fmt.Errorf("decode %s %s: %w: %w", what, desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if body.SchemaVersion == 1 {
		return body, fmt.Errorf("decode %s %s: body is a schema 1 manifest, labelled %q: %w",
			what, desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	if body.MediaType != "" && baseType(body.MediaType) != baseType(desc.MediaType) {
		return body, fmt.Errorf("decode %s %s: body has media type %q, descriptor has %q: %w",
			what, desc.Digest, body.MediaType, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	return body, nil
}

// decodeManifest decodes and checks b, the blob of the manifest desc.
func decodeManifest(desc ocispec.Descriptor, b []byte) (ocispec.Manifest, error) {
	body, err := decodeBody(desc, "manifest", b)
	if err != nil {
		return ocispec.Manifest{}, err
	}
	if body.Manifests != nil {
		return ocispec.Manifest{}, fmt.Errorf("decode manifest %s: has a \"manifests\" field, as an index would: %w",
			desc.Digest, errdefs.ErrInvalidArgument)
	}
	if body.Config == nil {
		return ocispec.Manifest{}, fmt.Errorf("decode manifest %s: no config: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	if len(body.Layers) > MaxLayers {
		return ocispec.Manifest{}, fmt.Errorf("decode manifest %s: %w", desc.Digest,
			&content.LimitError{What: "manifest layers", Limit: MaxLayers, Got: int64(len(body.Layers))})
	}
	if err := validateChild(*body.Config); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("decode manifest %s: config: %w", desc.Digest, err)
	}
	for i, l := range body.Layers {
		if err := validateChild(l); err != nil {
			return ocispec.Manifest{}, fmt.Errorf("decode manifest %s: layer %d: %w", desc.Digest, i, err)
		}
	}
	m := ocispec.Manifest{
		MediaType:    body.MediaType,
		ArtifactType: body.ArtifactType,
		Config:       *body.Config,
		Layers:       body.Layers,
		Subject:      body.Subject,
		Annotations:  body.Annotations,
	}
	m.SchemaVersion = body.SchemaVersion
	return m, nil
}

// decodeIndex decodes and checks b, the blob of the index desc.
func decodeIndex(desc ocispec.Descriptor, b []byte) (ocispec.Index, error) {
	body, err := decodeBody(desc, "index", b)
	if err != nil {
		return ocispec.Index{}, err
	}
	if body.Config != nil || body.Layers != nil {
		return ocispec.Index{}, fmt.Errorf("decode index %s: has a \"config\" or \"layers\" field, as a manifest would: %w",
			desc.Digest, errdefs.ErrInvalidArgument)
	}
	if len(body.Manifests) > MaxIndexManifests {
		return ocispec.Index{}, fmt.Errorf("decode index %s: %w", desc.Digest,
			&content.LimitError{What: "index manifests", Limit: MaxIndexManifests, Got: int64(len(body.Manifests))})
	}
	for i, m := range body.Manifests {
		if err := validateChild(m); err != nil {
			return ocispec.Index{}, fmt.Errorf("decode index %s: manifest %d: %w", desc.Digest, i, err)
		}
	}
	idx := ocispec.Index{
		MediaType:    body.MediaType,
		ArtifactType: body.ArtifactType,
		Manifests:    body.Manifests,
		Subject:      body.Subject,
		Annotations:  body.Annotations,
	}
	idx.SchemaVersion = body.SchemaVersion
	return idx, nil
}

// validateChild checks what a walk needs from a child descriptor.
func validateChild(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
	}
	if d.MediaType == "" {
		return fmt.Errorf("%s: no media type: %w", d.Digest, errdefs.ErrInvalidArgument)
	}
	if d.Size < 0 {
		return fmt.Errorf("%s: negative size %d: %w", d.Digest, d.Size, errdefs.ErrInvalidArgument)
	}
	return nil
}
