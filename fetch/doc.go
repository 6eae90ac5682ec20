// Package fetch downloads blobs from OCI and Docker registries.
//
// A [Fetcher] opens a blob by descriptor. [New] returns the registry
// fetcher, a [*Repository] for one host and repository:
//
//	f := fetch.New("ghcr.io", "acme/app", fetch.WithClient(authClient))
//	rc, err := f.Fetch(ctx, desc)
//
// [Handler] copies blobs into a content.Ingester, verified, resuming what an
// earlier attempt left; compose it with handlers.Children to pull an image.
// [Repository.Stat] tells a blob's size without downloading it (a HEAD, or
// a GET of one byte where HEAD is refused), for descriptors that do not
// record one, such as the layers of Docker schema 1 manifests.
//
// # Resilience
//
// The reader Fetch returns keeps going when the network does not:
//
//   - A body that breaks (a reset, an early EOF, or no byte for the stall
//     timeout) is resumed with "Range: bytes=<received>-". The first request
//     for a whole blob never carries Range. A server that ignores Range
//     (200 instead of 206, or a Content-Range that starts early) has the
//     bytes already delivered skipped, so the stream stays exact.
//   - Transport errors, 408 and 5xx are retried with exponential backoff and
//     jitter; 429 and 503 honour Retry-After (seconds or an HTTP date) up to
//     a cap, beyond which the fetch fails with errdefs.ErrUnavailable.
//   - A download of 8 MiB or more whose single stream proves slow (under
//     64 MB/s, as behind a CDN that caps each connection) is split: it
//     goes on over 4 connections, with 2 MiB Range requests that retry on
//     their own and reach the reader in order. A fast stream stays one
//     stream, read straight into the caller's buffer. Chunk buffers come
//     from a budget the Repository's downloads share (24 MiB), so memory
//     stays bounded however many blobs are in flight. See [WithParallel].
//   - The reader is an io.Seeker, so content.Copy resumes an ingest at its
//     offset; [ResumeFetcher.FetchFrom] starts there with the first request.
//
// The reader never returns more than desc.Size bytes and does not hash
// what it returns: the store verifies the digest when it commits.
//
// # Credentials
//
// Every request's context carries the pull scope of the repository for
// auth.Client (auth.WithScopes). Redirects are followed up to 10 times; a
// hop to another scheme, host or port (a CDN, a presigned S3 URL) carries
// no Authorization header and goes through a client that has no
// credentials. Foreign layer URLs (desc.URLs) are only used when
// [WithForeignLayers] allows them, and never with credentials. Errors and
// logs show URLs without their query string, never credentials or tokens.
//
// # Errors
//
// A status that ends a fetch is a [*ResponseError], with the registry's
// error codes, classified with github.com/containerd/errdefs: a missing blob
// matches errdefs.ErrNotFound, a refused one errdefs.ErrUnauthenticated or
// errdefs.ErrPermissionDenied, a rate limit or an outage
// errdefs.ErrUnavailable. A stream that could not be completed matches
// io.ErrUnexpectedEOF as well as the class of its last failure. Errors name
// the blob: "fetch sha256:…: …".
//
// # Events
//
// [WithObserver] and [WithProgress] report progress as [Event]s: a
// handler's Started, Progress, Committed and Skipped, a download's Retried
// and Resumed. Observers are called on the goroutine that reads the blob,
// never concurrently for one blob.
package fetch
