package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

// platformNames formats the platforms of ds, "-" for none.
func platformNames(ds []ocispec.Descriptor) []string {
	out := []string{}
	for _, d := range ds {
		if d.Platform == nil {
			out = append(out, "-")
			continue
		}
		out = append(out, platforms.Format(*d.Platform))
	}
	return out
}

func withPlatform(d ocispec.Descriptor, spec string) ocispec.Descriptor {
	if spec == "" {
		d.Platform = nil
		return d
	}
	p := platforms.MustParse(spec)
	d.Platform = &p
	return d
}

func TestFilterPlatforms(t *testing.T) {
	kids := []ocispec.Descriptor{
		withPlatform(node("amd"), "linux/amd64"),
		withPlatform(node("arm"), "linux/arm64"),
		withPlatform(node("none"), ""),
		withPlatform(node("v7"), "linux/arm/v7"),
	}
	inner := func(err error) handlers.HandlerFunc {
		return func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			return slices.Clone(kids), err
		}
	}
	tests := []struct {
		name string
		m    platforms.Matcher
		err  error
		want []string
	}{
		{"exact", platforms.NewMatcher(platforms.MustParse("linux/arm64")), nil, []string{"arm", "none"}},
		{"only arm64 runs arm", platforms.Only(platforms.MustParse("linux/arm64")), nil, []string{"arm", "none", "v7"}},
		{"none match", platforms.NewMatcher(platforms.MustParse("linux/s390x")), nil, []string{"none"}},
		{"nil matcher keeps all", nil, nil, []string{"amd", "arm", "none", "v7"}},
		{"error passes with children", platforms.NewMatcher(platforms.MustParse("linux/amd64")), errBoom, []string{"amd", "none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := handlers.FilterPlatforms(inner(tt.err), tt.m).Handle(context.Background(), node("x"))
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if !slices.Equal(names(got), tt.want) {
				t.Errorf("children = %v, want %v", names(got), tt.want)
			}
		})
	}
	if len(kids) != 4 || nameOf(kids[1]) != "arm" {
		t.Errorf("FilterPlatforms changed the slice it was given: %v", names(kids))
	}
}

func TestLimitManifests(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	amd := s.putImage(t, "linux/amd64", 1, false).manifest
	arm := s.putImage(t, "linux/arm64", 1, false).manifest
	v7 := s.putImage(t, "linux/arm/v7", 1, true).manifest
	v6 := s.putImage(t, "linux/arm/v6", 1, true).manifest
	bare := withPlatform(s.putImage(t, "linux/amd64", 2, false).manifest, "")
	attest := withPlatform(s.putImage(t, "linux/amd64", 1, false).manifest, "unknown/unknown")
	only := func(spec string) platforms.MatchComparer { return platforms.Only(platforms.MustParse(spec)) }

	tests := []struct {
		name      string
		manifests []ocispec.Descriptor
		m         platforms.MatchComparer
		n         int
		want      []string
		wantErr   error
	}{
		{"best of three", []ocispec.Descriptor{amd, v7, arm}, only("linux/arm64"), 1, []string{"linux/arm64"}, nil},
		{"all matches sorted", []ocispec.Descriptor{amd, v6, v7, arm}, only("linux/arm64"), 0, []string{"linux/arm64", "linux/arm/v7", "linux/arm/v6"}, nil},
		{"best two", []ocispec.Descriptor{v6, v7, arm}, only("linux/arm64"), 2, []string{"linux/arm64", "linux/arm/v7"}, nil},
		{"fallback variant", []ocispec.Descriptor{amd, v6, v7}, only("linux/arm64"), 1, []string{"linux/arm/v7"}, nil},
		{"attestations dropped", []ocispec.Descriptor{amd, attest}, only("linux/amd64"), 0, []string{"linux/amd64"}, nil},
		{"platformless last", []ocispec.Descriptor{bare, amd}, only("linux/amd64"), 0, []string{"linux/amd64", "-"}, nil},
		{"platformless only", []ocispec.Descriptor{bare}, only("linux/amd64"), 1, []string{"-"}, nil},
		{"nil matcher keeps order", []ocispec.Descriptor{v7, amd, arm}, nil, 0, []string{"linux/arm/v7", "linux/amd64", "linux/arm64"}, nil},
		{"no match", []ocispec.Descriptor{amd, v7, attest}, only("linux/s390x"), 1, nil, errdefs.ErrNotFound},
		{"empty index", nil, only("linux/amd64"), 0, nil, errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx := s.putIndex(t, tt.manifests...)
			got, err := handlers.LimitManifests(handlers.Children(s), tt.m, tt.n).Handle(ctx, idx)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !slices.Equal(platformNames(got), tt.want) {
				t.Errorf("kept %v, want %v", platformNames(got), tt.want)
			}
		})
	}

	t.Run("repeated digest kept once", func(t *testing.T) {
		// One manifest listed for arm/v6 and arm/v7, as some images do.
		idx := s.putIndex(t, withPlatform(v6, "linux/arm/v6"), withPlatform(v6, "linux/arm/v7"), arm)
		got, err := handlers.LimitManifests(handlers.Children(s), only("linux/arm/v7"), 0).Handle(ctx, idx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"linux/arm/v7"}; !slices.Equal(platformNames(got), want) {
			t.Errorf("kept %v, want %v", platformNames(got), want)
		}
	})

	t.Run("not an index", func(t *testing.T) {
		got, err := handlers.LimitManifests(handlers.Children(s), only("linux/s390x"), 1).Handle(ctx, amd)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].MediaType != handlers.MediaTypeImageConfig {
			t.Errorf("children of a manifest = %v, want its config and layer untouched", got)
		}
	})

	t.Run("error from h", func(t *testing.T) {
		h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			return []ocispec.Descriptor{amd}, errBoom
		})
		got, err := handlers.LimitManifests(h, only("linux/s390x"), 1).Handle(ctx, s.putIndex(t, amd))
		if !errors.Is(err, errBoom) || len(got) != 1 {
			t.Errorf("= %v, %v; want h's children and error", got, err)
		}
	})
}

