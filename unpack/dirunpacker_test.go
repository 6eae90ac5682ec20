//go:build linux

package unpack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

// readLog records the blobs an unpacker opens, in order, and calls a hook
// when one is closed: the unpacker closes a layer once it is applied and
// its DiffID checked.
type readLog struct {
	content.Provider
	mu      sync.Mutex
	opened  []digest.Digest
	onClose func(d digest.Digest)
}

func (r *readLog) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := r.Provider.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.opened = append(r.opened, desc.Digest)
	r.mu.Unlock()
	return &hookedReaderAt{ReaderAt: ra, close: func() {
		if r.onClose != nil {
			r.onClose(desc.Digest)
		}
	}}, nil
}

func (r *readLog) order() []digest.Digest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.opened)
}

type hookedReaderAt struct {
	content.ReaderAt
	close func()
}

func (h *hookedReaderAt) Close() error {
	err := h.ReaderAt.Close()
	h.close()
	return err
}

func TestDirUnpackerAppliesWhileLaterLayersDownload(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	layers, entries := threeLayers(t)
	img := writeImage(t, src, linuxAMD64, layers...)

	// Layer 3 downloads first and must wait for the others; layer 2's
	// download does not end until layer 1 is applied into the directory,
	// which proves layer 1 was applied while layer 2 was still downloading.
	layer1Applied := make(chan struct{})
	p := newPipeline(src)
	p.noTee = true // so that every layer is read from the store, and counted
	log := &readLog{Provider: p.dst}
	var once sync.Once
	log.onClose = func(d digest.Digest) {
		if d == img.layers[0].Digest {
			once.Do(func() { close(layer1Applied) })
		}
	}
	p.layer3First(img, layer1Applied, "layer 1's apply")

	dir := filepath.Join(t.TempDir(), "rootfs")
	u := NewDirUnpacker(dir, log)
	if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 0, img.manifest); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	res, err := u.Results()
	checkApplied(t, res, err, img)
	var layerReads []digest.Digest
	for _, d := range log.order() {
		if slices.ContainsFunc(img.layers, func(l ocispec.Descriptor) bool { return l.Digest == d }) {
			layerReads = append(layerReads, d)
		}
	}
	// Each layer is read once: layer 3, fetched while layer 2 waits,
	// decompresses ahead, and is applied from that file.
	wantReads := []digest.Digest{img.layers[0].Digest, img.layers[1].Digest, img.layers[2].Digest}
	if !slices.Equal(slices.Sorted(slices.Values(layerReads)), slices.Sorted(slices.Values(wantReads))) {
		t.Fatalf("layers read %v, want each once: %v", layerReads, wantReads)
	}
	if diffs := diffTrees(readTree(t, dir), wantTree(t, entries)); len(diffs) > 0 {
		t.Fatalf("unpacked directory differs from the layers applied in order:\n%s", strings.Join(diffs, "\n"))
	}
	checkLayerLabels(t, ctx, p, img)
}

func TestDirUnpackerDiffIDMismatch(t *testing.T) {
	for _, tc := range []struct {
		bad   int
		ahead int
	}{{0, -1}, {1, -1}, {0, 0}, {1, 0}, {0, 2}} {
		bad := tc.bad
		t.Run(fmt.Sprintf("layer %d lies, ahead %d", bad, tc.ahead), func(t *testing.T) {
			ctx := testContext(t)
			src := memory.New()
			layers, _ := threeLayers(t)
			diffIDs := []digest.Digest{layers[0].diffID, layers[1].diffID, layers[2].diffID}
			diffIDs[bad] = digest.FromString("not this layer")
			img := writeImageDiffIDs(t, src, linuxAMD64, diffIDs, layers...)
			p := newPipeline(src)
			cp := newCountingProvider(p.dst)

			dir := t.TempDir()
			u := NewDirUnpacker(dir, cp, WithDecompressAhead(tc.ahead))
			err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 1, img.manifest)
			checkMismatch(t, err, img.layers[bad], diffIDs[bad], layers[bad].diffID)
			if res, rerr := u.Results(); !errors.Is(rerr, content.ErrDigestMismatch) || len(res) != 0 {
				t.Errorf("Results() = %v, %v, want no image and the mismatch", res, rerr)
			}
			// No layer above the bad one is applied. Without decompression
			// ahead, none is even read.
			if tc.ahead < 0 {
				for i := bad + 1; i < len(img.layers); i++ {
					if n := cp.count(img.layers[i].Digest); n != 0 {
						t.Errorf("layer %d read %d times after layer %d failed", i, n, bad)
					}
				}
			}
			got := readTree(t, dir)
			if _, ok := got["app/main"]; ok {
				t.Errorf("layer 2's app/main is in the directory after layer %d failed", bad)
			}
			if _, ok := got["usr/lib/libc.so"]; ok && bad == 0 {
				t.Errorf("layer 1's usr/lib/libc.so is in the directory after layer 0 failed")
			}
			if n, ok := got["etc/os-release"]; !ok || n.Digest != digest.FromString("base").Encoded() {
				t.Errorf("etc/os-release = %+v, want layer 0's", n)
			}
		})
	}
}

