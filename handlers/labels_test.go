package handlers_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

func TestChildGCLabel(t *testing.T) {
	d := func(mt string) ocispec.Descriptor { return ocispec.Descriptor{MediaType: mt} }
	tests := []struct {
		child ocispec.Descriptor
		n     int
		want  string
	}{
		{d(handlers.MediaTypeImageConfig), 0, "containerd.io/gc.ref.content.config"},
		{d(handlers.MediaTypeDockerSchema2Config), 0, "containerd.io/gc.ref.content.config"},
		{d(handlers.MediaTypeImageConfig), 1, "containerd.io/gc.ref.content.config.1"},
		{d(handlers.MediaTypeImageLayerGzip), 0, "containerd.io/gc.ref.content.l.0"},
		{d(handlers.MediaTypeDockerSchema2LayerForeign), 12, "containerd.io/gc.ref.content.l.12"},
		{d(handlers.MediaTypeImageManifest), 3, "containerd.io/gc.ref.content.m.3"},
		{d(handlers.MediaTypeDockerSchema2Manifest), 0, "containerd.io/gc.ref.content.m.0"},
		{d(handlers.MediaTypeImageIndex), 1, "containerd.io/gc.ref.content.m.1"},
		{d(handlers.MediaTypeLegacyConfig), 0, "containerd.io/gc.ref.content.0"},
		{d("application/vnd.cncf.helm.chart.content.v1.tar+gzip"), 2, "containerd.io/gc.ref.content.2"},
	}
	for _, tt := range tests {
		if got := handlers.ChildGCLabel(tt.child, tt.n); got != tt.want {
			t.Errorf("ChildGCLabel(%s, %d) = %q, want %q", tt.child.MediaType, tt.n, got, tt.want)
		}
	}
}

func TestChildGCLabels(t *testing.T) {
	if got := handlers.ChildGCLabels(nil); got != nil {
		t.Errorf("ChildGCLabels(nil) = %v, want nil", got)
	}
	s := newMemStore()
	img := s.putImage(t, "linux/amd64", 2, false)
	blob := ocispec.Descriptor{MediaType: "application/x.blob", Digest: digest.FromString("blob")}
	got := handlers.ChildGCLabels([]ocispec.Descriptor{img.config, img.layers[0], blob, img.layers[1]})
	want := map[string]string{
		"containerd.io/gc.ref.content.config": img.config.Digest.String(),
		"containerd.io/gc.ref.content.l.0":    img.layers[0].Digest.String(),
		"containerd.io/gc.ref.content.l.1":    img.layers[1].Digest.String(),
		"containerd.io/gc.ref.content.0":      blob.Digest.String(),
	}
	if !maps.Equal(got, want) {
		t.Errorf("ChildGCLabels() = %v, want %v", got, want)
	}
}

func TestSetChildrenLabels(t *testing.T) {
	s := newMemStore()
	amd := s.putImage(t, "linux/amd64", 2, false)
	arm := s.putImage(t, "linux/arm64", 1, false)
	idx := s.putIndex(t, amd.manifest, arm.manifest)
	// A label an earlier pull left stays.
	if _, err := s.Update(context.Background(), contentInfo(idx.Digest, "keep", "me"), "labels.keep"); err != nil {
		t.Fatal(err)
	}

	h := handlers.SetChildrenLabels(s, handlers.LimitManifests(handlers.Children(s), platforms.Only(platforms.MustParse("linux/amd64")), 1))
	if err := handlers.Dispatch(context.Background(), h, 4, idx); err != nil {
		t.Fatal(err)
	}
	wantIdx := map[string]string{"keep": "me", "containerd.io/gc.ref.content.m.0": amd.manifest.Digest.String()}
	if got := s.labelsOf(idx.Digest); !maps.Equal(got, wantIdx) {
		t.Errorf("index labels = %v, want %v", got, wantIdx)
	}
	wantMan := map[string]string{
		"containerd.io/gc.ref.content.config": amd.config.Digest.String(),
		"containerd.io/gc.ref.content.l.0":    amd.layers[0].Digest.String(),
		"containerd.io/gc.ref.content.l.1":    amd.layers[1].Digest.String(),
	}
	if got := s.labelsOf(amd.manifest.Digest); !maps.Equal(got, wantMan) {
		t.Errorf("manifest labels = %v, want %v", got, wantMan)
	}
	// Leaves and the manifest that was not chosen get no update.
	updated := s.updated()
	slices.Sort(updated)
	want := []digest.Digest{idx.Digest, idx.Digest, amd.manifest.Digest}
	slices.Sort(want)
	if !slices.Equal(updated, want) {
		t.Errorf("updated %v, want only %v", updated, want)
	}
}

func TestSetChildrenLabelsErrors(t *testing.T) {
	s := newMemStore()
	img := s.putImage(t, "linux/amd64", 1, false)

	t.Run("update fails", func(t *testing.T) {
		// The manifest's blob is not in the store the labels go to.
		other := newMemStore()
		_, err := handlers.SetChildrenLabels(other, handlers.Children(s)).Handle(context.Background(), img.manifest)
		if !errdefs.IsNotFound(err) {
			t.Fatalf("error = %v, want NotFound", err)
		}
	})

	t.Run("h fails", func(t *testing.T) {
		h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			return []ocispec.Descriptor{img.config}, handlers.ErrSkipDesc
		})
		kids, err := handlers.SetChildrenLabels(s, h).Handle(context.Background(), img.manifest)
		if !errors.Is(err, handlers.ErrSkipDesc) || len(kids) != 1 {
			t.Fatalf("= %v, %v; want h's children and error", kids, err)
		}
		if n := len(s.updated()); n != 0 {
			t.Errorf("%d updates, want none", n)
		}
	})
}

func contentInfo(d digest.Digest, key, value string) content.Info {
	return content.Info{Digest: d, Labels: map[string]string{key: value}}
}
