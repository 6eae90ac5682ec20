package importer

import (
	"context"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers/platforms"
)

// Option changes how [Import] works.
type Option func(*config)

type config struct {
	platforms   platforms.MatchComparer
	prefix      string
	digestNames bool
	unpacker    Unpacker
}

// WithPlatforms imports only the images for platforms m matches. An image
// whose config declares no OS always matches. In an index, manifests whose
// descriptor names a platform m does not match are left out: the index is
// still named as it is (its digest unchanged), but its garbage-collection
// labels reference only the manifests kept, and only those are checked and
// unpacked. Blobs of the images left out have already been streamed into
// the store by then; they stay there unreferenced.
//
// An archive none of whose images matches is a *handlers.NoMatchError,
// which matches errdefs.ErrNotFound. The default, and a nil m, is every
// platform.
func WithPlatforms(m platforms.MatchComparer) Option {
	return func(c *config) { c.platforms = m }
}

// WithNamePrefix sets the repository given to images the archive does not
// name in full: an image with no name at all is named
// "<prefix>@<manifest digest>", and an OCI index entry whose
// org.opencontainers.image.ref.name is only a tag ("1.0") is named
// "<prefix>:<tag>". prefix must be a repository without tag or digest, such
// as "example.com/app"; it is normalized as every name is, so "app" stands
// for "docker.io/library/app".
//
// The default, and an empty prefix, is "import-<date>" with the date of the
// import in UTC (containerd's ctr import uses the same form), which
// normalizes to "docker.io/library/import-2025-01-31".
func WithNamePrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// WithDigestNames names every image "<prefix>@<manifest digest>" (see
// [WithNamePrefix]) as well as by the names the archive gives it. By
// default only images the archive leaves unnamed get such a name.
func WithDigestNames() Option {
	return func(c *config) { c.digestNames = true }
}

// WithUnpack unpacks every imported image with u once its content is
// complete, verified and labelled, and before any name is created: an
// unpack failure fails the import, and no name is left behind. The default,
// and a nil u, is not to unpack.
func WithUnpack(u Unpacker) Option {
	return func(c *config) { c.unpacker = u }
}

// Unpacker unpacks an imported image. The importer calls Unpack once for
// each image root it imported (a manifest, or an index of which at least
// one manifest was kept), with the root's descriptor; the content is in the
// store the import wrote to. An unpacker that works on a single platform
// picks its manifest from an index itself.
type Unpacker interface {
	Unpack(ctx context.Context, target ocispec.Descriptor) error
}

// UnpackerFunc adapts a function to [Unpacker].
type UnpackerFunc func(ctx context.Context, target ocispec.Descriptor) error

// Unpack calls f.
func (f UnpackerFunc) Unpack(ctx context.Context, target ocispec.Descriptor) error {
	return f(ctx, target)
}

var _ Unpacker = UnpackerFunc(nil)
