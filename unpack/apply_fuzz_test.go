//go:build linux

package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/internal/compresstest"
)

// FuzzApply applies arbitrary streams to a root beside a canary directory.
// Whatever the stream, Apply must not panic, must leave everything outside
// the root as it was, and when it succeeds on an uncompressed stream, must
// report that stream's digest and length.
func FuzzApply(f *testing.F) {
	seeds := [][]tarEntry{
		{tarFile("../outside/canary", "pwned", 0o644)},
		{tarFile("/../outside/canary", "pwned", 0o644)},
		{tarFile("escape/canary", "pwned", 0o644)},
		{tarFile("abs/canary", "pwned", 0o644)},
		{tarFile("up/outside/canary", "pwned", 0o644)},
		{tarSymlink("evil", "../../outside"), tarFile("evil/canary", "pwned", 0o644)},
		{tarSymlink("evil", "/"), tarFile("evil/outside/canary", "pwned", 0o644), tarHardlink("h", "evil/outside/canary")},
		{tarHardlink("h", "../outside/canary")},
		{tarHardlink("h", "escape/canary")},
		{tarHardlink("h", "escape"), tarFile("h/canary", "pwned", 0o644)},
		{tarWhiteout(".wh..."), tarWhiteout("escape/.wh.canary"), tarWhiteout("escape/.wh..wh..opq")},
		{tarWhiteout("slash/.wh..wh..opq"), tarWhiteout("up/.wh.outside")},
		{tarDir("escape", 0o777), tarDir("abs", 0o700), tarFile("slash", "x", 0o644)},
		{tarSymlink("loop1", "loop2"), tarSymlink("loop2", "loop1"), tarFile("loop1/x", "x", 0o644)},
		{tarDir("d", 0o755), tarFile("d/f", "f", 0o4755, tarOwner(1000, 1000)), tarHardlink("d/h", "d/f"), tarWhiteout("d/.wh.f")},
		{tarFile("d/x", "x", 0o644), tarWhiteout("d/.wh..wh..opq"), tarDir("d", 0o700), tarFile("d", "file", 0o600)},
		{tarFifo("p", 0o600), tarDevice(tar.TypeChar, "null", 1, 3), tarFile("x", "x", 0o644, tarXattr("user.a", "b"), tarXattr("trusted.x", "y"))},
		{tarFile(strings.Repeat("deep/", 60)+"f", "deep", 0o644)},
	}
	for i, entries := range seeds {
		plain := tarLayer(f, entries...)
		f.Add(plain)
		if i < 4 { // a few compressed ones; the fuzzer mutates the rest
			f.Add(compresstest.Gzip(plain))
			f.Add(compresstest.Zstd(plain))
		}
	}
	f.Add(sparseTarLayer("sparse", 1<<30, 1<<30-5, "hello"))
	f.Add([]byte{})
	f.Add(make([]byte, 1024))

	f.Fuzz(func(t *testing.T, data []byte) {
		s := newEscapeSandbox(t)
		before := s.outsideState(t)
		res, err := Apply(context.Background(), s.root, bytes.NewReader(data),
			WithMaxSize(8<<20), WithMaxEntries(500))
		if diffs := diffTreeStates(before, s.outsideState(t)); len(diffs) > 0 {
			t.Fatalf("Apply() error = %v; outside the root changed:\n%s", err, strings.Join(diffs, "\n"))
		}
		head := data[:min(len(data), DetectHeaderSize)]
		if err == nil && DetectCompression(head) == Uncompressed {
			if want := digest.FromBytes(data); res.DiffID != want || res.Size != int64(len(data)) {
				t.Errorf("Apply() = %s, %d bytes; want %s, %d bytes", res.DiffID, res.Size, want, len(data))
			}
		}
	})
}
