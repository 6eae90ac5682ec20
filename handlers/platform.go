package handlers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers/platforms"
)

// NoMatchError reports an index none of whose manifests is for a wanted
// platform. It matches errdefs.ErrNotFound.
type NoMatchError struct {
	// Offered lists the distinct platforms the index's manifests declare,
	// those of nested indexes included, in index order. It is empty when the
	// index lists no manifests.
	Offered []ocispec.Platform
}

// Error lists the platforms on offer.
func (e *NoMatchError) Error() string {
	if len(e.Offered) == 0 {
		return "no manifest matches the platform: the index offers none"
	}
	names := make([]string, len(e.Offered))
	for i, p := range e.Offered {
		names[i] = platforms.Format(p)
		if p.OSVersion != "" {
			names[i] += " (" + p.OSVersion + ")"
		}
	}
	return "no manifest matches the platform: the index offers " + strings.Join(names, ", ")
}

// Unwrap classifies the error as errdefs.ErrNotFound.
func (e *NoMatchError) Unwrap() error { return errdefs.ErrNotFound }

// FilterPlatforms returns a handler that calls h and drops the children
// whose Platform is set and not matched by m. Children without a Platform,
// such as a manifest's config and layers, always pass. A nil m keeps every
// child. Errors from h are returned as they are, with the filtered children.
func FilterPlatforms(h Handler, m platforms.Matcher) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := h.Handle(ctx, desc)
		if m == nil || len(children) == 0 {
			return children, err
		}
		kept := children[:0:0]
		for _, c := range children {
			if c.Platform == nil || m.Match(*c.Platform) {
				kept = append(kept, c)
			}
		}
		return kept, err
	}
}

// LimitManifests returns a handler that calls h and, when desc is an index
// ([IsIndex]), keeps only the manifests best for m among its children:
//
//  1. Nested indexes are flattened: for each child that is itself an index,
//     LimitManifests calls h on it (h is expected to fetch it and return its
//     children, as a pipeline built on [Children] does), recursively, and
//     puts the manifests it returns in its place. The choice is thus made
//     across every level, and an arm64 host is given a linux/arm64 manifest
//     nested one level down rather than a linux/arm/v7 one at the top. The
//     nested indexes are handled only here: they are not among the children
//     returned, so the walk does not visit them again.
//  2. Manifests whose Platform m does not match are dropped. Manifests
//     without a Platform are kept, ranked after every one that has one.
//  3. The rest are sorted, stably, by m.Less (best first), repeated digests
//     are dropped, and the first n are returned; n <= 0 returns them all.
//
// When no manifest is left, the handler fails with a [*NoMatchError] listing
// the platforms the index offers, which matches errdefs.ErrNotFound. Indexes
// nested deeper than [MaxIndexDepth], or offering more than
// [MaxIndexManifests] manifests in all, are a [*content.LimitError]. A nested
// index is flattened once however often it is listed.
//
// A nil m matches every platform and keeps the index's order. Children of
// descriptors that are not indexes are returned untouched, as are errors
// from h (with their children).
func LimitManifests(h Handler, m platforms.MatchComparer, n int) HandlerFunc {
	if m == nil {
		m = platforms.All
	}
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := h.Handle(ctx, desc)
		if err != nil || !IsIndex(desc.MediaType) {
			return children, err
		}
		nested := func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			return handle(ctx, h, d)
		}
		cands, err := flatten(ctx, desc, children, nested)
		if err != nil {
			return nil, err
		}
		best, err := selectManifests(cands, m, n)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		return best, nil
	}
}

// flatten returns the descriptors listed by the index root (children),
// with every nested index replaced, recursively, by what nested returns for
// it. It bounds the nesting depth and the number of descriptors returned,
// and reads each nested index once.
func flatten(ctx context.Context, root ocispec.Descriptor, children []ocispec.Descriptor,
	nested func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error),
) ([]ocispec.Descriptor, error) {
	f := flattener{nested: nested, seen: map[digest.Digest]bool{root.Digest: true}}
	if err := f.add(ctx, root, children, 1); err != nil {
		return nil, err
	}
	return f.out, nil
}

type flattener struct {
	nested func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error)
	seen   map[digest.Digest]bool
	out    []ocispec.Descriptor
}

func (f *flattener) add(ctx context.Context, parent ocispec.Descriptor, children []ocispec.Descriptor, depth int) error {
	for _, c := range children {
		if !IsIndex(c.MediaType) {
			if len(f.out) >= MaxIndexManifests {
				return fmt.Errorf("index %s: %w", parent.Digest,
					&content.LimitError{What: "manifests with nested indexes flattened", Limit: MaxIndexManifests, Got: MaxIndexManifests + 1})
			}
			f.out = append(f.out, c)
			continue
		}
		if f.seen[c.Digest] {
			continue
		}
		f.seen[c.Digest] = true
		if depth >= MaxIndexDepth {
			return fmt.Errorf("index %s: nested index %s: %w", parent.Digest, c.Digest,
				&content.LimitError{What: "index nesting depth", Limit: MaxIndexDepth, Got: int64(depth) + 1})
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		grand, err := f.nested(ctx, c)
		if err != nil {
			return fmt.Errorf("index %s: nested index %s: %w", parent.Digest, c.Digest, err)
		}
		if err := f.add(ctx, c, grand, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// selectManifests keeps the candidates m matches (and those without a
// platform), best first, without repeated digests, at most n of them when
// n > 0. It fails with a *NoMatchError when none is left.
func selectManifests(cands []ocispec.Descriptor, m platforms.MatchComparer, n int) ([]ocispec.Descriptor, error) {
	var matched []ocispec.Descriptor
	for _, c := range cands {
		if c.Platform == nil || m.Match(*c.Platform) {
			matched = append(matched, c)
		}
	}
	if len(matched) == 0 {
		return nil, &NoMatchError{Offered: offered(cands)}
	}
	slices.SortStableFunc(matched, func(a, b ocispec.Descriptor) int {
		switch {
		case better(m, a, b):
			return -1
		case better(m, b, a):
			return 1
		}
		return 0
	})
	seen := make(map[digest.Digest]bool, len(matched))
	best := matched[:0]
	for _, c := range matched {
		if seen[c.Digest] {
			continue
		}
		seen[c.Digest] = true
		best = append(best, c)
		if n > 0 && len(best) == n {
			break
		}
	}
	return best, nil
}

// better reports whether a ranks before b: a platform-less descriptor ranks
// after any with a platform; two with platforms rank by m.Less.
func better(m platforms.MatchComparer, a, b ocispec.Descriptor) bool {
	switch {
	case a.Platform == nil:
		return false
	case b.Platform == nil:
		return true
	}
	return m.Less(*a.Platform, *b.Platform)
}

// offered returns the distinct platforms of descs, in order.
func offered(descs []ocispec.Descriptor) []ocispec.Platform {
	var out []ocispec.Platform
	seen := map[string]bool{}
	for _, d := range descs {
		if d.Platform == nil {
			continue
		}
		p := *d.Platform
		key := strings.Join([]string{p.OS, p.Architecture, p.Variant, p.OSVersion, strings.Join(p.OSFeatures, ",")}, "/")
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, p)
	}
	return out
}
