//go:build linux

package unpack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

// testContext bounds a test that would otherwise hang on a broken
// unpacker; passing tests never come near the bound.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// threeLayers returns three layers, plain, gzip and zstd, where the second
// removes what the first made and the third adds to the second.
func threeLayers(t *testing.T) ([]imageLayer, [][]tarEntry) {
	entries := threeLayerEntries()
	return threeImageLayers(t, entries), entries
}

func threeLayerEntries() [][]tarEntry {
	return [][]tarEntry{
		{tarDir("etc", 0o755), tarFile("etc/os-release", "base", 0o644), tarFile("etc/gone", "x", 0o600), tarSymlink("lib", "usr/lib")},
		{tarWhiteout("etc/.wh.gone"), tarDir("usr/lib", 0o755), tarFile("usr/lib/libc.so", "libc", 0o755), tarHardlink("etc/copy", "etc/os-release")},
		{tarFile("app/main", "app", 0o755), tarFile("etc/os-release", "top", 0o644)},
	}
}

// threeImageLayers makes the first layer plain, the second gzip and the
// third zstd.
func threeImageLayers(t *testing.T, entries [][]tarEntry) []imageLayer {
	return []imageLayer{
		plainLayer(t, tarLayer(t, entries[0]...)),
		gzipImageLayer(t, tarLayer(t, entries[1]...)),
		zstdImageLayer(t, tarLayer(t, entries[2]...)),
	}
}

// wantTree applies layers directly into a fresh directory, without
// snapshots, and returns the tree they make.
func wantTree(t *testing.T, layers [][]tarEntry) map[string]treeNode {
	t.Helper()
	root := t.TempDir()
	applyLayers(t, root, layers)
	return readTree(t, root)
}

func waitFor(ctx context.Context, ch <-chan struct{}, what string) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
	}
}

func TestUnpackerAppliesWhileLaterLayersDownload(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	layers, entries := threeLayers(t)
	img := writeImage(t, src, linuxAMD64, layers...)
	sn := newRecordingSnapshotter(t)

	// Layer 3 downloads first and must wait for the others; layer 2's
	// download does not end until layer 1 is committed as a snapshot, which
	// proves layer 1 was applied while layer 2 was still downloading.
	layer1Committed := make(chan struct{})
	var once sync.Once
	sn.afterCommit = func(name string) {
		if name == img.chainIDs[0].String() {
			once.Do(func() { close(layer1Committed) })
		}
	}
	p := newPipeline(src)
	p.layer3First(img, layer1Committed, "layer 1's snapshot")

	u := NewUnpacker(sn, p.dst)
	if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 0, img.manifest); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	res, err := u.Results()
	checkApplied(t, res, err, img)
	wantCommits := []string{img.chainIDs[0].String(), img.chainIDs[1].String(), img.chainIDs[2].String()}
	if got := sn.committed(); !slices.Equal(got, wantCommits) {
		t.Fatalf("commits = %v, want in layer order %v", got, wantCommits)
	}
	if diffs := diffTrees(viewTree(t, sn, img.chainIDs[2].String()), wantTree(t, entries)); len(diffs) > 0 {
		t.Fatalf("unpacked image differs from the layers applied in order:\n%s", strings.Join(diffs, "\n"))
	}
	if keys := activeKeys(t, sn); len(keys) != 0 {
		t.Fatalf("active snapshots left: %v", keys)
	}
	checkLayerLabels(t, ctx, p, img)
}

