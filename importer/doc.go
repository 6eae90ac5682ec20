// Package importer imports image archives, as docker save, skopeo and
// other tools write them, into a content store, in one streaming pass.
//
// [Import] reads an archive once, start to end, from any io.Reader: a file,
// a pipe from docker save, an HTTP body. It accepts
//
//   - docker save archives: manifest.json, "<id>.json" configs,
//     "<id>/layer.tar" layers (symbolic links between them included, as
//     older Docker versions wrote), and the repositories file;
//   - OCI image layouts: oci-layout, index.json and blobs/<alg>/<encoded>,
//     with nested indexes;
//   - both at once, as Docker 25 and later write;
//   - any of these compressed whole with gzip or zstd.
//
// # Streaming
//
// A tar archive may hold its files in any order, and docker save writes
// manifest.json last, after the layers. So Import does not wait for it:
// every file that may be a blob (a layer tar, anything under blobs/) goes
// into the store as it passes, hashed and verified in the same pass, and
// small JSON files (manifest.json, index.json, repositories, oci-layout,
// the "<id>.json" configs) are kept in memory, at most [MaxJSONSize] each
// and [MaxMetadataSize] in all. Once the archive has been read, the images
// are assembled from what the store holds. Nothing is copied to a
// temporary file and memory does not grow with the size of the layers:
// importing a 2 GiB docker save archive into a content/local store peaks
// well under 64 MiB of resident memory.
//
// Import reads r on a goroutine of its own, in chunks of 1 MiB, up to
// 4 MiB ahead of what it has hashed and written, so that reading a pipe or
// a socket runs on another core than the hashing. So it may read a few MiB
// of r past the end of the archive, and, when it fails, returns without
// waiting for a read under way: the goroutine ends once that read does.
//
// Because blobs are written before the archive says what they are for, a
// file the archive's manifests do not reference is still committed (a
// verified blob that nothing names, which a garbage collector may remove),
// and so are the blobs of images that [WithPlatforms] leaves out.
//
// # Verification
//
// A file "blobs/<alg>/<encoded>" must have that digest; the commit fails
// with a [*content.MismatchError] otherwise, and nothing is committed. A
// docker save layer is committed under the digest of its bytes.
//
// The first bytes of each file tell whether it is a plain, gzip or zstd
// stream, and a docker save layer gets the media type of what it is, not
// always the gzip one. For a compressed file, the decompressed bytes are
// hashed in the same pass, in a goroutine that runs beside the store's
// writes, so that every layer's uncompressed digest is checked against
// the diff_ids of its image's config: a plain layer's digest is its
// diffID, a compressed one's is the hash of what it decompresses to. Two
// kinds of compressed layers are imported without that check, left to
// whoever unpacks them: a zstd stream that asks for a window over 128 MiB,
// and a stream that decompresses to more than 1024 times its size (and
// more than 64 MiB), so that a small archive cannot make the import hash
// terabytes.
//
// A blob that an OCI manifest references counts as present when it is in
// the archive or already in the store. An index is imported with those of
// its manifests that are present: docker save of one platform of a
// multi-platform image ships the whole index but one platform's blobs.
// The index keeps its digest, and its garbage-collection labels reference
// only the manifests imported. A config or layer missing from a manifest
// that is imported is an error, except a foreign or non-distributable
// layer, which registries serve from its URLs.
//
// Links between entries are followed as whole paths, symbolic ones
// relative to the link's directory, hard ones from the archive's root; a
// link that leads out of the archive is refused as it is read.
//
// # Names
//
// Names are normalized as [reference.Parse] normalizes them
// ("ubuntu:latest" is "docker.io/library/ubuntu:latest"). An image the
// archive does not name (a docker save by image ID, an index.json entry
// with no name annotation) is named "<prefix>@<manifest digest>", where the
// prefix is "import-<date>" by default, as containerd's ctr import names
// such images; [WithNamePrefix] changes it and [WithDigestNames] gives every
// image such a name.
//
// Names are created only once every image's content is committed,
// verified and labelled. If creating one fails, or the import fails
// earlier, no name the import made or changed is left behind.
//
// # Errors
//
// Errors are classified with github.com/containerd/errdefs. A malformed
// archive matches [ErrInvalidArchive], an entry or path that leaves the
// archive [ErrUnsafePath], and two images that claim one name
// [ErrDuplicateName], all of which match errdefs.ErrInvalidArgument; a
// file or blob the archive references but lacks matches [ErrMissing] and
// errdefs.ErrNotFound; limits are [*content.LimitError]s, which match
// errdefs.ErrResourceExhausted; archives this package knows but does not
// import match [ErrUnsupported] and errdefs.ErrNotImplemented.
//
// # Unpacking
//
// [WithUnpack] hands each imported image to an [Unpacker] before the names
// are created, so that a failed unpack leaves no name behind.
package importer
