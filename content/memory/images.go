package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

var _ content.Images = (*Images)(nil)

// Images is a content.Images that keeps name records in memory. It is safe
// for concurrent use. Records go in and come out as copies: changing a map
// or slice of an Image passed to or returned by Images does not change the
// store.
//
// The zero Images is empty and ready to use; [Store.Images] returns one tied
// to a store's lifetime. Images does not check that a target is present in
// any content store.
type Images struct {
	mu      sync.Mutex
	records map[string]content.Image
}

// Get returns the record for name, or an error that matches errdefs.ErrNotFound.
func (is *Images) Get(ctx context.Context, name string) (content.Image, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	img, ok := is.records[name]
	if !ok {
		return content.Image{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	return copyImage(img), nil
}

// List returns every record, sorted by name.
func (is *Images) List(ctx context.Context) ([]content.Image, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	out := make([]content.Image, 0, len(is.records))
	for _, img := range is.records {
		out = append(out, copyImage(img))
	}
	slices.SortFunc(out, func(a, b content.Image) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Create adds a record as [content.Images] describes, with CreatedAt and
// UpdatedAt set to the time of the call.
func (is *Images) Create(ctx context.Context, image content.Image) (content.Image, error) {
	if err := content.ValidateImage(image); err != nil {
		return content.Image{}, err
	}
	image = copyImage(image)
	now := time.Now()
	image.CreatedAt, image.UpdatedAt = now, now
	is.mu.Lock()
	defer is.mu.Unlock()
	if _, ok := is.records[image.Name]; ok {
		return content.Image{}, fmt.Errorf("create image %q: %w", image.Name, errdefs.ErrAlreadyExists)
	}
	if is.records == nil {
		is.records = make(map[string]content.Image)
	}
	is.records[image.Name] = image
	return copyImage(image), nil
}

// Update changes the record named image.Name as [content.Images] describes.
// UpdatedAt becomes the time of the call; CreatedAt is kept.
func (is *Images) Update(ctx context.Context, image content.Image, fieldpaths ...string) (content.Image, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	have, ok := is.records[image.Name]
	if !ok {
		return content.Image{}, fmt.Errorf("update image %q: %w", image.Name, errdefs.ErrNotFound)
	}
	out, err := content.ApplyImageUpdate(have, copyImage(image), fieldpaths...)
	if err != nil {
		return content.Image{}, err
	}
	out.UpdatedAt = later(time.Now(), have.UpdatedAt)
	is.records[image.Name] = out
	return copyImage(out), nil
}

// Delete removes the record, or returns an error that matches errdefs.ErrNotFound.
func (is *Images) Delete(ctx context.Context, name string) error {
	is.mu.Lock()
	defer is.mu.Unlock()
	if _, ok := is.records[name]; !ok {
		return fmt.Errorf("delete image %q: %w", name, errdefs.ErrNotFound)
	}
	delete(is.records, name)
	return nil
}

// copyImage returns img with maps and slices of its own.
func copyImage(img content.Image) content.Image {
	img.Labels = maps.Clone(img.Labels)
	img.Target = copyDescriptor(img.Target)
	return img
}

// copyDescriptor returns d with maps, slices and pointers of its own.
func copyDescriptor(d ocispec.Descriptor) ocispec.Descriptor {
	d.URLs = slices.Clone(d.URLs)
	d.Annotations = maps.Clone(d.Annotations)
	d.Data = slices.Clone(d.Data)
	if d.Platform != nil {
		p := *d.Platform
		p.OSFeatures = slices.Clone(p.OSFeatures)
		d.Platform = &p
	}
	return d
}
