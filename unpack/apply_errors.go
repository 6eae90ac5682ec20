package unpack

import (
	"fmt"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
)

// An UnsafeEntryError reports a layer entry that [Apply] refused because
// it would reach outside the root or replace the root itself: a name or
// hardlink target that climbs out with "..", a whiteout of "." or "..".
// Nothing of the entry was applied.
//
// It matches errdefs.ErrInvalidArgument.
type UnsafeEntryError struct {
	// Name is the entry's name as the tar stream spells it.
	Name string
	// Reason says what makes the entry unsafe.
	Reason string
}

// Error names the entry and the reason.
func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("unsafe layer entry %q: %s", e.Name, e.Reason)
}

// Unwrap classifies the error as errdefs.ErrInvalidArgument.
func (e *UnsafeEntryError) Unwrap() error { return errdefs.ErrInvalidArgument }

// A DiffIDMismatchError reports a layer whose uncompressed digest is not the
// one given to [WithDiffID]. The layer has been applied by then: the root
// should be discarded.
//
// It matches content.ErrDigestMismatch and errdefs.ErrFailedPrecondition.
type DiffIDMismatchError struct {
	// Expected is the diffID given to WithDiffID.
	Expected digest.Digest
	// Actual is the digest of the uncompressed stream that was read.
	Actual digest.Digest
}

// Error says what was expected and what was found.
func (e *DiffIDMismatchError) Error() string {
	return fmt.Sprintf("diffID mismatch: got %s, want %s", e.Actual, e.Expected)
}

// Is reports whether target is content.ErrDigestMismatch.
func (e *DiffIDMismatchError) Is(target error) bool { return target == content.ErrDigestMismatch }

// Unwrap classifies the error as errdefs.ErrFailedPrecondition.
func (e *DiffIDMismatchError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// invalidEntryf returns an error that matches errdefs.ErrInvalidArgument.
func invalidEntryf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}
