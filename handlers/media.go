package handlers

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// OCI media types, re-exported from image-spec so that a switch over media
// types needs one import.
const (
	// MediaTypeImageIndex is an OCI image index.
	MediaTypeImageIndex = ocispec.MediaTypeImageIndex
	// MediaTypeImageManifest is an OCI image manifest.
	MediaTypeImageManifest = ocispec.MediaTypeImageManifest
	// MediaTypeImageConfig is an OCI image configuration.
	MediaTypeImageConfig = ocispec.MediaTypeImageConfig
	// MediaTypeImageLayer is an uncompressed OCI layer tar.
	MediaTypeImageLayer = ocispec.MediaTypeImageLayer
	// MediaTypeImageLayerGzip is a gzip-compressed OCI layer tar.
	MediaTypeImageLayerGzip = ocispec.MediaTypeImageLayerGzip
	// MediaTypeImageLayerZstd is a zstd-compressed OCI layer tar.
	MediaTypeImageLayerZstd = ocispec.MediaTypeImageLayerZstd
	// MediaTypeEmptyJSON is the OCI empty descriptor's media type ("{}"),
	// used as the config of artifacts.
	MediaTypeEmptyJSON = ocispec.MediaTypeEmptyJSON
)

// Non-distributable OCI layers: image-spec 1.1 deprecates them, but images
// published before it (Windows base layers mostly) still use them. They are
// spelled out here so that using them does not trip deprecation checks.
const (
	// MediaTypeImageLayerNonDistributable is an uncompressed non-distributable OCI layer.
	MediaTypeImageLayerNonDistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	// MediaTypeImageLayerNonDistributableGzip is a gzip-compressed non-distributable OCI layer.
	MediaTypeImageLayerNonDistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	// MediaTypeImageLayerNonDistributableZstd is a zstd-compressed non-distributable OCI layer.
	MediaTypeImageLayerNonDistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
)

// Docker media types.
const (
	// MediaTypeDockerSchema2Manifest is a Docker image manifest, schema 2.
	MediaTypeDockerSchema2Manifest = "application/vnd.docker.distribution.manifest.v2+json"
	// MediaTypeDockerSchema2ManifestList is a Docker manifest list, the
	// Docker counterpart of an OCI index.
	MediaTypeDockerSchema2ManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	// MediaTypeDockerSchema2Config is a Docker image configuration.
	MediaTypeDockerSchema2Config = "application/vnd.docker.container.image.v1+json"
	// MediaTypeDockerSchema2Layer is a gzip-compressed Docker layer tar.
	MediaTypeDockerSchema2Layer = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	// MediaTypeDockerSchema2LayerForeign is a gzip-compressed Docker layer
	// that registries do not serve themselves (Windows base layers); its
	// descriptor carries the URLs to fetch it from.
	MediaTypeDockerSchema2LayerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	// MediaTypeDockerSchema2LayerUncompressed is an uncompressed Docker
	// layer tar, as docker save and some builders write.
	MediaTypeDockerSchema2LayerUncompressed = "application/vnd.docker.image.rootfs.diff.tar"
	// MediaTypeDockerSchema2LayerZstd is a zstd-compressed Docker layer tar,
	// as written by BuildKit and containerd.
	MediaTypeDockerSchema2LayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	// MediaTypeDockerSchema1Manifest is an unsigned Docker schema 1 manifest.
	MediaTypeDockerSchema1Manifest = "application/vnd.docker.distribution.manifest.v1+json"
	// MediaTypeDockerSchema1SignedManifest is a Docker schema 1 manifest
	// signed with JWS, the form registries serve.
	MediaTypeDockerSchema1SignedManifest = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	// MediaTypeLegacyConfig is the media type some old tools gave image
	// configurations. It is only a config in a manifest's config slot, so
	// [IsConfig] does not report it.
	MediaTypeLegacyConfig = "application/octet-stream"
)

// baseType returns mt without media type parameters (";charset=utf-8")
// and surrounding spaces.
func baseType(mt string) string {
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	return strings.TrimSpace(mt)
}

// IsIndex reports whether mt is an OCI image index or a Docker manifest list.
// Media type parameters, such as "; charset=utf-8", are ignored here and in
// the other predicates.
func IsIndex(mt string) bool {
	switch baseType(mt) {
	case MediaTypeImageIndex, MediaTypeDockerSchema2ManifestList:
		return true
	}
	return false
}

// IsManifest reports whether mt is an OCI image manifest or a Docker schema 2
// manifest, the manifests [ChildrenOf] reads. Schema 1 manifests are reported
// by [IsSchema1] instead.
func IsManifest(mt string) bool {
	switch baseType(mt) {
	case MediaTypeImageManifest, MediaTypeDockerSchema2Manifest:
		return true
	}
	return false
}

// IsSchema1 reports whether mt is a Docker schema 1 manifest, signed or not.
// The handlers/schema1 package converts those to schema 2.
func IsSchema1(mt string) bool {
	switch baseType(mt) {
	case MediaTypeDockerSchema1Manifest, MediaTypeDockerSchema1SignedManifest:
		return true
	}
	return false
}

// IsConfig reports whether mt is an OCI or Docker image configuration. It is
// false for [MediaTypeLegacyConfig], which is too generic to name a config
// outside a manifest's config slot.
func IsConfig(mt string) bool {
	switch baseType(mt) {
	case MediaTypeImageConfig, MediaTypeDockerSchema2Config:
		return true
	}
	return false
}

// IsLayer reports whether mt is a filesystem layer: any OCI
// "application/vnd.oci.image.layer.*" type, compressed, non-distributable or
// encrypted, and any Docker "application/vnd.docker.image.rootfs.*" type.
func IsLayer(mt string) bool {
	mt = baseType(mt)
	return strings.HasPrefix(mt, "application/vnd.oci.image.layer.") ||
		strings.HasPrefix(mt, "application/vnd.docker.image.rootfs.")
}

// Compression is how a layer's tar stream is compressed. The zero value is
// [CompressionNone].
type Compression int

const (
	// CompressionNone is a plain tar stream.
	CompressionNone Compression = iota
	// CompressionGzip is a gzip-compressed tar stream.
	CompressionGzip
	// CompressionZstd is a zstd-compressed tar stream.
	CompressionZstd
)

// String returns "none", "gzip" or "zstd".
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// LayerCompression returns the compression that the layer media type mt
// declares: OCI types end in "tar", "tar+gzip" or "tar+zstd", Docker types in
// "tar", "tar.gzip" or "tar.zstd".
//
// A type that is not a layer ([IsLayer]) is an error that matches
// errdefs.ErrInvalidArgument; a layer type with any other ending, such as an
// encrypted layer ("+encrypted"), is an error that matches
// errdefs.ErrNotImplemented. The media type is a declaration: readers should
// still check the stream's magic bytes.
func LayerCompression(mt string) (Compression, error) {
	base := baseType(mt)
	if !IsLayer(base) {
		return 0, fmt.Errorf("layer compression of %q: not a layer media type: %w", mt, errdefs.ErrInvalidArgument)
	}
	switch {
	case strings.HasSuffix(base, "tar"):
		return CompressionNone, nil
	case strings.HasSuffix(base, "tar+gzip"), strings.HasSuffix(base, "tar.gzip"):
		return CompressionGzip, nil
	case strings.HasSuffix(base, "tar+zstd"), strings.HasSuffix(base, "tar.zstd"):
		return CompressionZstd, nil
	}
	return 0, fmt.Errorf("layer compression of %q: %w", mt, errdefs.ErrNotImplemented)
}
