// Package schema1 converts Docker schema 1 image manifests, signed
// ("application/vnd.docker.distribution.manifest.v1+prettyjws") or not
// ("application/vnd.docker.distribution.manifest.v1+json"), into Docker
// schema 2 images while they are pulled.
//
// Schema 1 manifests list layer blobs (top first) and a JSON string of
// legacy image metadata per layer ("v1Compatibility"), but no layer sizes,
// no diff IDs and no image config. A [Converter] fills those in:
//
//		c := schema1.NewConverter(store, fetcher)
//		if err := handlers.Dispatch(ctx, c, 4, desc); err != nil { // desc: the schema 1 manifest
//			return err
//		}
//		image, err := c.Convert(ctx) // a Docker schema 2 manifest, in store
//
//	 1. [Converter.Handle] on the schema 1 manifest fetches it (at most 4
//	    MiB), verifies it against the descriptor's digest, strips its JWS
//	    signatures and returns its layers as children, base first, each blob
//	    once. Empty layers (marked "throwaway" in their history, or the
//	    well-known gzipped empty tar [EmptyLayer]) are not returned: they
//	    are never downloaded and the new image does not list them.
//	 2. [Converter.Handle] on each of those layers downloads it into the store
//	    itself, through fetch.Handler (verified, resumable, with the same
//	    progress events), and computes its diff ID while the bytes stream
//	    past, so a layer is read once. The children carry Size -1, since
//	    schema 1 does not record sizes: pass them to the converter, not to
//	    fetch.Handler. The converter learns a layer's size from the store,
//	    or else from the fetcher, which must be a [Stater] (an HTTP HEAD, as
//	    fetch.Repository.Stat sends).
//	 3. [Converter.Convert] builds the image config from the newest history
//	    entry, with a history entry per schema 1 layer and the diff IDs of the
//	    layers kept, and writes it and a Docker schema 2 manifest into the
//	    store, the manifest labelled with containerd's garbage-collection
//	    references to its config and layers.
//
// The schema 1 manifest itself is not stored: the converted manifest
// replaces it. Converting the same schema 1 manifest twice gives the same
// bytes, so the same digest. Signatures are stripped, not checked, as
// containerd and Docker do: what is trusted is the digest.
//
// [ConvertLegacyConfig] rewrites the other legacy of early registries,
// schema 2 manifests whose config has the media type
// "application/octet-stream".
//
// # Digests
//
// Registries name a signed manifest by the digest of its payload: the
// manifest without its "signatures" member, rebuilt from the body as the
// first signature's protected header says (formatLength bytes of the body,
// then the base64url formatTail). The converter accepts a manifest whose
// payload digest, or whole-body digest, is the descriptor's digest; any
// other body is a *content.MismatchError, which matches
// content.ErrDigestMismatch.
//
// # Errors
//
// Errors are classified with github.com/containerd/errdefs: a manifest
// that does not decode as schema 1 matches errdefs.ErrInvalidArgument,
// one over 4 MiB or with more than handlers.MaxLayers layers is a
// *content.LimitError, and calls out of order (Convert before the layers
// are in, a layer of another manifest) match errdefs.ErrFailedPrecondition.
// A fetcher that is not a [Stater] cannot tell the layers' sizes: handling
// a layer the store lacks then fails with an error that matches
// errdefs.ErrNotImplemented.
// Registry errors come from the fetcher, classified there.
//
// A caller that meets a schema 1 manifest without converting it can return
// [ErrConversionDisabled], which says how to enable the conversion.
//
// # Concurrency
//
// A Converter converts one schema 1 manifest. Its Handle is safe for
// concurrent use, as handlers.Dispatch requires; Convert must be called
// after the dispatch has returned.
package schema1
