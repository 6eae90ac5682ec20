package local_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync/atomic"
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

// BenchmarkWriteBlob writes and commits blobs of 1 MiB, as a pull of an
// image of many small layers does, in 1 MiB writes, 4 at a time.
func BenchmarkWriteBlob(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			s, err := local.New(b.TempDir(), local.WithSync(sync))
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			b.SetBytes(1 << 20)
			b.SetParallelism(2) // 2×GOMAXPROCS goroutines: 4 on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				blob := make([]byte, 1<<20)
				for pb.Next() {
					binary.LittleEndian.PutUint64(blob, uint64(n.Add(1)))
					desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
					if err := content.WriteBlob(b.Context(), s, "layer-"+desc.Digest.String(), bytes.NewReader(blob), desc); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
