package registrytest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers"
)

// epoch is the time stamped on everything RandomImage makes, so that its
// output depends on the seed alone.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// A Layer is one filesystem layer of an [Image].
type Layer struct {
	// Descriptor describes Data: media type, digest and size.
	Descriptor ocispec.Descriptor
	// Data is the layer blob as stored and served, compressed or not.
	Data []byte
	// DiffID is the digest of the uncompressed tar, as listed in the
	// config's rootfs.diff_ids.
	DiffID digest.Digest
	// Files maps the path of each regular file in the layer, such as
	// "layer0/file1", to its content. Directories are not listed.
	Files map[string][]byte
}

// An Image is an image manifest with its config and layers, ready to push
// with [Registry.PushImage] or [Registry.PushIndex].
type Image struct {
	// Manifest describes ManifestBytes; its Platform is the image's.
	Manifest ocispec.Descriptor
	// ManifestBytes is the image manifest, OCI or Docker schema 2.
	ManifestBytes []byte
	// Config describes ConfigBytes.
	Config ocispec.Descriptor
	// ConfigBytes is the image configuration.
	ConfigBytes []byte
	// Layers are the image's layers, base first.
	Layers []Layer
}

// Blobs returns every blob of the image by digest: the manifest, the
// config and the layers.
func (img Image) Blobs() map[digest.Digest][]byte {
	m := map[digest.Digest][]byte{
		img.Manifest.Digest: img.ManifestBytes,
		img.Config.Digest:   img.ConfigBytes,
	}
	for _, l := range img.Layers {
		m[l.Descriptor.Digest] = l.Data
	}
	return m
}

// Size returns the total size of the image's blobs: manifest, config and
// layers.
func (img Image) Size() int64 {
	n := img.Manifest.Size + img.Config.Size
	for _, l := range img.Layers {
		n += l.Descriptor.Size
	}
	return n
}

// An ImageOption configures [RandomImage].
type ImageOption func(*imageConfig)

type imageConfig struct {
	platform    ocispec.Platform
	docker      bool
	compression handlers.Compression
	files       int
	annotations map[string]string
}

// WithPlatform sets the image's platform, written to its config and to its
// manifest descriptor. The default is linux/amd64.
func WithPlatform(p ocispec.Platform) ImageOption {
	return func(c *imageConfig) { c.platform = p }
}

// WithDockerMediaTypes makes a Docker schema 2 image: Docker manifest,
// config and layer media types. The default is OCI. An index of Docker
// images pushed with [Registry.PushIndex] is a Docker manifest list.
func WithDockerMediaTypes() ImageOption {
	return func(c *imageConfig) { c.docker = true }
}

// WithCompression sets how layers are compressed: handlers.CompressionGzip
// (the default), handlers.CompressionZstd or handlers.CompressionNone.
func WithCompression(comp handlers.Compression) ImageOption {
	return func(c *imageConfig) { c.compression = comp }
}

// WithFilesPerLayer sets how many regular files each layer holds; n <= 0
// means 3.
func WithFilesPerLayer(n int) ImageOption {
	return func(c *imageConfig) { c.files = n }
}

// WithManifestAnnotations sets the manifest's annotations. The default is
// none.
func WithManifestAnnotations(a map[string]string) ImageOption {
	return func(c *imageConfig) { c.annotations = a }
}

// RandomImage builds a real image whose content depends only on seed and
// the options: layers layers, each a tar (compressed with gzip by default)
// holding a directory "layer<i>/" and a few regular files of random bytes,
// layerSize bytes of file content in all (so a gzip layer blob is a little
// larger than layerSize: random bytes do not compress); and an image
// config with the platform, a history entry per layer and the layers'
// rootfs.diff_ids. layers < 0 and layerSize < 0 count as 0.
func RandomImage(seed int64, layers int, layerSize int64, opts ...ImageOption) Image {
	cfg := imageConfig{
		platform:    ocispec.Platform{OS: "linux", Architecture: "amd64"},
		compression: handlers.CompressionGzip,
		files:       3,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.files <= 0 {
		cfg.files = 3
	}
	layers, layerSize = max(layers, 0), max(layerSize, 0)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x7265676973747279)) // "registry"

	var img Image
	diffIDs := make([]digest.Digest, 0, layers)
	history := make([]ocispec.History, 0, layers)
	for i := range layers {
		l := randomLayer(rng, i, layerSize, cfg)
		img.Layers = append(img.Layers, l)
		diffIDs = append(diffIDs, l.DiffID)
		history = append(history, ocispec.History{
			Created:   &epoch,
			CreatedBy: fmt.Sprintf("registrytest: layer %d of seed %d", i, seed),
		})
	}

	config := ocispec.Image{
		Created:  &epoch,
		Platform: cfg.platform,
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"/bin/sh"},
		},
		RootFS:  ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
		History: history,
	}
	img.ConfigBytes = mustJSON(config)
	configType, manifestType := handlers.MediaTypeImageConfig, handlers.MediaTypeImageManifest
	if cfg.docker {
		configType, manifestType = handlers.MediaTypeDockerSchema2Config, handlers.MediaTypeDockerSchema2Manifest
	}
	img.Config = ocispec.Descriptor{
		MediaType: configType,
		Digest:    digest.FromBytes(img.ConfigBytes),
		Size:      int64(len(img.ConfigBytes)),
	}

	m := ocispec.Manifest{
		MediaType:   manifestType,
		Config:      img.Config,
		Layers:      make([]ocispec.Descriptor, 0, layers),
		Annotations: cfg.annotations,
	}
	m.SchemaVersion = 2
	for _, l := range img.Layers {
		m.Layers = append(m.Layers, l.Descriptor)
	}
	img.ManifestBytes = mustJSON(m)
	p := cfg.platform
	img.Manifest = ocispec.Descriptor{
		MediaType: manifestType,
		Digest:    digest.FromBytes(img.ManifestBytes),
		Size:      int64(len(img.ManifestBytes)),
		Platform:  &p,
	}
	return img
}