func TestUnpackerDiffIDMismatch(t *testing.T) {
	for _, bad := range []int{0, 1} {
		t.Run(fmt.Sprintf("layer %d lies", bad), func(t *testing.T) {
			ctx := testContext(t)
			src := memory.New()
			layers, _ := threeLayers(t)
			layers = layers[:2]
			diffIDs := []digest.Digest{layers[0].diffID, layers[1].diffID}
			diffIDs[bad] = digest.FromString("not this layer")
			img := writeImageDiffIDs(t, src, linuxAMD64, diffIDs, layers...)
			sn := newRecordingSnapshotter(t)
			p := newPipeline(src)

			u := NewUnpacker(sn, p.dst)
			err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 2, img.manifest)
			checkMismatch(t, err, img.layers[bad], diffIDs[bad], layers[bad].diffID)
			if _, rerr := u.Results(); !errors.Is(rerr, content.ErrDigestMismatch) {
				t.Errorf("Results() error = %v, want the mismatch", rerr)
			}
			// Nothing is committed from the bad layer up, and its active
			// snapshot is gone.
			if got := sn.committed(); len(got) != bad {
				t.Errorf("commits = %v, want the %d layers below the bad one", got, bad)
			}
			if _, err := sn.Stat(ctx, img.chainIDs[bad].String()); !errdefs.IsNotFound(err) {
				t.Errorf("Stat(bad chainID) error = %v, want NotFound", err)
			}
			if keys := activeKeys(t, sn); len(keys) != 0 {
				t.Errorf("active snapshots left: %v", keys)
			}
		})
	}
}

func TestUnpackerSkipsCommittedLayers(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	layers, entries := threeLayers(t)
	base := writeImage(t, src, linuxAMD64, layers[:2]...)
	full := writeImage(t, src, linuxAMD64, layers...)
	sn := newRecordingSnapshotter(t)

	pull := func(img testImage, opts ...Option) (*pipeline, *countingProvider, Result) {
		t.Helper()
		p := newPipeline(src)
		cp := newCountingProvider(p.dst)
		u := NewUnpacker(sn, cp, opts...)
		if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 4, img.manifest); err != nil {
			t.Fatalf("Dispatch() error = %v", err)
		}
		res, err := u.Results()
		if err != nil || len(res) != 1 {
			t.Fatalf("Results() = %v, %v", res, err)
		}
		return p, cp, res[0]
	}
	applied := func(r Result) []bool {
		var out []bool
		for _, l := range r.Layers {
			out = append(out, l.Applied)
		}
		return out
	}

	pull(base)
	// The full image shares two layers with base: they are neither
	// fetched nor read, and the third is applied on base's top snapshot.
	p, cp, r := pull(full)
	for i, want := range []int{0, 0, 1} {
		d := full.layers[i].Digest
		if p.fetchCount(d) != want || cp.count(d) != want {
			t.Errorf("layer %d fetched %d times and read %d times, want %d", i, p.fetchCount(d), cp.count(d), want)
		}
	}
	if got := applied(r); !slices.Equal(got, []bool{false, false, true}) {
		t.Errorf("applied = %v, want only the third layer", got)
	}
	if r.ChainID != full.chainIDs[2] {
		t.Errorf("ChainID = %s, want %s", r.ChainID, full.chainIDs[2])
	}
	if diffs := diffTrees(viewTree(t, sn, r.ChainID.String()), wantTree(t, entries)); len(diffs) > 0 {
		t.Fatalf("unpacked image differs:\n%s", strings.Join(diffs, "\n"))
	}

	// Pulled again, nothing is fetched or read.
	p, cp, r = pull(full)
	for i, l := range full.layers {
		if p.fetchCount(l.Digest) != 0 || cp.count(l.Digest) != 0 {
			t.Errorf("layer %d fetched or read again", i)
		}
	}
	if got := applied(r); !slices.Equal(got, []bool{false, false, false}) || r.ChainID != full.chainIDs[2] {
		t.Errorf("result = %+v, want nothing applied and the same chainID", r)
	}

	// WithFetchSkipped fetches the blobs, still without reading them.
	p, cp, _ = pull(full, WithFetchSkipped())
	for i, l := range full.layers {
		if p.fetchCount(l.Digest) != 1 || cp.count(l.Digest) != 0 {
			t.Errorf("WithFetchSkipped: layer %d fetched %d times and read %d times, want 1 and 0", i, p.fetchCount(l.Digest), cp.count(l.Digest))
		}
	}
	if got := len(sn.committed()); got != 3 {
		t.Errorf("%d commits in all, want 3", got)
	}
}

