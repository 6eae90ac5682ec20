package contenttest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
)

// newStore is the factory a store's tests pass to [contenttest.Run]:
//
//	func TestStore(t *testing.T) { contenttest.Run(t, newStore) }
//
// Each subtest gets a new, empty store.
func newStore(t *testing.T) content.Store { return memory.New() }

// The suite checks contracts like those this example walks through with
// the memory store: a commit that fails verification commits nothing, an
// abandoned ingest is resumed by the next writer with its ref, and a held
// ref makes a second writer Unavailable.
func Example() {
	ctx := context.Background()
	store := newStore(nil) // this factory does not use its *testing.T

	const blob = "hello, store"
	desc := ocispec.Descriptor{MediaType: "text/plain", Digest: digest.FromString(blob), Size: int64(len(blob))}

	w, err := store.Writer(ctx, content.WithRef("greeting"), content.WithDescriptor(desc))
	if err != nil {
		log.Fatal(err)
	}
	w.Write([]byte("hello, "))
	_, err = store.Writer(ctx, content.WithRef("greeting"))
	fmt.Println("second writer unavailable:", errdefs.IsUnavailable(err))
	w.Close() // abandon the ingest

	w, err = store.Writer(ctx, content.WithRef("greeting"), content.WithDescriptor(desc))
	if err != nil {
		log.Fatal(err)
	}
	st, _ := w.Status()
	fmt.Println("resumed at:", st.Offset)
	w.Write([]byte("stove"))
	err = w.Commit(ctx, desc.Size, desc.Digest)
	fmt.Println("tampered commit refused:", errors.Is(err, content.ErrDigestMismatch))
	_, err = store.Info(ctx, desc.Digest)
	fmt.Println("nothing committed:", errdefs.IsNotFound(err))

	if err := store.Abort(ctx, "greeting"); err != nil {
		log.Fatal(err)
	}
	if err := content.WriteBlob(ctx, store, "greeting", strings.NewReader(blob), desc); err != nil {
		log.Fatal(err)
	}
	b, err := content.ReadBlob(ctx, store, desc, 0)
	fmt.Printf("read back: %q, error %v\n", b, err)
	// Output:
	// second writer unavailable: true
	// resumed at: 7
	// tampered commit refused: true
	// nothing committed: true
	// read back: "hello, store", error <nil>
}
