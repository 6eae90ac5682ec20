//go:build linux

package unpack

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
)

// TestDecompressAhead checks that a layer fetched while the one below it
// still downloads is decompressed ahead, and then applied from that file:
// layer 1's download waits until layer 2 has been read to its end, which
// only a decompression ahead does, and every layer is read once.
func TestDecompressAhead(t *testing.T) {
	for _, mode := range []string{"directory", "snapshotter"} {
		t.Run(mode, func(t *testing.T) {
			ctx := testContext(t)
			src := memory.New()
			layers, entries := threeLayers(t)
			img := writeImage(t, src, linuxAMD64, layers...)
			p := newPipeline(src)
			log := layer1WaitsForLayer2(p, img)

			var u *Unpacker
			var sn *Directory
			dir := filepath.Join(t.TempDir(), "rootfs")
			if mode == "directory" {
				u = NewDirUnpacker(dir, log)
			} else {
				var err error
				if sn, err = NewDirectory(t.TempDir()); err != nil {
					t.Fatal(err)
				}
				u = NewUnpacker(sn, log)
			}
			if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 0, img.manifest); err != nil {
				t.Fatalf("Dispatch() error = %v", err)
			}
			res, err := u.Results()
			if err != nil || len(res) != 1 || res[0].ChainID != img.chainIDs[2] {
				t.Fatalf("Results() = %+v, %v, want the image with chainID %s", res, err, img.chainIDs[2])
			}
			for i, l := range img.layers {
				if n := log.count(l.Digest); n != 1 {
					t.Errorf("layer %d read %d times, want once", i+1, n)
				}
			}
			var got map[string]treeNode
			if mode == "directory" {
				got = readTree(t, dir)
			} else {
				got = viewTree(t, sn, img.chainIDs[2].String())
			}
			if diffs := diffTrees(got, wantTree(t, entries)); len(diffs) > 0 {
				t.Fatalf("unpacked image differs from the layers applied in order:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}

// TestDecompressAheadFailureFallsBack checks that a layer whose
// decompression ahead fails (here its DiffID lies) is applied from its
// blob, which reports the failure as Apply does, and that nothing of it or
// above it reaches the directory.
func TestDecompressAheadFailureFallsBack(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	layers, _ := threeLayers(t)
	diffIDs := []digest.Digest{layers[0].diffID, digest.FromString("not this layer"), layers[2].diffID}
	img := writeImageDiffIDs(t, src, linuxAMD64, diffIDs, layers...)
	p := newPipeline(src)
	log := layer1WaitsForLayer2(p, img)
	dir := t.TempDir()
	u := NewDirUnpacker(dir, log)
	err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 0, img.manifest)
	var mismatch *DiffIDMismatchError
	if !errors.As(err, &mismatch) || mismatch.Expected != diffIDs[1] || mismatch.Actual != layers[1].diffID {
		t.Fatalf("Dispatch() error = %v, want layer 2's DiffID mismatch", err)
	}
	if n := log.count(img.layers[1].Digest); n != 2 {
		t.Errorf("layer 2 read %d times, want twice: ahead, then from its blob", n)
	}
	if _, err := os.Lstat(filepath.Join(dir, "app")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("layer 3 reached the directory: %v", err)
	}
	if res, err := u.Results(); err == nil || len(res) != 0 {
		t.Errorf("Results() = %v, %v, want the mismatch", res, err)
	}
}

// layer1WaitsForLayer2 makes layer 1's download wait until layer 2's blob
// has been read and closed, which only a decompression ahead does before
// layer 1 is applied, and returns the provider to unpack from, which
// counts the blobs opened.
func layer1WaitsForLayer2(p *pipeline, img testImage) *countingProvider {
	read := make(chan struct{})
	var once sync.Once
	log := &readLog{Provider: p.dst, onClose: func(d digest.Digest) {
		if d == img.layers[1].Digest {
			once.Do(func() { close(read) })
		}
	}}
	p.before = func(ctx context.Context, desc ocispec.Descriptor) error {
		if desc.Digest == img.layers[0].Digest {
			return waitFor(ctx, read, "layer 2's decompression ahead")
		}
		return nil
	}
	return newCountingProvider(log)
}
