// Package pullkit pulls container images from OCI and Docker registries,
// and imports docker save and OCI archives, into a content store you
// choose, then unpacks them into root filesystems.
//
// Most programs need only [Pull]. Programs that want another pipeline
// assemble it from the packages below it, each small enough to read in one
// sitting:
//
//   - reference parses and normalizes image references ("alpine" is
//     docker.io/library/alpine:latest).
//   - content defines the blob store: resumable, verifying writers, readers,
//     labels, and name records. content/local keeps an OCI image layout on
//     disk that several processes can share and that survives a crash
//     mid-download; content/memory keeps everything in memory;
//     content/contenttest checks any store against the contracts.
//   - handlers walks image graphs: Dispatch runs a Handler over an index,
//     its manifests, configs and layers, siblings in parallel, with
//     handlers for children, platform filtering and limits, and GC labels.
//     handlers/platforms matches platforms with the fallbacks a host can run.
//   - auth answers registry auth challenges with credentials bound to the
//     host they belong to; fetch downloads blobs with resume, retries and
//     chunked parallel ranges; resolve turns a reference into a root
//     descriptor across mirrors configured like containerd's hosts.toml;
//     resolve/registrytest is an in-process registry with fault injection
//     for your tests.
//   - unpack applies layers into directories, safely, while later layers
//     still download; importer reads docker save and OCI archives in one
//     streaming pass.
//
// Every byte that enters a store is verified against its digest before it
// is visible, and a name is written only once everything it points at is
// complete, so a failed pull or import never leaves a name pointing at
// partial content.
//
// Errors are classified with github.com/containerd/errdefs: test them with
// errdefs.IsNotFound(err), errdefs.IsUnauthorized(err) and the like.
package pullkit