func TestNoMatchError(t *testing.T) {
	s := newMemStore()
	amd := s.putImage(t, "linux/amd64", 1, false).manifest
	v7 := s.putImage(t, "linux/arm/v7", 1, false).manifest
	win := withPlatform(s.putImage(t, "windows/amd64", 1, false).manifest, "")
	win.Platform = &ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.5329"}
	nested := s.putIndex(t, v7, amd)
	idx := s.putIndex(t, amd, nested, win)

	_, err := handlers.LimitManifests(handlers.Children(s), platforms.Only(platforms.MustParse("linux/s390x")), 1).Handle(context.Background(), idx)
	var nm *handlers.NoMatchError
	if !errors.As(err, &nm) || !errdefs.IsNotFound(err) {
		t.Fatalf("error = %v, want a *NoMatchError that is NotFound", err)
	}
	want := []string{"linux/amd64", "linux/arm/v7", "windows/amd64"}
	var got []string
	for _, p := range nm.Offered {
		got = append(got, platforms.Format(p))
	}
	if !slices.Equal(got, want) {
		t.Errorf("Offered = %v, want %v (distinct, nested included, in order)", got, want)
	}
	for _, s := range []string{"linux/amd64, linux/arm/v7, windows/amd64 (10.0.17763.5329)", idx.Digest.String()} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if got := (&handlers.NoMatchError{}).Error(); !strings.Contains(got, "offers none") {
		t.Errorf("empty NoMatchError = %q", got)
	}
}

// recorder wraps a handler and counts the descriptors it is called with.
type recorder struct {
	h     handlers.Handler
	mu    sync.Mutex
	calls map[digest.Digest]int
}

func (r *recorder) Handle(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	r.mu.Lock()
	if r.calls == nil {
		r.calls = map[digest.Digest]int{}
	}
	r.calls[d.Digest]++
	r.mu.Unlock()
	return r.h.Handle(ctx, d)
}

