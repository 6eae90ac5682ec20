package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"slices"
	"sort"
	"sync"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

// write stores v (JSON unless it is []byte) in store as a blob of media
// type mt and returns its descriptor.
func write(ctx context.Context, store content.Ingester, mt string, v any) ocispec.Descriptor {
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			log.Fatal(err)
		}
	}
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(ctx, store, desc.Digest.String(), bytes.NewReader(b), desc); err != nil {
		log.Fatal(err)
	}
	return desc
}

// writeImage stores a one-layer image for platform spec and returns its
// manifest's descriptor, with the platform set as an index would list it.
func writeImage(ctx context.Context, store content.Ingester, spec string) ocispec.Descriptor {
	p := platforms.MustParse(spec)
	layer := write(ctx, store, handlers.MediaTypeImageLayerGzip, []byte("layer for "+spec))
	config := write(ctx, store, handlers.MediaTypeImageConfig, ocispec.Image{
		Platform: p,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString(spec)}},
	})
	m := ocispec.Manifest{MediaType: handlers.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	desc := write(ctx, store, handlers.MediaTypeImageManifest, m)
	desc.Platform = &p
	return desc
}

// writeIndex stores an OCI index of manifests.
func writeIndex(ctx context.Context, store content.Ingester, manifests ...ocispec.Descriptor) ocispec.Descriptor {
	idx := ocispec.Index{MediaType: handlers.MediaTypeImageIndex, Manifests: manifests}
	idx.SchemaVersion = 2
	return write(ctx, store, handlers.MediaTypeImageIndex, idx)
}

// ExampleDispatch walks a two-platform image in a store, in parallel, and
// lists what it visits. Dispatch visits siblings in no fixed order, so the
// handler collects and the example sorts.
func ExampleDispatch() {
	ctx := context.Background()
	store := memory.New()
	root := writeIndex(ctx, store, writeImage(ctx, store, "linux/amd64"), writeImage(ctx, store, "linux/arm64"))

	var (
		mu      sync.Mutex
		visited []string
	)
	record := handlers.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		mu.Lock()
		defer mu.Unlock()
		visited = append(visited, desc.MediaType)
		return nil, nil
	})
	if err := handlers.Dispatch(ctx, handlers.Sequence(record, handlers.Children(store)), 4, root); err != nil {
		log.Fatal(err)
	}
	sort.Strings(visited)
	for _, mt := range visited {
		fmt.Println(mt)
	}
	// Output:
	// application/vnd.oci.image.config.v1+json
	// application/vnd.oci.image.config.v1+json
	// application/vnd.oci.image.index.v1+json
	// application/vnd.oci.image.layer.v1.tar+gzip
	// application/vnd.oci.image.layer.v1.tar+gzip
	// application/vnd.oci.image.manifest.v1+json
	// application/vnd.oci.image.manifest.v1+json
}

// ExampleLimitManifests picks the manifest for an arm64 host from an index
// that lists arm/v7 at its top level and arm64 in a nested index: the choice
// is made across both levels.
func ExampleLimitManifests() {
	ctx := context.Background()
	store := memory.New()
	nested := writeIndex(ctx, store, writeImage(ctx, store, "linux/amd64"), writeImage(ctx, store, "linux/arm64"))
	root := writeIndex(ctx, store, writeImage(ctx, store, "linux/arm/v7"), nested)

	m := platforms.Only(platforms.MustParse("linux/arm64"))
	h := handlers.LimitManifests(handlers.Children(store), m, 1)
	best, err := h.Handle(ctx, root)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(platforms.Format(*best[0].Platform))

	// An s390x host finds nothing, and is told what there is.
	_, err = handlers.LimitManifests(handlers.Children(store), platforms.Only(platforms.MustParse("linux/s390x")), 1).Handle(ctx, root)
	var nm *handlers.NoMatchError
	if errors.As(err, &nm) {
		fmt.Println(nm)
	}
	// Output:
	// linux/arm64
	// no manifest matches the platform: the index offers linux/arm/v7, linux/amd64, linux/arm64
}

// ExampleSetChildrenLabels labels a manifest with the blobs it references,
// so that containerd-style garbage collection keeps them.
func ExampleSetChildrenLabels() {
	ctx := context.Background()
	store := memory.New()
	manifest := writeImage(ctx, store, "linux/amd64")

	h := handlers.SetChildrenLabels(store, handlers.Children(store))
	if err := handlers.Walk(ctx, h, manifest); err != nil {
		log.Fatal(err)
	}
	info, err := store.Info(ctx, manifest.Digest)
	if err != nil {
		log.Fatal(err)
	}
	keys := make([]string, 0, len(info.Labels))
	for k := range info.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Println(k)
	}
	// Output:
	// containerd.io/gc.ref.content.config
	// containerd.io/gc.ref.content.l.0
}

// ExampleConfig reads the config of the arm64 image of an index.
func ExampleConfig() {
	ctx := context.Background()
	store := memory.New()
	root := writeIndex(ctx, store, writeImage(ctx, store, "linux/amd64"), writeImage(ctx, store, "linux/arm64"))

	img, _, err := handlers.Config(ctx, store, root, platforms.Only(platforms.MustParse("linux/arm64")))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.OS, img.Architecture, len(img.RootFS.DiffIDs))
	// Output: linux arm64 1
}

func ExampleLayerCompression() {
	for _, mt := range []string{handlers.MediaTypeImageLayerZstd, handlers.MediaTypeDockerSchema2Layer, handlers.MediaTypeImageLayer} {
		c, err := handlers.LayerCompression(mt)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(c)
	}
	// Output:
	// zstd
	// gzip
	// none
}
