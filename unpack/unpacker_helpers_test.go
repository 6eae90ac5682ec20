//go:build linux

package unpack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/internal/compresstest"
)

// imageLayer is a layer blob as a registry serves it.
type imageLayer struct {
	blob      []byte
	diffID    digest.Digest
	mediaType string
}

// plainLayer, gzipImageLayer and zstdImageLayer make layers of a tar
// stream.
func plainLayer(t testing.TB, tarball []byte) imageLayer {
	return imageLayer{blob: tarball, diffID: digest.FromBytes(tarball), mediaType: ocispec.MediaTypeImageLayer}
}

func gzipImageLayer(t testing.TB, tarball []byte) imageLayer {
	return imageLayer{blob: compresstest.Gzip(tarball), diffID: digest.FromBytes(tarball), mediaType: ocispec.MediaTypeImageLayerGzip}
}

func zstdImageLayer(t testing.TB, tarball []byte) imageLayer {
	return imageLayer{blob: compresstest.Zstd(tarball), diffID: digest.FromBytes(tarball), mediaType: ocispec.MediaTypeImageLayerZstd}
}

// testImage is an image written to a store.
type testImage struct {
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
	diffIDs  []digest.Digest // as the config lists them
	chainIDs []digest.Digest
}

// writeImage writes the layers, a config for platform listing their
// diffIDs, and a manifest, to store.
func writeImage(t testing.TB, store content.Ingester, platform ocispec.Platform, layers ...imageLayer) testImage {
	t.Helper()
	var diffIDs []digest.Digest
	for _, l := range layers {
		diffIDs = append(diffIDs, l.diffID)
	}
	return writeImageDiffIDs(t, store, platform, diffIDs, layers...)
}

// writeImageDiffIDs is writeImage with the config listing diffIDs, true or
// not.
func writeImageDiffIDs(t testing.TB, store content.Ingester, platform ocispec.Platform, diffIDs []digest.Digest, layers ...imageLayer) testImage {
	t.Helper()
	img := testImage{diffIDs: diffIDs, chainIDs: ChainIDs(diffIDs)}
	for _, l := range layers {
		img.layers = append(img.layers, writeTestBlob(t, store, l.mediaType, l.blob))
	}
	cfg, err := json.Marshal(ocispec.Image{
		Platform: platform,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	if err != nil {
		t.Fatal(err)
	}
	img.config = writeTestBlob(t, store, ocispec.MediaTypeImageConfig, cfg)
	man, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.config,
		Layers:    img.layers,
	})
	if err != nil {
		t.Fatal(err)
	}
	img.manifest = writeTestBlob(t, store, ocispec.MediaTypeImageManifest, man)
	return img
}

// writeIndex writes an index of the images, each with its platform.
func writeIndex(t testing.TB, store content.Ingester, entries map[string]testImage, order ...string) ocispec.Descriptor {
	t.Helper()
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, spec := range order {
		d := entries[spec].manifest
		osName, arch, _ := strings.Cut(spec, "/")
		d.Platform = &ocispec.Platform{OS: osName, Architecture: arch}
		idx.Manifests = append(idx.Manifests, d)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	return writeTestBlob(t, store, ocispec.MediaTypeImageIndex, b)
}

func writeTestBlob(t testing.TB, store content.Ingester, mediaType string, b []byte) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(context.Background(), store, desc.Digest.String(), bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

var linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}

// countingProvider counts the blobs opened, by digest.
type countingProvider struct {
	content.Provider
	mu     sync.Mutex
	opened map[digest.Digest]int
	// before, when set, is called before a blob is opened.
	before func(ctx context.Context, desc ocispec.Descriptor)
}

func newCountingProvider(p content.Provider) *countingProvider {
	return &countingProvider{Provider: p, opened: map[digest.Digest]int{}}
}

func (c *countingProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	c.mu.Lock()
	c.opened[desc.Digest]++
	before := c.before
	c.mu.Unlock()
	if before != nil {
		before(ctx, desc)
	}
	return c.Provider.ReaderAt(ctx, desc)
}

func (c *countingProvider) count(d digest.Digest) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened[d]
}