// TestLimitManifestsNested is the case a per-level choice gets wrong: the
// top index offers arm/v7 and a nested index that holds arm64. An arm64 host
// must get arm64.
func TestLimitManifestsNested(t *testing.T) {
	s := newMemStore()
	v7 := s.putImage(t, "linux/arm/v7", 1, false)
	arm := s.putImage(t, "linux/arm64", 2, false)
	amd := s.putImage(t, "linux/amd64", 1, false)
	nested := s.putIndex(t, amd.manifest, arm.manifest)
	root := s.putIndex(t, v7.manifest, nested, nested)
	m := platforms.Only(platforms.MustParse("linux/arm64"))

	rec := &recorder{h: handlers.Children(s)}
	got, err := handlers.LimitManifests(rec, m, 1).Handle(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Digest != arm.manifest.Digest {
		t.Fatalf("kept %v, want the nested linux/arm64 manifest", platformNames(got))
	}
	if n := rec.calls[nested.Digest]; n != 1 {
		t.Errorf("nested index handled %d times, want once", n)
	}

	// Through a whole walk: the nested index is handled once, by
	// LimitManifests, and nothing of arm/v7 or amd64 is visited.
	rec = &recorder{h: handlers.Children(s)}
	h := handlers.LimitManifests(rec, m, 1)
	if err := handlers.Dispatch(context.Background(), h, 2, root); err != nil {
		t.Fatal(err)
	}
	want := map[digest.Digest]int{root.Digest: 1, nested.Digest: 1, arm.manifest.Digest: 1, arm.config.Digest: 1,
		arm.layers[0].Digest: 1, arm.layers[1].Digest: 1}
	if !mapsEqual(rec.calls, want) {
		t.Errorf("handled %v, want %v", rec.calls, want)
	}

	// Manifest, the helper, makes the same choice.
	man, err := handlers.Manifest(context.Background(), s, root, m)
	if err != nil {
		t.Fatal(err)
	}
	if man.Config.Digest != arm.config.Digest {
		t.Errorf("Manifest() config = %s, want arm64's %s", man.Config.Digest, arm.config.Digest)
	}
}

func mapsEqual(a, b map[digest.Digest]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestLimitManifestsNestedLimits(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	amd := s.putImage(t, "linux/amd64", 1, false).manifest
	m := platforms.Only(platforms.MustParse("linux/amd64"))

	t.Run("depth", func(t *testing.T) {
		for _, tc := range []struct {
			levels  int
			wantErr error
		}{
			{handlers.MaxIndexDepth, nil},
			{handlers.MaxIndexDepth + 1, content.ErrTooLarge},
		} {
			idx := s.putIndex(t, amd)
			for range tc.levels - 1 {
				idx = s.putIndex(t, idx)
			}
			got, err := handlers.LimitManifests(handlers.Children(s), m, 1).Handle(ctx, idx)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("%d levels: error = %v, want %v", tc.levels, err, tc.wantErr)
			}
			if err == nil && (len(got) != 1 || got[0].Digest != amd.Digest) {
				t.Errorf("%d levels: kept %v", tc.levels, got)
			}
			_, err = handlers.Manifest(ctx, s, idx, m)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Manifest(), %d levels: error = %v, want %v", tc.levels, err, tc.wantErr)
			}
		}
	})

	t.Run("flattened fan-out", func(t *testing.T) {
		half := handlers.MaxIndexManifests/2 + 1
		a := s.putIndex(t, slices.Repeat([]ocispec.Descriptor{amd}, half)...)
		b := s.putIndex(t, slices.Repeat([]ocispec.Descriptor{withPlatform(amd, "linux/amd64/v2")}, half)...)
		root := s.putIndex(t, a, b)
		_, err := handlers.LimitManifests(handlers.Children(s), m, 1).Handle(ctx, root)
		var le *content.LimitError
		if !errors.As(err, &le) || le.Limit != handlers.MaxIndexManifests {
			t.Fatalf("error = %v, want a *content.LimitError for MaxIndexManifests", err)
		}
	})

	t.Run("nested index missing", func(t *testing.T) {
		absent := ocispec.Descriptor{MediaType: handlers.MediaTypeImageIndex, Digest: digest.FromString("absent"), Size: 6}
		root := s.putIndex(t, amd, absent)
		_, err := handlers.LimitManifests(handlers.Children(s), m, 1).Handle(ctx, root)
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), absent.Digest.String()) {
			t.Fatalf("error = %v, want NotFound naming %s", err, absent.Digest)
		}
	})

	t.Run("nested index skipped by h", func(t *testing.T) {
		nested := s.putIndex(t, withPlatform(amd, "linux/amd64/v2"))
		root := s.putIndex(t, nested, amd)
		h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			kids, err := handlers.ChildrenOf(ctx, s, d)
			if d.Digest == nested.Digest {
				return kids, fmt.Errorf("seen: %w", handlers.ErrSkipDesc)
			}
			return kids, err
		})
		got, err := handlers.LimitManifests(h, platforms.Only(platforms.MustParse("linux/amd64/v2")), 0).Handle(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"linux/amd64"}; !slices.Equal(platformNames(got), want) {
			t.Errorf("kept %v, want %v: the skipped index contributes nothing", platformNames(got), want)
		}
	})
}
