package schema1_test

import (
	"context"
	"fmt"
	"log"

	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/schema1"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// Pull a signed schema 1 image from a registry and convert it to a Docker
// schema 2 image in a content store.
func Example() {
	ctx := context.Background()
	reg := registrytest.New()
	defer reg.Close()

	// An old image: two layers, served with a signed schema 1 manifest.
	img := registrytest.RandomImage(1, 2, 4096, registrytest.WithDockerMediaTypes())
	for _, l := range img.Layers {
		reg.PushBlob("legacy/app", l.Data)
	}
	body, mediaType := registrytest.Schema1Manifest(img, "legacy/app", "v1", true)
	desc := reg.PushManifest("legacy/app", "v1", mediaType, body)

	store := memory.New()
	f := fetch.New(reg.Host(), "legacy/app", fetch.WithClient(reg.Client()), fetch.WithPlainHTTP())
	c := schema1.NewConverter(store, f)
	if err := handlers.Dispatch(ctx, c, 4, desc); err != nil {
		log.Fatal(err)
	}
	converted, err := c.Convert(ctx)
	if err != nil {
		log.Fatal(err)
	}

	m, err := handlers.Manifest(ctx, store, converted, nil)
	if err != nil {
		log.Fatal(err)
	}
	diffIDs, err := handlers.DiffIDs(ctx, store, converted, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(desc.MediaType)
	fmt.Println(converted.MediaType)
	fmt.Println(len(m.Layers), "layers")
	fmt.Println(diffIDs[0] == img.Layers[0].DiffID, diffIDs[1] == img.Layers[1].DiffID)
	// Output:
	// application/vnd.docker.distribution.manifest.v1+prettyjws
	// application/vnd.docker.distribution.manifest.v2+json
	// 2 layers
	// true true
}

// A caller that does not convert schema 1 images says how to.
func ExampleErrConversionDisabled() {
	err := fmt.Errorf("pull %s: %w", "registry.example/legacy/app:v1", schema1.ErrConversionDisabled)
	fmt.Println(err)
	// Output:
	// pull registry.example/legacy/app:v1: docker schema 1 manifest, a deprecated format: enable schema 1 conversion (pullkit.WithSchema1Conversion) to pull it as schema 2: not implemented
}
