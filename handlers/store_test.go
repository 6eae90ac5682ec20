package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

// memStore is a minimal content.Provider and content.Manager over a map,
// enough for the handlers to read blobs and set labels. It counts reads and
// records updates so tests can see what the handlers did.
type memStore struct {
	mu      sync.Mutex
	blobs   map[digest.Digest][]byte
	labels  map[digest.Digest]map[string]string
	reads   map[digest.Digest]int
	updates []digest.Digest
}

var (
	_ content.Provider = (*memStore)(nil)
	_ content.Manager  = (*memStore)(nil)
)

func newMemStore() *memStore {
	return &memStore{
		blobs:  map[digest.Digest][]byte{},
		labels: map[digest.Digest]map[string]string{},
		reads:  map[digest.Digest]int{},
	}
}

// put stores b and returns its descriptor with media type mt.
func (s *memStore) put(mt string, b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	s.mu.Lock()
	s.blobs[d] = b
	s.mu.Unlock()
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}

// putJSON stores v encoded as JSON.
func (s *memStore) putJSON(t testing.TB, mt string, v any) ocispec.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return s.put(mt, b)
}

type blobReader struct{ *bytes.Reader }

func (blobReader) Close() error { return nil }

func (s *memStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	s.reads[desc.Digest]++
	return blobReader{bytes.NewReader(b)}, nil
}

func (s *memStore) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[dgst]
	if !ok {
		return content.Info{}, fmt.Errorf("info %s: %w", dgst, errdefs.ErrNotFound)
	}
	labels := map[string]string{}
	for k, v := range s.labels[dgst] {
		labels[k] = v
	}
	return content.Info{Digest: dgst, Size: int64(len(b)), Labels: labels}, nil
}

func (s *memStore) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	s.mu.Lock()
	if _, ok := s.blobs[info.Digest]; !ok {
		s.mu.Unlock()
		return content.Info{}, fmt.Errorf("update %s: %w", info.Digest, errdefs.ErrNotFound)
	}
	labels, err := content.ApplyUpdate(s.labels[info.Digest], info, fieldpaths...)
	if err != nil {
		s.mu.Unlock()
		return content.Info{}, err
	}
	s.labels[info.Digest] = labels
	s.updates = append(s.updates, info.Digest)
	s.mu.Unlock()
	return s.Info(ctx, info.Digest)
}

func (s *memStore) Walk(ctx context.Context, fn content.WalkFunc, filters ...content.Filter) error {
	s.mu.Lock()
	var infos []content.Info
	for d, b := range s.blobs {
		infos = append(infos, content.Info{Digest: d, Size: int64(len(b)), Labels: s.labels[d]})
	}
	s.mu.Unlock()
next:
	for _, info := range infos {
		for _, f := range filters {
			if !f(info) {
				continue next
			}
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) Delete(ctx context.Context, dgst digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[dgst]; !ok {
		return fmt.Errorf("delete %s: %w", dgst, errdefs.ErrNotFound)
	}
	delete(s.blobs, dgst)
	delete(s.labels, dgst)
	return nil
}

func (s *memStore) readCount(d digest.Digest) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[d]
}

func (s *memStore) updated() []digest.Digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]digest.Digest(nil), s.updates...)
}

func (s *memStore) labelsOf(d digest.Digest) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.labels[d]
}

// testImage is a single-platform image written to a memStore.
type testImage struct {
	manifest ocispec.Descriptor // with Platform set
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
	diffIDs  []digest.Digest
}

// putImage writes an image for the platform spec with nLayers layers. The
// layers are fake: their bytes are not tars, which the handlers never look at.
func (s *memStore) putImage(t testing.TB, spec string, nLayers int, docker bool) testImage {
	t.Helper()
	p := platforms.MustParse(spec)
	var img testImage
	layerType, configType, manifestType := handlers.MediaTypeImageLayerGzip, handlers.MediaTypeImageConfig, handlers.MediaTypeImageManifest
	if docker {
		layerType, configType, manifestType = handlers.MediaTypeDockerSchema2Layer, handlers.MediaTypeDockerSchema2Config, handlers.MediaTypeDockerSchema2Manifest
	}
	for i := range nLayers {
		b := fmt.Appendf(nil, "layer %d of %s", i, spec)
		img.layers = append(img.layers, s.put(layerType, b))
		img.diffIDs = append(img.diffIDs, digest.FromString(fmt.Sprintf("diff %d of %s", i, spec)))
	}
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	img.config = s.putJSON(t, configType, ocispec.Image{
		Created:  &created,
		Platform: p,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: img.diffIDs},
	})
	m := ocispec.Manifest{MediaType: manifestType, Config: img.config, Layers: img.layers}
	m.SchemaVersion = 2
	img.manifest = s.putJSON(t, manifestType, m)
	img.manifest.Platform = &p
	return img
}

// putIndex writes an OCI index of manifests.
func (s *memStore) putIndex(t testing.TB, manifests ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	idx := ocispec.Index{MediaType: handlers.MediaTypeImageIndex, Manifests: manifests}
	idx.SchemaVersion = 2
	return s.putJSON(t, handlers.MediaTypeImageIndex, idx)
}
