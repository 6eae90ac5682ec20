//go:build linux

package unpack

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/pullkit/pullkit/internal/compresstest"
)

// BenchmarkApply applies a layer shaped like a small distribution: many
// small files spread over directories, a few symlinks and one large file.
func BenchmarkApply(b *testing.B) {
	// Hex of pseudo-random bytes compresses about 2:1, like binaries do.
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) string {
		b := make([]byte, n/2)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return hex.EncodeToString(b)
	}
	var entries []tarEntry
	small := random(2 << 10)
	for d := range 50 {
		dir := fmt.Sprintf("usr/lib/pkg%02d/share", d)
		for f := range 40 {
			entries = append(entries, tarFile(fmt.Sprintf("%s/file%02d", dir, f), small, 0o644))
		}
		entries = append(entries, tarSymlink(dir+"/link", "file00"))
	}
	entries = append(entries, tarFile("usr/lib/big.bin", random(32<<20), 0o644))
	plain := tarLayer(b, entries...)
	for _, tc := range []struct {
		name   string
		stream []byte
	}{
		{"plain", plain},
		{"gzip", compresstest.Gzip(plain)},
		{"zstd", compresstest.Zstd(plain)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			base := b.TempDir()
			for i := 0; b.Loop(); i++ {
				root := filepath.Join(base, fmt.Sprint(i))
				if err := os.Mkdir(root, 0o755); err != nil {
					b.Fatal(err)
				}
				if _, err := Apply(context.Background(), root, bytes.NewReader(tc.stream)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
