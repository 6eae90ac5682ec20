package integration

import (
	"hash/fnv"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

var (
	linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

// image is a single-platform image: manifest, config and layers, with the
// bytes of each, and the files each layer holds.
type image = registrytest.Image

// index is a multi-platform image: an OCI index or a Docker manifest list
// over images.
type index struct {
	Desc   ocispec.Descriptor
	Bytes  []byte
	Images []image
}

// buildImage returns an image for platform p with two gzip layers of
// 16 KiB of files each, derived from seed alone so that every run builds
// the same bytes, with OCI media types, or Docker schema 2 ones when
// docker is true.
func buildImage(seed string, p ocispec.Platform, docker bool) image {
	h := fnv.New64a()
	h.Write([]byte(seed))
	opts := []registrytest.ImageOption{registrytest.WithPlatform(p)}
	if docker {
		opts = append(opts, registrytest.WithDockerMediaTypes())
	}
	return registrytest.RandomImage(int64(h.Sum64()), 2, 16<<10, opts...)
}

// buildIndex returns an OCI index over images, or a Docker manifest list
// when docker is true.
func buildIndex(docker bool, images ...image) index {
	mediaType := handlers.MediaTypeImageIndex
	if docker {
		mediaType = handlers.MediaTypeDockerSchema2ManifestList
	}
	var manifests []ocispec.Descriptor
	for _, img := range images {
		manifests = append(manifests, img.Manifest)
	}
	b := registrytest.MarshalIndex(mediaType, manifests...)
	return index{
		Desc:   ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))},
		Bytes:  b,
		Images: images,
	}
}
