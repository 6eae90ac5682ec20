package content_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
)

func ExampleWriteBlob() {
	ctx := context.Background()
	store := memory.New()

	const manifest = `{"schemaVersion":2}`
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest,
		Digest:    digest.FromString(manifest),
		Size:      int64(len(manifest)),
	}
	if err := content.WriteBlob(ctx, store, "manifest-"+desc.Digest.Encoded(), strings.NewReader(manifest), desc); err != nil {
		log.Fatal(err)
	}
	b, err := content.ReadBlob(ctx, store, desc, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))

	// A descriptor that lies about the content is caught.
	desc.Digest = digest.FromString("something else")
	err = content.WriteBlob(ctx, store, "tampered", strings.NewReader(manifest), desc)
	fmt.Println(errors.Is(err, content.ErrDigestMismatch))
	// Output:
	// {"schemaVersion":2}
	// true
}

func ExampleCopy() {
	ctx := context.Background()
	store := memory.New()

	const layer = "pretend this is a large layer"
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digest.FromString(layer),
		Size:      int64(len(layer)),
	}

	// A first download stops after 12 bytes; its writer is closed, but the
	// ingest stays in the store under its ref.
	w, err := store.Writer(ctx, content.WithRef("layer"), content.WithDescriptor(desc))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := w.Write([]byte(layer[:12])); err != nil {
		log.Fatal(err)
	}
	w.Close()

	// A second attempt resumes: Copy seeks the source past what the store has.
	w, err = content.OpenWriter(ctx, store, content.WithRef("layer"), content.WithDescriptor(desc))
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	st, err := w.Status()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("resuming at", st.Offset)
	if err := content.Copy(ctx, w, strings.NewReader(layer), desc.Size, desc.Digest); err != nil {
		log.Fatal(err)
	}
	info, err := store.Info(ctx, desc.Digest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("committed", info.Size, "bytes")
	// Output:
	// resuming at 12
	// committed 29 bytes
}