// recordingSnapshotter records the snapshots prepared and committed.
type recordingSnapshotter struct {
	Snapshotter
	mu       sync.Mutex
	prepared []string // parents
	commits  []string // names
	stats    map[string]int
	// afterCommit, when set, is called after each successful commit.
	afterCommit func(name string)
	// beforeCommit, when set, is called before each commit.
	beforeCommit func(name string)
	// afterStat, when set, is called after each Stat.
	afterStat func(key string)
}

func newRecordingSnapshotter(t testing.TB) *recordingSnapshotter {
	t.Helper()
	d, err := NewDirectory(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &recordingSnapshotter{Snapshotter: d, stats: map[string]int{}}
}

func (r *recordingSnapshotter) Stat(ctx context.Context, key string) (Info, error) {
	info, err := r.Snapshotter.Stat(ctx, key)
	r.mu.Lock()
	r.stats[key]++
	after := r.afterStat
	r.mu.Unlock()
	if after != nil {
		after(key)
	}
	return info, err
}

func (r *recordingSnapshotter) Prepare(ctx context.Context, key, parent string, opts ...SnapshotOption) ([]Mount, error) {
	r.mu.Lock()
	r.prepared = append(r.prepared, parent)
	r.mu.Unlock()
	return r.Snapshotter.Prepare(ctx, key, parent, opts...)
}

func (r *recordingSnapshotter) Commit(ctx context.Context, name, key string, opts ...SnapshotOption) error {
	r.mu.Lock()
	before := r.beforeCommit
	r.mu.Unlock()
	if before != nil {
		before(name)
	}
	if err := r.Snapshotter.Commit(ctx, name, key, opts...); err != nil {
		return err
	}
	r.mu.Lock()
	r.commits = append(r.commits, name)
	after := r.afterCommit
	r.mu.Unlock()
	if after != nil {
		after(name)
	}
	return nil
}

func (r *recordingSnapshotter) committed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.commits...)
}

func (r *recordingSnapshotter) statCount(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats[key]
}

// pipeline is a pull without a registry: its fetch handler copies blobs
// from a source store into the store the pull writes to, and calls the
// test's hooks around each copy.
type pipeline struct {
	src, dst *memory.Store
	mu       sync.Mutex
	fetched  map[digest.Digest]int
	// before and after, when set, run before and after a blob is copied.
	before, after func(ctx context.Context, desc ocispec.Descriptor) error
	// noTee turns off the copy of downloads to an Unpacker's
	// decompressions ahead (content.WithTee), so that they read the
	// layers from the store.
	noTee bool
}

func newPipeline(src *memory.Store) *pipeline {
	return &pipeline{src: src, dst: memory.New(), fetched: map[digest.Digest]int{}}
}

