package content

import (
	"context"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is a name record: a name that points at the root descriptor of an
// image (a manifest or an index) in a content store.
type Image struct {
	// Name is the image's name, usually a normalized reference such as
	// "docker.io/library/alpine:3.20".
	Name string
	// Target is the root descriptor the name points at.
	Target ocispec.Descriptor
	// Labels are free-form key/value pairs. A nil map means no labels.
	Labels map[string]string
	// CreatedAt is when the name was first created.
	CreatedAt time.Time
	// UpdatedAt is when the record last changed.
	UpdatedAt time.Time
}

// Images stores name records. Writers make a name point only at content
// that is complete in the store, so a name never refers to a partial image.
type Images interface {
	// Get returns the record for name, or an error that matches errdefs.ErrNotFound.
	Get(ctx context.Context, name string) (Image, error)
	// List returns every record, sorted by name.
	List(ctx context.Context) ([]Image, error)
	// Create adds a record. It fails with an error that matches
	// errdefs.ErrAlreadyExists when the name is taken, and with
	// errdefs.ErrInvalidArgument when the name is empty or the target has no
	// valid digest or media type. CreatedAt and UpdatedAt are set by the store.
	Create(ctx context.Context, image Image) (Image, error)
	// Update changes the record with image.Name, or returns an error that
	// matches errdefs.ErrNotFound. With no fieldpaths, the target and labels
	// are replaced. Fieldpaths "target", "labels" and "labels.KEY" replace
	// only those fields ("labels.KEY" removes KEY when its new value is empty).
	Update(ctx context.Context, image Image, fieldpaths ...string) (Image, error)
	// Delete removes the record, or returns an error that matches errdefs.ErrNotFound.
	// The content it pointed at stays in the store.
	Delete(ctx context.Context, name string) error
}

// ApplyImageUpdate applies an [Images.Update] request to the record have and
// returns the new record. It is for implementations of [Images], so that all
// of them read fieldpaths the same way. UpdatedAt is left to the caller.
func ApplyImageUpdate(have, update Image, fieldpaths ...string) (Image, error) {
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"target", "labels"}
	}
	out := have
	out.Labels = cloneLabels(have.Labels)
	for _, fp := range fieldpaths {
		switch {
		case fp == "target":
			out.Target = update.Target
		default:
			labels, err := ApplyUpdate(out.Labels, Info{Labels: update.Labels}, fp)
			if err != nil {
				return Image{}, invalidf("update image %q: cannot update field %q", have.Name, fp)
			}
			out.Labels = labels
		}
	}
	if err := ValidateImage(out); err != nil {
		return Image{}, err
	}
	return out, nil
}

// ValidateImage checks that a record can be stored: a name, and a target
// with a valid digest, a media type and a non-negative size. Errors match
// errdefs.ErrInvalidArgument.
func ValidateImage(image Image) error {
	if image.Name == "" {
		return invalidf("image: empty name")
	}
	if err := image.Target.Digest.Validate(); err != nil {
		return invalidf("image %q: target digest %q: %v", image.Name, image.Target.Digest, err)
	}
	if image.Target.MediaType == "" {
		return invalidf("image %q: target has no media type", image.Name)
	}
	if image.Target.Size < 0 {
		return invalidf("image %q: target has negative size", image.Name)
	}
	return nil
}