// TestDirUnpackerHostile checks that layers that reach out of the
// directory write nothing outside it.
func TestDirUnpackerHostile(t *testing.T) {
	tests := []struct {
		name    string
		layers  [][]tarEntry
		wantErr error
		landed  string // relative to the root, where the contained file is
	}{
		{"dotdot name", [][]tarEntry{{tarFile("ok", "x", 0o644)}, {tarFile("../outside/canary", "pwned", 0o644)}}, errdefs.ErrInvalidArgument, ""},
		{"hardlink out", [][]tarEntry{{tarHardlink("passwd", "../outside/canary")}}, errdefs.ErrInvalidArgument, ""},
		{"through a lower symlink that climbs out", [][]tarEntry{{tarFile("escape/canary", "pwned", 0o644)}}, nil, "outside/canary"},
		{"through a symlink of the layer below", [][]tarEntry{{tarSymlink("evil", "../../../..")}, {tarFile("evil/pwned", "1", 0o644)}}, nil, "pwned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			s := newEscapeSandbox(t)
			before := s.outsideState(t)
			src := memory.New()
			var layers []imageLayer
			for _, l := range tt.layers {
				layers = append(layers, gzipImageLayer(t, tarLayer(t, l...)))
			}
			img := writeImage(t, src, linuxAMD64, layers...)
			p := newPipeline(src)
			u := NewDirUnpacker(s.root, p.dst)
			err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 4, img.manifest)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Dispatch() error = %v, want %v", err, tt.wantErr)
			}
			var unsafe *UnsafeEntryError
			if tt.wantErr != nil && !errors.As(err, &unsafe) {
				t.Fatalf("Dispatch() error = %v, want an *UnsafeEntryError", err)
			}
			if diffs := diffTreeStates(before, s.outsideState(t)); len(diffs) > 0 {
				t.Fatalf("the layer changed things outside the directory:\n%s", strings.Join(diffs, "\n"))
			}
			if tt.landed != "" {
				if _, err := os.Lstat(filepath.Join(s.root, tt.landed)); err != nil {
					t.Fatalf("contained file not found at %s: %v", tt.landed, err)
				}
			}
		})
	}
}

// TestDirUnpackerOneImage checks that a directory gets one image: later
// image manifests pass through, their layers fetched and not applied.
func TestDirUnpackerOneImage(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	amd := writeImage(t, src, linuxAMD64, plainLayer(t, tarLayer(t, tarFile("amd64", "x", 0o644))))
	arm := writeImage(t, src, ocispec.Platform{OS: "linux", Architecture: "arm64"}, plainLayer(t, tarLayer(t, tarFile("arm64", "y", 0o644))))
	p := newPipeline(src)
	dir := t.TempDir()
	u := NewDirUnpacker(dir, p.dst, WithFetchSkipped())
	// Walk handles amd's manifest, config and layer before arm's manifest.
	if err := handlers.Walk(ctx, u.Wrap(p.handler()), amd.manifest, arm.manifest); err != nil {
		t.Fatalf("Walk() error = %v", err)
	}
	res, err := u.Results()
	if err != nil || len(res) != 1 || res[0].Manifest.Digest != amd.manifest.Digest {
		t.Fatalf("Results() = %+v, %v, want the first image only", res, err)
	}
	if got := readTree(t, dir); len(got) != 1 || got["amd64"].Type != "file" {
		t.Fatalf("directory = %v, want the first image's file only", got)
	}
	if n := p.fetchCount(arm.layers[0].Digest); n != 1 {
		t.Fatalf("the second image's layer was fetched %d times, want once", n)
	}

	// WithPlatforms chooses among the manifests an index names.
	idx := writeIndex(t, src, map[string]testImage{"linux/amd64": amd, "linux/arm64": arm}, "linux/amd64", "linux/arm64")
	dir = t.TempDir()
	p = newPipeline(src)
	u = NewDirUnpacker(dir, p.dst, WithPlatforms(platforms.Only(ocispec.Platform{OS: "linux", Architecture: "arm64"})))
	if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 4, idx); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	if res, err := u.Results(); err != nil || len(res) != 1 || res[0].Manifest.Digest != arm.manifest.Digest {
		t.Fatalf("Results() = %+v, %v, want the arm64 image", res, err)
	}
	if got := readTree(t, dir); len(got) != 1 || got["arm64"].Type != "file" {
		t.Fatalf("directory = %v, want the arm64 image's file only", got)
	}
}