// randomLayer builds layer i.
func randomLayer(rng *rand.Rand, i int, size int64, cfg imageConfig) Layer {
	l := Layer{Files: map[string][]byte{}}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	dir := fmt.Sprintf("layer%d/", i)
	must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}))
	per := size / int64(cfg.files)
	for j := range cfg.files {
		n := per
		if j == cfg.files-1 {
			n = size - per*int64(cfg.files-1)
		}
		data := randomBytes(rng, n)
		name := fmt.Sprintf("%sfile%d", dir, j)
		l.Files[name] = data
		must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: n, ModTime: epoch, Format: tar.FormatPAX}))
		_, err := tw.Write(data)
		must(err)
	}
	must(tw.Close())
	l.DiffID = digest.FromBytes(tarBuf.Bytes())

	var mt string
	switch cfg.compression {
	case handlers.CompressionNone:
		l.Data = tarBuf.Bytes()
		mt = pick(cfg.docker, handlers.MediaTypeDockerSchema2LayerUncompressed, handlers.MediaTypeImageLayer)
	case handlers.CompressionZstd:
		var buf bytes.Buffer
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		must(err)
		_, err = zw.Write(tarBuf.Bytes())
		must(err)
		must(zw.Close())
		l.Data = buf.Bytes()
		mt = pick(cfg.docker, handlers.MediaTypeDockerSchema2LayerZstd, handlers.MediaTypeImageLayerZstd)
	default:
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf) // no name and a zero ModTime: deterministic
		_, err := zw.Write(tarBuf.Bytes())
		must(err)
		must(zw.Close())
		l.Data = buf.Bytes()
		mt = pick(cfg.docker, handlers.MediaTypeDockerSchema2Layer, handlers.MediaTypeImageLayerGzip)
	}
	l.Descriptor = ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(l.Data), Size: int64(len(l.Data))}
	return l
}

// randomBytes returns n bytes from rng.
func randomBytes(rng *rand.Rand, n int64) []byte {
	b := make([]byte, (n+7)/8*8)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b[:n]
}

func pick(docker bool, dockerType, ociType string) string {
	if docker {
		return dockerType
	}
	return ociType
}

// PushImage pushes img's config and layers to repo, then its manifest
// under tag ("" for none), and returns the manifest's descriptor with the
// image's platform. It panics if repo or tag is invalid.
func (r *Registry) PushImage(repo, tag string, img Image) ocispec.Descriptor {
	r.PushBlob(repo, img.ConfigBytes)
	for _, l := range img.Layers {
		r.PushBlob(repo, l.Data)
	}
	desc := r.PushManifest(repo, tag, img.Manifest.MediaType, img.ManifestBytes)
	desc.Platform = img.Manifest.Platform
	return desc
}

// PushIndex pushes imgs to repo by digest, then an index of them under
// tag ("" for none), each entry with its image's platform, and returns
// the index's descriptor. The index is a Docker manifest list when every
// image is a Docker one ([WithDockerMediaTypes]), and an OCI index
// otherwise; [MarshalIndex] and [Registry.PushManifest] make any other
// index, such as a nested one. It panics if repo or tag is invalid.
func (r *Registry) PushIndex(repo, tag string, imgs ...Image) ocispec.Descriptor {
	mt := handlers.MediaTypeDockerSchema2ManifestList
	descs := make([]ocispec.Descriptor, 0, len(imgs))
	for _, img := range imgs {
		descs = append(descs, r.PushImage(repo, "", img))
		if img.Manifest.MediaType != handlers.MediaTypeDockerSchema2Manifest {
			mt = handlers.MediaTypeImageIndex
		}
	}
	if len(imgs) == 0 {
		mt = handlers.MediaTypeImageIndex
	}
	return r.PushManifest(repo, tag, mt, MarshalIndex(mt, descs...))
}

// MarshalIndex returns an index of the given media type
// (handlers.MediaTypeImageIndex or handlers.MediaTypeDockerSchema2ManifestList)
// listing manifests, which may be other indexes.
func MarshalIndex(mediaType string, manifests ...ocispec.Descriptor) []byte {
	idx := ocispec.Index{MediaType: mediaType, Manifests: manifests}
	idx.SchemaVersion = 2
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	return mustJSON(idx)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	must(err)
	return b
}

// must panics on errors that cannot happen when writing to memory.
func must(err error) {
	if err != nil {
		panic("registrytest: " + err.Error())
	}
}