func TestUnpackConcurrentUnpacksApplyOnce(t *testing.T) {
	ctx := testContext(t)
	store := memory.New()
	layers, entries := threeLayers(t)
	img := writeImage(t, store, linuxAMD64, layers...)
	sn := newRecordingSnapshotter(t)

	// The first unpack to open layer 1 waits there until the second has
	// looked for the image's snapshots (a third Stat of the first chainID:
	// each unpack's survey, and the first one's check before it applies),
	// so that the two overlap.
	bothStarted := make(chan struct{})
	var once sync.Once
	sn.afterStat = func(key string) {
		if key == img.chainIDs[0].String() && sn.statCount(key) >= 3 {
			once.Do(func() { close(bothStarted) })
		}
	}
	cp := newCountingProvider(store)
	cp.before = func(ctx context.Context, desc ocispec.Descriptor) {
		if desc.Digest == img.layers[0].Digest {
			waitFor(ctx, bothStarted, "the second unpack")
		}
	}

	var (
		wg     sync.WaitGroup
		chains [2]digest.Digest
		errs   [2]error
	)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chains[i], errs[i] = Unpack(ctx, sn, cp, img.manifest)
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || chains[i] != img.chainIDs[2] {
			t.Fatalf("Unpack() #%d = %s, %v, want %s", i, chains[i], errs[i], img.chainIDs[2])
		}
	}
	if got := sn.committed(); len(got) != 3 {
		t.Fatalf("commits = %v, want each layer once", got)
	}
	for i, l := range img.layers {
		if n := cp.count(l.Digest); n != 1 {
			t.Errorf("layer %d read %d times, want once", i, n)
		}
	}
	if diffs := diffTrees(viewTree(t, sn, img.chainIDs[2].String()), wantTree(t, entries)); len(diffs) > 0 {
		t.Fatalf("unpacked image differs:\n%s", strings.Join(diffs, "\n"))
	}
}

// TestUnpackerCommitRace has another "process" commit a layer's chainID
// while the unpacker applies it: the unpacker keeps theirs.
func TestUnpackerCommitRace(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	layers, entries := threeLayers(t)
	img := writeImage(t, src, linuxAMD64, layers...)
	sn := newRecordingSnapshotter(t)
	other := sn.Snapshotter // the same root, as another process sees it
	var once sync.Once
	sn.beforeCommit = func(name string) {
		if name != img.chainIDs[0].String() {
			return
		}
		once.Do(func() {
			dir := mustPrepare(t, other, "other-process", "")
			applyLayers(t, dir, entries[:1])
			if err := other.Commit(ctx, name, "other-process"); err != nil {
				t.Errorf("other process: Commit() error = %v", err)
			}
		})
	}
	p := newPipeline(src)
	u := NewUnpacker(sn, p.dst)
	if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 4, img.manifest); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	res, err := u.Results()
	if err != nil {
		t.Fatal(err)
	}
	var applied []bool
	for _, l := range res[0].Layers {
		applied = append(applied, l.Applied)
	}
	if !slices.Equal(applied, []bool{false, true, true}) {
		t.Errorf("applied = %v, want the first layer left to the other process", applied)
	}
	if keys := activeKeys(t, sn); len(keys) != 0 {
		t.Errorf("active snapshots left: %v", keys)
	}
	if diffs := diffTrees(viewTree(t, sn, res[0].ChainID.String()), wantTree(t, entries)); len(diffs) > 0 {
		t.Fatalf("unpacked image differs:\n%s", strings.Join(diffs, "\n"))
	}
}

func TestUnpackerPlatforms(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	amd := writeImage(t, src, linuxAMD64, plainLayer(t, tarLayer(t, tarFile("amd64", "x", 0o644))))
	arm := writeImage(t, src, ocispec.Platform{OS: "linux", Architecture: "arm64"}, plainLayer(t, tarLayer(t, tarFile("arm64", "y", 0o644))))
	idx := writeIndex(t, src, map[string]testImage{"linux/amd64": amd, "linux/arm64": arm}, "linux/amd64", "linux/arm64")
	// The manifest descriptors below the index name their platforms; the
	// amd64 image is also reached as a bare manifest, which only its
	// config tells apart.
	sn := newRecordingSnapshotter(t)
	p := newPipeline(src)
	u := NewUnpacker(sn, p.dst, WithPlatforms(platforms.Only(ocispec.Platform{OS: "linux", Architecture: "arm64"})))
	if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 4, idx, amd.manifest); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	res, err := u.Results()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Manifest.Digest != arm.manifest.Digest {
		t.Fatalf("Results() = %+v, want the arm64 image only", res)
	}
	if got := sn.committed(); !slices.Equal(got, []string{arm.chainIDs[0].String()}) {
		t.Fatalf("commits = %v, want the arm64 layer only", got)
	}
	// The amd64 layer passed through: fetched, not applied.
	if n := p.fetchCount(amd.layers[0].Digest); n == 0 {
		t.Fatal("the amd64 layer was not fetched")
	}
}

