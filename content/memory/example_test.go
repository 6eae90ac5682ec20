package memory_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
)

func Example() {
	ctx := context.Background()
	store := memory.New()

	const config = `{"architecture":"amd64","os":"linux"}`
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageConfig,
		Digest:    digest.FromString(config),
		Size:      int64(len(config)),
	}
	// WriteBlob verifies size and digest before the blob becomes visible.
	if err := content.WriteBlob(ctx, store, "example-config", strings.NewReader(config), desc,
		content.WithLabels(map[string]string{"example": "yes"})); err != nil {
		log.Fatal(err)
	}

	b, err := content.ReadBlob(ctx, store, desc, 0)
	if err != nil {
		log.Fatal(err)
	}
	info, err := store.Info(ctx, desc.Digest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	fmt.Println(info.Size, info.Labels["example"])

	// A name record points at the blob.
	if _, err := store.Images().Create(ctx, content.Image{Name: "example.com/app:1", Target: desc}); err != nil {
		log.Fatal(err)
	}
	img, err := store.Images().Get(ctx, "example.com/app:1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Name, img.Target.Digest == desc.Digest)
	// Output:
	// {"architecture":"amd64","os":"linux"}
	// 37 yes
	// example.com/app:1 true
}
