package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers"
)

var (
	linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

// layer is a gzip-compressed layer tar with its descriptor and diff ID.
type layer struct {
	Desc   ocispec.Descriptor
	Data   []byte
	DiffID digest.Digest
}

// image is a single-platform image: manifest, config and layers, with the
// bytes of each.
type image struct {
	Manifest      ocispec.Descriptor // with the image's platform
	ManifestBytes []byte
	Config        ocispec.Descriptor
	ConfigBytes   []byte
	Layers        []layer
}

// blobs returns every blob of the image by digest, the manifest included.
func (img image) blobs() map[digest.Digest][]byte {
	m := map[digest.Digest][]byte{
		img.Manifest.Digest: img.ManifestBytes,
		img.Config.Digest:   img.ConfigBytes,
	}
	for _, l := range img.Layers {
		m[l.Desc.Digest] = l.Data
	}
	return m
}

// size is the sum of the sizes of the manifest, config and layers.
func (img image) size() int64 {
	n := img.Manifest.Size + img.Config.Size
	for _, l := range img.Layers {
		n += l.Desc.Size
	}
	return n
}

// index is a multi-platform image: an OCI index or a Docker manifest list
// over images.
type index struct {
	Desc   ocispec.Descriptor
	Bytes  []byte
	Images []image
}

// pseudoRandom returns n bytes derived from seed alone, so that every run
// builds the same images.
func pseudoRandom(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	block := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n]
}

// epoch is the modification time of every file in the layers.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// buildLayer returns a gzip-compressed tar with a directory, two regular
// files (one of them size bytes of pseudo-random data) and a symlink, all
// derived from seed.
func buildLayer(t *testing.T, seed string, size int, docker bool) layer {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dir := "data/" + seed + "/"
	entries := []struct {
		hdr  tar.Header
		body []byte
	}{
		{tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}, nil},
		{tar.Header{Typeflag: tar.TypeReg, Name: dir + "blob.bin", Mode: 0o644}, pseudoRandom(seed, size)},
		{tar.Header{Typeflag: tar.TypeReg, Name: dir + "name.txt", Mode: 0o644}, []byte(seed + "\n")},
		{tar.Header{Typeflag: tar.TypeSymlink, Name: dir + "link", Linkname: "name.txt"}, nil},
	}
	for _, e := range entries {
		hdr := e.hdr
		hdr.Size = int64(len(e.body))
		hdr.ModTime = epoch
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("tar header %s: %v", hdr.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("tar body %s: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz) // no name, no mtime: the same bytes every run
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	mediaType := ocispec.MediaTypeImageLayerGzip
	if docker {
		mediaType = handlers.MediaTypeDockerSchema2Layer
	}
	return layer{
		Desc:   ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(gz.Bytes()), Size: int64(gz.Len())},
		Data:   gz.Bytes(),
		DiffID: digest.FromBytes(raw.Bytes()),
	}
}

// Sizes of the pseudo-random file in an image's two layers.
const (
	baseLayerSize = 24 << 10
	appLayerSize  = 8 << 10
)

// buildImage returns an image for platform p with two layers derived from
// seed, with OCI media types, or Docker schema 2 ones when docker is true.
func buildImage(t *testing.T, seed string, p ocispec.Platform, docker bool) image {
	t.Helper()
	img := image{Layers: []layer{
		buildLayer(t, seed+"-base", baseLayerSize, docker),
		buildLayer(t, seed+"-app", appLayerSize, docker),
	}}
	created := epoch
	cfg := ocispec.Image{
		Created:  &created,
		Platform: p,
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"/data/" + seed + "-app/link"},
		},
		RootFS: ocispec.RootFS{Type: "layers"},
	}
	for i, l := range img.Layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		cfg.History = append(cfg.History, ocispec.History{Created: &created, CreatedBy: fmt.Sprintf("layer %d of %s", i, seed)})
	}
	var err error
	if img.ConfigBytes, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	configType, manifestType := ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	if docker {
		configType, manifestType = handlers.MediaTypeDockerSchema2Config, handlers.MediaTypeDockerSchema2Manifest
	}
	img.Config = ocispec.Descriptor{MediaType: configType, Digest: digest.FromBytes(img.ConfigBytes), Size: int64(len(img.ConfigBytes))}

	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: manifestType, Config: img.Config}
	for _, l := range img.Layers {
		m.Layers = append(m.Layers, l.Desc)
	}
	if img.ManifestBytes, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	img.Manifest = ocispec.Descriptor{MediaType: manifestType, Digest: digest.FromBytes(img.ManifestBytes), Size: int64(len(img.ManifestBytes)), Platform: &p}
	return img
}

// buildIndex returns an OCI index over images, or a Docker manifest list
// when docker is true.
func buildIndex(t *testing.T, docker bool, images ...image) index {
	t.Helper()
	mediaType := ocispec.MediaTypeImageIndex
	if docker {
		mediaType = handlers.MediaTypeDockerSchema2ManifestList
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaType}
	for _, img := range images {
		idx.Manifests = append(idx.Manifests, img.Manifest)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	return index{
		Desc:   ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))},
		Bytes:  b,
		Images: images,
	}
}