func TestUnpackerIncomplete(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	layers, _ := threeLayers(t)
	img := writeImage(t, src, linuxAMD64, layers...)
	sn := newRecordingSnapshotter(t)
	p := newPipeline(src)
	p.before = func(ctx context.Context, desc ocispec.Descriptor) error {
		if desc.Digest == img.layers[1].Digest {
			return handlers.ErrSkipDesc
		}
		return nil
	}
	u := NewUnpacker(sn, p.dst)
	if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 4, img.manifest); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	res, err := u.Results()
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), img.layers[1].Digest.String()) || len(res) != 0 {
		t.Fatalf("Results() = %v, %v, want a FailedPrecondition error naming layer 2", res, err)
	}
	if got := sn.committed(); !slices.Equal(got, []string{img.chainIDs[0].String()}) {
		t.Fatalf("commits = %v, want the first layer only", got)
	}
}

// overlaySnapshotter gives mounts that need mount(2).
type overlaySnapshotter struct{ Snapshotter }

func (o overlaySnapshotter) Prepare(ctx context.Context, key, parent string, opts ...SnapshotOption) ([]Mount, error) {
	m, err := o.Snapshotter.Prepare(ctx, key, parent, opts...)
	if err != nil {
		return nil, err
	}
	return []Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + m[0].Source}}}, nil
}

func TestUnpackErrors(t *testing.T) {
	ctx := testContext(t)
	store := memory.New()
	layer := plainLayer(t, tarLayer(t, tarFile("f", "x", 0o644)))
	img := writeImage(t, store, linuxAMD64, layer)

	artifact := writeImage(t, store, linuxAMD64, layer)
	artifact.config = writeTestBlob(t, store, "application/vnd.example.config+json", []byte("{}"))
	artifact.manifest = writeTestBlob(t, store, ocispec.MediaTypeImageManifest,
		[]byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":2},"layers":[]}`,
			ocispec.MediaTypeImageManifest, artifact.config.MediaType, artifact.config.Digest)))

	encrypted := imageLayer{blob: layer.blob, diffID: layer.diffID, mediaType: ocispec.MediaTypeImageLayer + "+encrypted"}
	enc := writeImage(t, store, linuxAMD64, encrypted)

	missing := memory.New()
	incomplete := writeImage(t, missing, linuxAMD64, layer)
	if err := missing.Delete(ctx, incomplete.layers[0].Digest); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		sn   func(Snapshotter) Snapshotter
		p    content.Provider
		desc ocispec.Descriptor
		opts []Option
		want error
	}{
		{"artifact", nil, store, artifact.manifest, nil, errdefs.ErrInvalidArgument},
		{"encrypted layer", nil, store, enc.manifest, nil, errdefs.ErrNotImplemented},
		{"missing layer", nil, missing, incomplete.manifest, nil, errdefs.ErrNotFound},
		{"not a manifest", nil, store, img.config, nil, errdefs.ErrInvalidArgument},
		{"wrong platform", nil, store, img.manifest, []Option{WithPlatforms(platforms.OnlyStrict(ocispec.Platform{OS: "windows", Architecture: "amd64"}))}, errdefs.ErrNotFound},
		{"mounts need mount(2)", func(s Snapshotter) Snapshotter { return overlaySnapshotter{s} }, store, img.manifest, nil, errdefs.ErrNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sn Snapshotter = newTestDirectory(t)
			if tt.sn != nil {
				sn = tt.sn(sn)
			}
			chain, err := Unpack(ctx, sn, tt.p, tt.desc, tt.opts...)
			if !errors.Is(err, tt.want) || chain != "" {
				t.Fatalf("Unpack() = %q, %v, want %v", chain, err, tt.want)
			}
			if keys := activeKeys(t, sn); len(keys) != 0 {
				t.Fatalf("active snapshots left: %v", keys)
			}
		})
	}
}