func TestDirUnpackerCreatesDir(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	empty := writeImage(t, src, linuxAMD64)
	dir := filepath.Join(t.TempDir(), "a", "rootfs")
	p := newPipeline(src)
	u := NewDirUnpacker(dir, p.dst)
	if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 4, empty.manifest); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	if res, err := u.Results(); err != nil || len(res) != 1 || res[0].ChainID != "" {
		t.Fatalf("Results() = %+v, %v, want the image with no layers", res, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("Stat(dir) = %v, %v, want a directory", fi, err)
	}
}

// TestUnpackerFetchWindow checks that with a window of one byte layers
// download one after the other, bottom first, and that a layer is applied
// while the next one downloads. Layers are not decompressed ahead: a
// download that feeds one does not count against the window
// (TestFetchWindowBesideTee).
func TestUnpackerFetchWindow(t *testing.T) {
	for _, flat := range []bool{false, true} {
		t.Run(fmt.Sprintf("flat=%v", flat), func(t *testing.T) {
			ctx := testContext(t)
			src := memory.New()
			layers, entries := threeLayers(t)
			img := writeImage(t, src, linuxAMD64, layers...)
			p := newPipeline(src)
			var (
				mu     sync.Mutex
				events []string
			)
			record := func(format string, args ...any) {
				mu.Lock()
				events = append(events, fmt.Sprintf(format, args...))
				mu.Unlock()
			}
			layerIndex := func(d digest.Digest) int {
				return slices.IndexFunc(img.layers, func(l ocispec.Descriptor) bool { return l.Digest == d })
			}
			// Layer 1's apply does not end before layer 2's download has
			// started: the apply does not hold the downloads back.
			layer2Started := make(chan struct{})
			p.before = func(ctx context.Context, desc ocispec.Descriptor) error {
				if i := layerIndex(desc.Digest); i >= 0 {
					record("fetch %d", i)
					if i == 1 {
						close(layer2Started)
					}
				}
				return nil
			}
			p.after = func(ctx context.Context, desc ocispec.Descriptor) error {
				if i := layerIndex(desc.Digest); i >= 0 {
					record("fetched %d", i)
				}
				return nil
			}
			log := &readLog{Provider: p.dst}
			log.onClose = func(d digest.Digest) { record("applied %d", layerIndex(d)) }
			cp := newCountingProvider(log)
			cp.before = func(ctx context.Context, desc ocispec.Descriptor) {
				if layerIndex(desc.Digest) == 0 {
					waitFor(ctx, layer2Started, "layer 2's download")
				}
			}

			var u *Unpacker
			var dir string
			if flat {
				dir = t.TempDir()
				u = NewDirUnpacker(dir, cp, WithFetchWindow(1), WithDecompressAhead(-1))
			} else {
				u = NewUnpacker(newRecordingSnapshotter(t), cp, WithFetchWindow(1), WithDecompressAhead(-1))
			}
			if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 4, img.manifest); err != nil {
				t.Fatalf("Dispatch() error = %v", err)
			}
			res, err := u.Results()
			if err != nil || len(res) != 1 {
				t.Fatalf("Results() = %v, %v", res, err)
			}
			var fetches []string
			for _, e := range events {
				if strings.HasPrefix(e, "fetch") {
					fetches = append(fetches, e)
				}
			}
			want := []string{"fetch 0", "fetched 0", "fetch 1", "fetched 1", "fetch 2", "fetched 2"}
			if !slices.Equal(fetches, want) {
				t.Fatalf("downloads = %v, want one at a time, bottom first: %v", fetches, want)
			}
			if i := slices.Index(events, "applied 0"); i < slices.Index(events, "fetch 1") {
				t.Fatalf("events = %v: layer 1 applied before layer 2's download started", events)
			}
			if flat {
				if diffs := diffTrees(readTree(t, dir), wantTree(t, entries)); len(diffs) > 0 {
					t.Fatalf("unpacked directory differs:\n%s", strings.Join(diffs, "\n"))
				}
			}
		})
	}
}
