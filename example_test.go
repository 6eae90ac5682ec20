package pullkit_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/pullkit/pullkit"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// Pull an image from a registry that wants credentials into a memory
// store, then read its manifest back from the store.
func ExamplePull() {
	ctx := context.Background()

	// An in-process registry with token auth, holding one image of 3 layers.
	reg := registrytest.New(registrytest.WithTokenAuth("alice", "s3cret"))
	defer reg.Close()
	pushed := registrytest.RandomImage(1, 3, 4096)
	reg.PushImage("demo/app", "v1", pushed)

	store := memory.New()
	img, err := pullkit.Pull(ctx, reg.Host()+"/demo/app:v1", store, store.Images(),
		pullkit.WithCredentials("alice", "s3cret"))
	if err != nil {
		log.Fatal(err)
	}

	// The registry's address changes from run to run: leave it out.
	short := func(s string) string { return strings.TrimPrefix(s, reg.Host()+"/") }
	manifest, err := handlers.Manifest(ctx, store, img.Manifest, platforms.All)
	if err != nil {
		log.Fatal(err)
	}
	names, err := store.Images().List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("name:", short(img.Name))
	fmt.Println("layers:", len(manifest.Layers))
	fmt.Println("repo tags:", short(img.RepoTags[0]))
	fmt.Println("ID is the config digest:", img.ID == pushed.Config.Digest)
	fmt.Println("size is the image's:", img.Size == pushed.Size())
	fmt.Println("name records:", len(names), short(names[0].Name))
	// Output:
	// name: demo/app:v1
	// layers: 3
	// repo tags: demo/app:v1
	// ID is the config digest: true
	// size is the image's: true
	// name records: 1 demo/app:v1
}
