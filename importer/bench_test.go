package importer

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content/local"
	"github.com/pullkit/pullkit/internal/compresstest"
)

// BenchmarkImport imports a docker save archive of one 64 MiB layer into a
// content/local store without fsync, the layer plain or gzip-compressed
// (whose diffID is then computed in the same pass).
func BenchmarkImport(b *testing.B) {
	data := make([]byte, 64<<20)
	rng := rand.NewChaCha8([32]byte{7})
	for i := 0; i < len(data); i += 4096 {
		// Half random, half zeros: compressible, as real layers are.
		rng.Read(data[i : i+2048])
	}
	raw := tarball(b, reg("data.bin", data))
	for _, c := range []compression{plain, gzipped} {
		l := layer{blob: raw, diffID: digest.FromBytes(raw), comp: c}
		if c == gzipped {
			l.blob = compresstest.Gzip(raw)
		}
		archive := tarball(b, dockerSave(newSaved([]string{"bench:1"}, "linux/amd64", l))...)
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(archive)))
			for b.Loop() {
				store, err := local.New(b.TempDir(), local.WithSync(false))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Import(context.Background(), store, store.Images(), bytes.NewReader(archive)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
