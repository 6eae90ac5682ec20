// Package content defines pullkit's blob store: content-addressed blobs
// written through resumable, verifying writers, and the name records that
// point at images.
//
// A [Store] combines four small interfaces: a [Provider] opens committed
// blobs, an [Ingester] opens [Writer]s that add them, a [Manager] reads and
// labels what is committed, and an [IngestManager] lists and aborts writes in
// progress. [Images] maps names to root descriptors.
//
// Two implementations ship with pullkit: content/local keeps an OCI image
// layout on disk that several processes can share, and content/memory keeps
// everything in memory for tests. content/contenttest checks any
// implementation against the contracts written here.
//
// # Writing
//
// A writer is opened under a ref, the key of its ingest. Bytes become
// visible only when [Writer.Commit] has verified their size and digest. An
// ingest outlives its writer: a writer opened later with the same ref, even
// by another process after a crash, resumes at [Status].Offset. [Copy] and
// [WriteBlob] do that resumption for a reader; [OpenWriter] waits while
// another writer holds the ref. In a context from [WithTee], Copy also
// hands what it writes to a consumer that starts on a blob while it
// downloads (an unpacker decompressing a layer), unverified until the
// commit.
//
// # Errors
//
// Errors are classified with github.com/containerd/errdefs: a missing blob
// matches errdefs.ErrNotFound, a ref held by another writer
// errdefs.ErrUnavailable, a blob committed twice errdefs.ErrAlreadyExists.
// Content that fails verification is a [*MismatchError], which matches
// [ErrDigestMismatch]; input over a limit is a [*LimitError], which matches
// [ErrTooLarge].
package content

import (
	// Register the digest algorithms OCI uses, so go-digest can verify them.
	_ "crypto/sha256"
	_ "crypto/sha512"
)
