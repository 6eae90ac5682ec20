package local_test

import (
	"fmt"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/local"
)

// BenchmarkImagesCreate adds names to an index that already holds 400.
func BenchmarkImagesCreate(b *testing.B) {
	s, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	create := func(i int) {
		img := content.Image{
			Name:   fmt.Sprintf("example.com/bench/image:%d", i),
			Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(fmt.Sprint(i)), Size: 1},
		}
		if _, err := s.Images().Create(b.Context(), img); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 400 {
		create(-1 - i)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		create(i)
	}
}
