package content

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// ErrDigestMismatch matches every [*MismatchError]: content whose size or
// digest is not the one expected. Test with errors.Is(err, ErrDigestMismatch).
var ErrDigestMismatch = errors.New("digest mismatch")

// ErrTooLarge matches every [*LimitError]. Test with errors.Is(err, ErrTooLarge).
var ErrTooLarge = errors.New("too large")

// A MismatchError reports bytes that do not match the descriptor they were
// read or written for. Nothing that fails this check is committed.
//
// It matches [ErrDigestMismatch] and errdefs.ErrFailedPrecondition.
type MismatchError struct {
	// Expected is the digest the content should have.
	Expected digest.Digest
	// Actual is the digest the content has, or empty when the size was already wrong.
	Actual digest.Digest
	// ExpectedSize is the size the content should have, or 0 when only the digest was checked.
	ExpectedSize int64
	// ActualSize is the number of bytes seen.
	ActualSize int64
}

// Error says what was expected and what was found.
func (e *MismatchError) Error() string {
	if e.ExpectedSize > 0 && e.ExpectedSize != e.ActualSize {
		if e.Expected == "" {
			return fmt.Sprintf("size mismatch: got %d bytes, want %d", e.ActualSize, e.ExpectedSize)
		}
		return fmt.Sprintf("size mismatch for %s: got %d bytes, want %d", e.Expected, e.ActualSize, e.ExpectedSize)
	}
	return fmt.Sprintf("digest mismatch: got %s, want %s", e.Actual, e.Expected)
}

// Is reports whether target is [ErrDigestMismatch].
func (e *MismatchError) Is(target error) bool { return target == ErrDigestMismatch }

// Unwrap classifies the error as errdefs.ErrFailedPrecondition.
func (e *MismatchError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// A LimitError reports input over a size or count limit, such as a manifest
// larger than 4 MiB or an archive with too many entries. The input is
// refused before it is read further.
//
// It matches [ErrTooLarge] and errdefs.ErrResourceExhausted.
type LimitError struct {
	// What names the limited thing, such as "manifest" or "tar entries".
	What string
	// Limit is the largest value allowed.
	Limit int64
	// Got is the value seen, or Limit+1 when reading stopped at the limit.
	Got int64
}

// Error names the limit.
func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: %d exceeds the limit of %d", e.What, e.Got, e.Limit)
}

// Is reports whether target is [ErrTooLarge].
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// Unwrap classifies the error as errdefs.ErrResourceExhausted.
func (e *LimitError) Unwrap() error { return errdefs.ErrResourceExhausted }

func invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}