// handler returns the pull's chain: fetch, children, GC labels.
func (p *pipeline) handler() handlers.Handler {
	fetch := handlers.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if p.before != nil {
			if err := p.before(ctx, desc); err != nil {
				return nil, err
			}
		}
		p.mu.Lock()
		p.fetched[desc.Digest]++
		p.mu.Unlock()
		if p.noTee {
			ctx = content.WithTee(ctx, nil)
		}
		ra, err := p.src.ReaderAt(ctx, desc)
		if err != nil {
			return nil, err
		}
		defer ra.Close()
		if err := content.WriteBlob(ctx, p.dst, desc.Digest.String(), content.NewReader(ra), desc); err != nil {
			return nil, err
		}
		if p.after != nil {
			if err := p.after(ctx, desc); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	return handlers.SetChildrenLabels(p.dst, handlers.Sequence(fetch, handlers.Children(p.dst)))
}

// layer3First makes the pipeline fetch layer 3 before the others, and
// hold layer 2's download until layer1Done is closed (layer 1 applied,
// which proves it was applied while layer 2 still downloaded); what names
// that event in errors.
func (p *pipeline) layer3First(img testImage, layer1Done <-chan struct{}, what string) {
	layer3Fetched := make(chan struct{})
	p.before = func(ctx context.Context, desc ocispec.Descriptor) error {
		switch desc.Digest {
		case img.layers[0].Digest:
			return waitFor(ctx, layer3Fetched, "layer 3's download")
		case img.layers[1].Digest:
			return waitFor(ctx, layer1Done, what)
		}
		return nil
	}
	p.after = func(ctx context.Context, desc ocispec.Descriptor) error {
		if desc.Digest == img.layers[2].Digest {
			close(layer3Fetched)
		}
		return nil
	}
}

// checkApplied checks that an Unpacker's Results are img, every layer
// applied, with its diffID and chainID.
func checkApplied(t *testing.T, res []Result, err error, img testImage) {
	t.Helper()
	if err != nil {
		t.Fatalf("Results() error = %v", err)
	}
	if len(res) != 1 || res[0].Manifest.Digest != img.manifest.Digest || res[0].Config.Digest != img.config.Digest || res[0].ChainID != img.chainIDs[2] {
		t.Fatalf("Results() = %+v, want the image with chainID %s", res, img.chainIDs[2])
	}
	for i, l := range res[0].Layers {
		if !l.Applied || l.DiffID != img.diffIDs[i] || l.ChainID != img.chainIDs[i] || l.Layer.Digest != img.layers[i].Digest {
			t.Errorf("layer %d = %+v, want applied with diffID %s and chainID %s", i, l, img.diffIDs[i], img.chainIDs[i])
		}
	}
}

// checkLayerLabels checks that the handlers inside the wrapper saw the
// layers: the manifest's garbage-collection labels reference them.
func checkLayerLabels(t *testing.T, ctx context.Context, p *pipeline, img testImage) {
	t.Helper()
	info, err := p.dst.Info(ctx, img.manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Labels["containerd.io/gc.ref.content.l.2"] != img.layers[2].Digest.String() {
		t.Fatalf("manifest labels = %v, want the layers referenced", info.Labels)
	}
}

// checkMismatch checks that err is the DiffID mismatch of layer, which
// the config says is expected and is actual, and names the layer.
func checkMismatch(t *testing.T, err error, layer ocispec.Descriptor, expected, actual digest.Digest) {
	t.Helper()
	var mismatch *DiffIDMismatchError
	if !errors.As(err, &mismatch) || !errors.Is(err, content.ErrDigestMismatch) || !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Dispatch() error = %v, want a *DiffIDMismatchError", err)
	}
	if mismatch.Expected != expected || mismatch.Actual != actual {
		t.Fatalf("mismatch = %+v, want expected %s, actual %s", mismatch, expected, actual)
	}
	if !strings.Contains(err.Error(), layer.Digest.String()) {
		t.Errorf("error %q does not name the layer", err)
	}
}

func (p *pipeline) fetchCount(d digest.Digest) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fetched[d]
}

// viewTree returns the tree of the committed snapshot name.
func viewTree(t *testing.T, sn Snapshotter, name string) map[string]treeNode {
	t.Helper()
	ctx := context.Background()
	key := "view-" + name
	mounts, err := sn.View(ctx, key, name)
	if err != nil {
		t.Fatalf("View(%s) error = %v", name, err)
	}
	defer sn.Remove(ctx, key)
	return readTree(t, mounts[0].Source)
}

// activeKeys returns the keys of the snapshots that are not committed.
func activeKeys(t *testing.T, sn Snapshotter) []string {
	t.Helper()
	var keys []string
	err := sn.Walk(context.Background(), func(_ context.Context, info Info) error {
		if info.Kind != KindCommitted {
			keys = append(keys, info.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
