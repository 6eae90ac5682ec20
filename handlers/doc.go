// Package handlers walks OCI image graphs: an index lists manifests, a
// manifest lists a config and layers.
//
// A [Handler] gets one descriptor and returns the descriptors it references.
// [Dispatch] runs it over a graph with siblings in parallel, a bounded number
// of calls at a time; [Walk] runs it serially, depth first. Handlers compose
// by wrapping: [Sequence] runs several on each descriptor, and
//
//   - [Children] reads a manifest or index from a content store and returns
//     what it references ([ChildrenOf] is the function form);
//   - [FilterPlatforms] drops children for platforms that do not match;
//   - [LimitManifests] keeps the best manifests of an index for a platform,
//     choosing across nested indexes;
//   - [SetChildrenLabels] records the children as containerd-style
//     garbage-collection labels on the parent's blob.
//
// A pull is such a chain, inside out: fetch the blob, read its children,
// filter, limit, label:
//
//	h := handlers.SetChildrenLabels(store,
//		handlers.LimitManifests(
//			handlers.FilterPlatforms(handlers.Sequence(fetcher, handlers.Children(store)), m),
//			m, 1))
//	err := handlers.Dispatch(ctx, h, 8, root)
//
// [Manifest], [Config] and [DiffIDs] read the manifest and config of an image
// for a platform from a store, through any indexes above them.
//
// The media types this package recognizes, OCI and Docker, are constants
// here, with predicates ([IsIndex], [IsManifest], [IsConfig], [IsLayer],
// [IsSchema1]). Docker schema 1 manifests are recognized but not read: the
// handlers/schema1 package converts them.
//
// # Limits
//
// Manifests, indexes and configs are read verified and bounded: at most
// 4 MiB each, [MaxLayers] layers per manifest, [MaxIndexManifests] manifests
// per index and [MaxIndexDepth] levels of nested indexes. Going over a limit
// is a [*content.LimitError].
//
// # Errors
//
// A Handler may return [ErrSkipDesc] to prune the walk below a descriptor,
// and a handler in a [Sequence] may return [ErrStopHandler] to end the
// sequence early; neither is reported as an error. Other errors are
// classified with github.com/containerd/errdefs: content that does not decode
// or contradicts its descriptor matches errdefs.ErrInvalidArgument, schema 1
// content errdefs.ErrNotImplemented, and an index with no manifest for the
// wanted platform is a [*NoMatchError], which lists the platforms it offers
// and matches errdefs.ErrNotFound.
//
// # Concurrency
//
// The handlers this package returns are safe for concurrent use when the
// handlers, stores and matchers they wrap are. [Dispatch] calls its handler
// from several goroutines and returns only once all of them have ended.
package handlers
