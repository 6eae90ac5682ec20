package importer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

// merge folds images with the same target into one, keeping the first
// one's place and all the names.
func merge(imgs []*image) []*image {
	seen := map[digest.Digest]*image{}
	out := imgs[:0]
	for _, img := range imgs {
		if first := seen[img.target.Digest]; first != nil {
			first.names = append(first.names, img.names...)
			continue
		}
		seen[img.target.Digest] = img
		out = append(out, img)
	}
	return out
}

// records returns the name records of the images, sorted by name: the
// names the archive gives, and a digest name for images it leaves unnamed
// (or for all, with digestNames). A name given to two targets matches
// ErrDuplicateName.
func (im *importer) records(imgs []*image, digestNames bool) ([]content.Image, error) {
	byName := map[string]ocispec.Descriptor{}
	for _, img := range imgs {
		names := img.names
		if len(names) == 0 || digestNames {
			n, err := im.digestName(img.target.Digest)
			if err != nil {
				return nil, err
			}
			names = append(slices.Clip(names), n)
		}
		for _, n := range names {
			prev, ok := byName[n]
			if ok && prev.Digest != img.target.Digest {
				return nil, fmt.Errorf("%q names %s and %s: %w", n, prev.Digest, img.target.Digest, ErrDuplicateName)
			}
			byName[n] = img.target
		}
	}
	out := make([]content.Image, 0, len(byName))
	for n, t := range byName {
		out = append(out, content.Image{Name: n, Target: t})
	}
	slices.SortFunc(out, func(a, b content.Image) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// createNames creates or updates the records want in images, and returns
// them as stored. A name that exists with another target is pointed at
// the new one, its labels kept. On failure, the names created are deleted
// and the names changed are pointed back, so the store is as it was.
func createNames(ctx context.Context, images content.Images, want []content.Image) (_ []content.Image, err error) {
	type undo struct {
		name string
		old  *content.Image // nil: the name was created
	}
	var undos []undo
	defer func() {
		if err == nil {
			return
		}
		rctx := context.WithoutCancel(ctx)
		for i := len(undos) - 1; i >= 0; i-- {
			u := undos[i]
			var rerr error
			if u.old == nil {
				rerr = images.Delete(rctx, u.name)
			} else {
				_, rerr = images.Update(rctx, *u.old, "target")
			}
			if rerr != nil {
				err = fmt.Errorf("%w (rolling back name %q also failed: %v)", err, u.name, rerr)
			}
		}
	}()
	out := make([]content.Image, 0, len(want))
	for _, w := range want {
		got, err := images.Create(ctx, w)
		switch {
		case err == nil:
			undos = append(undos, undo{name: w.Name})
		case errdefs.IsAlreadyExists(err):
			old, err := images.Get(ctx, w.Name)
			if err != nil {
				return nil, fmt.Errorf("name %q: %w", w.Name, err)
			}
			if sameTarget(old.Target, w.Target) {
				got = old
				break
			}
			if got, err = images.Update(ctx, content.Image{Name: w.Name, Target: w.Target}, "target"); err != nil {
				return nil, fmt.Errorf("update name %q: %w", w.Name, err)
			}
			undos = append(undos, undo{name: w.Name, old: &old})
		default:
			return nil, fmt.Errorf("create name %q: %w", w.Name, err)
		}
		out = append(out, got)
	}
	return out, nil
}

// sameTarget reports whether two targets are the same content.
func sameTarget(a, b ocispec.Descriptor) bool {
	return a.Digest == b.Digest && a.MediaType == b.MediaType && a.Size == b.Size
}
