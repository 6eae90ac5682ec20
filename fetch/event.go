package fetch

import (
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// EventKind says what an [Event] reports.
type EventKind int

// Event kinds. Package fetch emits all but [Resolved], which package
// resolve emits with the same type so that one observer sees a whole pull.
const (
	// Resolved: a reference was resolved to Desc.
	Resolved EventKind = iota + 1
	// Started: a [Handler] began copying Desc into the store; Offset is
	// where the ingest starts (not 0 when an abandoned ingest is resumed).
	Started
	// Progress: Offset of Total bytes of Desc are in the store. A handler
	// sends it at most every MiB or every 100 ms.
	Progress
	// Retried: a request or a body failed with Err and is tried again;
	// Attempt counts the failures in a row (1 for the first retry).
	Retried
	// Resumed: the download continues at byte Offset, after a broken
	// connection or, from a [Handler], from an abandoned ingest.
	Resumed
	// Committed: Desc was verified and committed to the store.
	Committed
	// Skipped: the store already had Desc; nothing was fetched.
	Skipped
)

// String returns the kind's name in lower case, such as "progress".
func (k EventKind) String() string {
	switch k {
	case Resolved:
		return "resolved"
	case Started:
		return "started"
	case Progress:
		return "progress"
	case Retried:
		return "retried"
	case Resumed:
		return "resumed"
	case Committed:
		return "committed"
	case Skipped:
		return "skipped"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event reports progress on one blob to an observer set with
// [WithObserver] or [WithProgress].
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// Desc is the blob the event is about.
	Desc ocispec.Descriptor
	// Offset is a byte position in the blob: bytes received or stored so
	// far, or where a download resumes.
	Offset int64
	// Total is the blob's size, desc.Size.
	Total int64
	// Attempt counts failures in a row, for [Retried]; otherwise 0.
	Attempt int
	// Err is why a request is retried, for [Retried]; otherwise nil. It
	// never carries credentials or URL queries.
	Err error
}