func TestUnpackIndex(t *testing.T) {
	ctx := testContext(t)
	store := memory.New()
	host := platforms.DefaultSpec()
	other := "linux/s390x"
	if host.Architecture == "s390x" {
		other = "linux/ppc64le"
	}
	hostImg := writeImage(t, store, host, gzipImageLayer(t, tarLayer(t, tarFile("host", "h", 0o644))))
	otherImg := writeImage(t, store, linuxAMD64, gzipImageLayer(t, tarLayer(t, tarFile("other", "o", 0o644))))
	hostSpec := host.OS + "/" + host.Architecture
	idx := writeIndex(t, store, map[string]testImage{other: otherImg, hostSpec: hostImg}, other, hostSpec)

	d := newTestDirectory(t)
	chain, err := Unpack(ctx, d, store, idx)
	if err != nil || chain != hostImg.chainIDs[0] {
		t.Fatalf("Unpack(index) = %s, %v, want the host's image %s", chain, err, hostImg.chainIDs[0])
	}
	osName, arch, _ := strings.Cut(other, "/")
	chain, err = Unpack(ctx, d, store, idx, WithPlatforms(platforms.OnlyStrict(ocispec.Platform{OS: osName, Architecture: arch})))
	if err != nil || chain != otherImg.chainIDs[0] {
		t.Fatalf("Unpack(index, %s) = %s, %v, want %s", other, chain, err, otherImg.chainIDs[0])
	}
	if got := viewTree(t, d, chain.String()); got["other"].Type != "file" || len(got) != 1 {
		t.Fatalf("tree = %v, want the other platform's file", got)
	}

	empty := writeImage(t, store, linuxAMD64)
	if chain, err := Unpack(ctx, d, store, empty.manifest); err != nil || chain != "" {
		t.Fatalf("Unpack(no layers) = %q, %v, want the empty chainID", chain, err)
	}
}

func TestUnpackApplyOptions(t *testing.T) {
	ctx := testContext(t)
	store := memory.New()
	img := writeImage(t, store, linuxAMD64, plainLayer(t, tarLayer(t, tarFile("big", strings.Repeat("x", 4096), 0o644))))
	d := newTestDirectory(t)
	// The option reaches Apply; a WithDiffID among them does not replace
	// the config's.
	_, err := Unpack(ctx, d, store, img.manifest, WithApplyOptions(WithMaxSize(1024), WithDiffID(digest.FromString("x"))))
	if !errors.Is(err, content.ErrTooLarge) {
		t.Fatalf("Unpack(WithMaxSize(1024)) error = %v, want ErrTooLarge", err)
	}
	if chain, err := Unpack(ctx, d, store, img.manifest, WithApplyOptions(WithDiffID(digest.FromString("x")))); err != nil || chain != img.chainIDs[0] {
		t.Fatalf("Unpack(WithDiffID(wrong)) = %s, %v, want the config's diffID checked", chain, err)
	}
}

// TestUnpackerMetadataOnly checks that a manifest whose layers the
// pipeline leaves out is not unpacked, and its layers not fetched.
func TestUnpackerMetadataOnly(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	layers, _ := threeLayers(t)
	img := writeImage(t, src, linuxAMD64, layers...)
	sn := newRecordingSnapshotter(t)
	p := newPipeline(src)
	metadataOnly := handlers.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := p.handler().Handle(ctx, desc)
		return slices.DeleteFunc(children, func(c ocispec.Descriptor) bool { return handlers.IsLayer(c.MediaType) }), err
	})
	u := NewUnpacker(sn, p.dst)
	if err := handlers.Dispatch(ctx, u.Wrap(metadataOnly), 4, img.manifest); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	if res, err := u.Results(); err != nil || len(res) != 0 {
		t.Fatalf("Results() = %v, %v, want nothing unpacked", res, err)
	}
	for i, l := range img.layers {
		if n := p.fetchCount(l.Digest); n != 0 {
			t.Errorf("layer %d fetched %d times", i, n)
		}
	}
	if p.fetchCount(img.config.Digest) != 1 {
		t.Error("the config was not fetched")
	}
}
