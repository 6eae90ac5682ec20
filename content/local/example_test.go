package local_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/local"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "layout")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := local.New(dir)
	if err != nil {
		log.Fatal(err)
	}

	// Write a blob: verified against its descriptor, resumed if an earlier
	// attempt under the same ref was interrupted.
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest,
		Digest:    digest.FromBytes(manifest),
		Size:      int64(len(manifest)),
	}
	if err := content.WriteBlob(ctx, store, "example", bytes.NewReader(manifest), desc); err != nil {
		log.Fatal(err)
	}

	// Name it: an index.json entry that skopeo finds as oci:DIR:NAME.
	if _, err := store.Images().Create(ctx, content.Image{Name: "docker.io/library/demo:1.0", Target: desc}); err != nil {
		log.Fatal(err)
	}

	images, err := store.Images().List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, img := range images {
		fmt.Println(img.Name, img.Target.Size)
	}
	info, err := store.Info(ctx, desc.Digest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Size == desc.Size)
	// Output:
	// docker.io/library/demo:1.0 76
	// true
}
