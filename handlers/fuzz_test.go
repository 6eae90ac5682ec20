package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
)

var fuzzMediaTypes = []string{
	handlers.MediaTypeImageManifest,
	handlers.MediaTypeDockerSchema2Manifest,
	handlers.MediaTypeImageIndex,
	handlers.MediaTypeDockerSchema2ManifestList,
	handlers.MediaTypeDockerSchema1SignedManifest,
	handlers.MediaTypeImageLayerGzip,
}

// FuzzChildrenOf feeds arbitrary bodies, under each media type, to
// ChildrenOf. Properties: it never panics; an error is classified (invalid
// argument, over a limit, or not implemented) and comes with no children;
// children are valid descriptors within the limits; a manifest's children
// are the config and layers that Manifest reads from the same blob; and the
// result is the same every time.
func FuzzChildrenOf(f *testing.F) {
	s := newMemStore()
	img := s.putImage(f, "linux/amd64", 2, false)
	dimg := s.putImage(f, "linux/arm64", 1, true)
	idx := s.putIndex(f, img.manifest, dimg.manifest)
	seeds := []struct {
		kind uint8
		body string
	}{
		{0, string(s.blobs[img.manifest.Digest])},
		{1, string(s.blobs[dimg.manifest.Digest])},
		{2, string(s.blobs[idx.Digest])},
		{3, fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":1,"platform":{"os":"linux","architecture":"amd64"}}]}`,
			handlers.MediaTypeDockerSchema2ManifestList, handlers.MediaTypeDockerSchema2Manifest, img.manifest.Digest)},
		{0, string(s.blobs[dimg.manifest.Digest])}, // media type mismatch
		{2, string(s.blobs[img.manifest.Digest])},  // a manifest labelled index
		{0, `{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:0","size":1}}`},
		{0, `{"schemaVersion":2,"config":null,"layers":null}`},
		{2, `{"manifests":[{"mediaType":"a","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":-5}]}`},
		{2, `null`},
		{4, `{"schemaVersion":1,"fsLayers":[]}`},
		{5, `not even json`},
		{0, `{"schemaVersion":2,"config":{},"layers":[{}],"manifests":[]}`},
	}
	for _, sd := range seeds {
		f.Add(sd.kind, []byte(sd.body))
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		s := newMemStore()
		desc := s.put(fuzzMediaTypes[int(kind)%len(fuzzMediaTypes)], body)
		ctx := context.Background()
		kids, err := handlers.ChildrenOf(ctx, s, desc)
		if err != nil {
			if kids != nil {
				t.Fatalf("children %v with error %v", kids, err)
			}
			if !errdefs.IsInvalidArgument(err) && !errors.Is(err, content.ErrTooLarge) && !errdefs.IsNotImplemented(err) {
				t.Fatalf("unclassified error: %v", err)
			}
		}
		for i, k := range kids {
			if verr := k.Digest.Validate(); verr != nil || k.MediaType == "" || k.Size < 0 {
				t.Fatalf("child %d is not a valid descriptor: %+v (%v)", i, k, verr)
			}
		}
		switch {
		case handlers.IsManifest(desc.MediaType):
			if len(kids) > handlers.MaxLayers+1 {
				t.Fatalf("%d children, over MaxLayers+1", len(kids))
			}
			m, merr := handlers.Manifest(ctx, s, desc, nil)
			if (merr == nil) != (err == nil) {
				t.Fatalf("ChildrenOf error %v, Manifest error %v", err, merr)
			}
			if err == nil {
				want := append([]ocispec.Descriptor{m.Config}, m.Layers...)
				if !reflect.DeepEqual(kids, want) {
					t.Fatalf("children %v are not config then layers %v", kids, want)
				}
			}
		case handlers.IsIndex(desc.MediaType):
			if len(kids) > handlers.MaxIndexManifests {
				t.Fatalf("%d children, over MaxIndexManifests", len(kids))
			}
		default:
			if err == nil && kids != nil {
				t.Fatalf("a %s has children %v", desc.MediaType, kids)
			}
		}
		again, err2 := handlers.ChildrenOf(ctx, s, desc)
		if !reflect.DeepEqual(again, kids) || (err == nil) != (err2 == nil) {
			t.Fatalf("second call gave %v, %v; first %v, %v", again, err2, kids, err)
		}
	})
}
