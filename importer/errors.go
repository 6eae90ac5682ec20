package importer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
)

// Sentinel errors. Each wraps an errdefs class, so callers may test either
// errors.Is(err, ErrUnsafePath) or errdefs.IsInvalidArgument(err).
var (
	// ErrUnsafePath reports an entry name, a link target or a path in
	// manifest.json that is absolute, has a ".." element or leads out of
	// the archive. It matches errdefs.ErrInvalidArgument.
	ErrUnsafePath = fmt.Errorf("unsafe path: %w", errdefs.ErrInvalidArgument)

	// ErrMissing reports a file or blob that the archive's manifests
	// reference but that is neither in the archive nor, for blobs named by
	// digest, already in the store. It matches errdefs.ErrNotFound.
	ErrMissing = fmt.Errorf("missing from archive: %w", errdefs.ErrNotFound)

	// ErrDuplicateName reports two different images that claim one name,
	// such as two manifest.json entries listing the same tag. It matches
	// errdefs.ErrInvalidArgument.
	ErrDuplicateName = fmt.Errorf("name claimed by two images: %w", errdefs.ErrInvalidArgument)

	// ErrInvalidArchive reports an archive that is not a well-formed docker
	// save or OCI layout tar: a corrupt tar or compression stream, invalid
	// JSON, a repeated entry, a link loop, or neither manifest.json nor
	// oci-layout. It matches errdefs.ErrInvalidArgument.
	ErrInvalidArchive = fmt.Errorf("invalid archive: %w", errdefs.ErrInvalidArgument)

	// ErrUnsupported reports an archive this package recognizes but cannot
	// import: a docker save from before Docker 1.10 (no manifest.json), an
	// oci-layout version other than 1.0.0, xz- or bzip2-compressed archives
	// and layers. It matches errdefs.ErrNotImplemented.
	ErrUnsupported = fmt.Errorf("unsupported archive: %w", errdefs.ErrNotImplemented)
)

// invalid returns an error that says what is wrong and matches ErrInvalidArchive.
func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrInvalidArchive)...)
}

// sourceReader remembers the errors of the caller's reader, so that errors
// the tar and decompression readers raise about the bytes (which make the
// archive invalid) can be told apart from errors reading them (which are
// returned as they are). It stops reading once ctx is done.
type sourceReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// classify turns an error met while reading the archive into one a caller
// can act on: the source's own errors and context errors pass unchanged,
// anything else means the bytes are malformed.
func (s *sourceReader) classify(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case s.err != nil && errors.Is(err, s.err):
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, errdefs.ErrInvalidArgument), errors.Is(err, errdefs.ErrResourceExhausted),
		errors.Is(err, errdefs.ErrNotImplemented):
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %v: %w", what, err, ErrInvalidArchive)
}
