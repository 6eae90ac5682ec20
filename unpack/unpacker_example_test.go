package unpack_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/unpack"
)

func ExampleUnpacker() {
	ctx := context.Background()
	// remote stands for a registry; a pull copies blobs into local.
	remote, local := memory.New(), memory.New()
	manifest := writeExampleImage(ctx, remote, map[string]string{"etc/motd": "unpacked while pulling\n"})
	fetch := copyBlobs(remote, local)

	root, err := os.MkdirTemp("", "snapshots")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	sn, err := unpack.NewDirectory(root)
	if err != nil {
		log.Fatal(err)
	}

	// The unpacker wraps the whole pull chain, outermost; each layer is
	// applied as soon as it is committed to local.
	u := unpack.NewUnpacker(sn, local)
	h := u.Wrap(handlers.Sequence(fetch, handlers.Children(local)))
	if err := handlers.Dispatch(ctx, h, 4, manifest); err != nil {
		log.Fatal(err)
	}
	results, err := u.Results()
	if err != nil {
		log.Fatal(err)
	}
	img := results[0]
	fmt.Println("layers applied:", len(img.Layers), img.Layers[0].Applied)

	// Run a container on the image: a writable snapshot of its top layer.
	mounts, err := sn.Prepare(ctx, "container", img.ChainID.String())
	if err != nil {
		log.Fatal(err)
	}
	motd, err := os.ReadFile(filepath.Join(mounts[0].Source, "etc", "motd"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(motd))

	// Unpacking the image again finds its snapshot and reads no layer.
	chainID, err := unpack.Unpack(ctx, sn, local, manifest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same snapshot:", chainID == img.ChainID)
	// Output:
	// layers applied: 1 true
	// unpacked while pulling
	// same snapshot: true
}

func ExampleNewDirUnpacker() {
	ctx := context.Background()
	// remote stands for a registry; a pull copies blobs into local.
	remote, local := memory.New(), memory.New()
	manifest := writeExampleImage(ctx, remote, map[string]string{"etc/motd": "flattened while pulling\n"})
	fetch := copyBlobs(remote, local)

	tmp, err := os.MkdirTemp("", "rootfs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	rootfs := filepath.Join(tmp, "rootfs")

	// Each layer is applied into rootfs as soon as it is in local, while
	// the layers above it download. With pullkit.Pull, pass
	// pullkit.WithHandlerWrapper(u.Wrap).
	u := unpack.NewDirUnpacker(rootfs, local)
	if err := handlers.Dispatch(ctx, u.Wrap(handlers.Sequence(fetch, handlers.Children(local))), 4, manifest); err != nil {
		log.Fatal(err)
	}
	results, err := u.Results()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("layers applied:", len(results[0].Layers))
	motd, err := os.ReadFile(filepath.Join(rootfs, "etc", "motd"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(motd))
	// Output:
	// layers applied: 1
	// flattened while pulling
}

// copyBlobs is the fetch handler of a pull without a registry: it copies
// each blob from remote into local.
func copyBlobs(remote content.Provider, local content.Ingester) handlers.Handler {
	return handlers.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		ra, err := remote.ReaderAt(ctx, desc)
		if err != nil {
			return nil, err
		}
		defer ra.Close()
		return nil, content.WriteBlob(ctx, local, desc.Digest.String(), content.NewReader(ra), desc)
	})
}
