// Package memory is a content store that keeps everything in memory, for
// tests and short-lived tools.
//
// [New] returns a [*Store], a content.Store that behaves as the disk store
// in content/local does: bytes become a blob only when Commit has verified
// their size and digest (failures are *content.MismatchError); an ingest
// outlives its writer, so a later writer with the same ref resumes it; a
// ref held by an open writer makes other writers fail with
// errdefs.ErrUnavailable until it is closed or committed; blobs carry labels
// with creation and update times; Walk takes filters and ListStatuses takes
// ref prefixes. Writers hash as they write, and hash the bytes of a resumed
// ingest once when they open it. Truncate accepts any size from 0 to the
// current offset.
//
// [Store.Images] returns the store's name records, an [*Images] that
// implements content.Images.
//
// Both types are safe for concurrent use by multiple goroutines. Nothing
// they return aliases their state: labels, annotations and other maps and
// slices are copies, and committed bytes are never changed. Nothing is
// limited in size, so a store holds as much as the process can.
package memory
