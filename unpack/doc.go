// Package unpack turns image layers into root filesystems.
//
// [Apply] reads one layer, a tar stream that is plain or compressed with
// gzip or zstd (told apart by magic bytes), and applies it onto a directory
// that holds the layers below it. It computes the layer's DiffID while it
// reads, and checks it when given one with [WithDiffID].
//
// # Images
//
// An image is unpacked layer by layer into a [Snapshotter]: each layer is
// applied onto a snapshot prepared on the layer below, its DiffID checked
// against the image config's rootfs.diff_ids, and committed under its
// chainID ([ChainID], [ChainIDs]), so that images sharing lower layers
// share their snapshots and a layer already committed is never fetched or
// applied again. [Directory] is a snapshotter that needs no privileges: a
// plain directory per snapshot, on disk, shared safely by processes.
//
//   - An [Unpacker] wraps a pull's handler chain (for handlers.Dispatch) and
//     applies each layer as soon as its blob is committed to the store, in
//     order, while later layers still download; [Unpacker.Results] gives
//     each image's top chainID.
//   - [Unpack] does the same for an image already in a store, as an import
//     leaves it.
//   - [ToDir] flattens an image into a plain directory, with no snapshots;
//     [NewDirUnpacker] makes an Unpacker that does so during the pull.
//
// Layers are streamed from the store; a layer that fails, its DiffID
// included, is never committed.
//
// # Layer semantics
//
// Layers follow the OCI image-spec rules for changesets:
//
//   - A ".wh.<name>" entry removes <name> as lower layers left it, and a
//     ".wh..wh..opq" entry empties its directory of what lower layers put
//     there. Whiteouts hide lower layers only: what the same layer adds
//     survives its whiteouts, before or after them in the stream. Other
//     ".wh..wh." entries are aufs bookkeeping and are skipped.
//   - An entry replaces what is at its path, a directory by a file and a
//     file by a directory included; the last of duplicate entries wins. An
//     existing directory named again keeps its content and gets the new
//     metadata. A file is always created anew, never written through, so a
//     hardlink to it from a lower layer keeps the old content.
//   - Hardlinks may point to files earlier in the layer or in lower layers;
//     the target's metadata is left alone. Symlinks keep their target as
//     written, absolute or dangling.
//   - Regular files get their mode (setuid, setgid and sticky bits
//     included), times and content; sparse files are written in full.
//     Directory modes and times are set once the layer is in, so that
//     writing their content does not change them. Times the system cannot
//     represent are clamped to the range of int64 nanoseconds (years 1677
//     to 2262), not zeroed.
//   - Ownership is applied when the caller is privileged (effective uid 0),
//     through [WithOwnership] when given; otherwise files belong to the
//     caller. [WithUnprivileged] forces the unprivileged behaviour.
//   - Fifos are created. Char and block devices are created when
//     privileged, and otherwise reported in [ApplyResult].Skipped. (Outside
//     Linux, fifos, devices and xattrs are always reported skipped.)
//   - Extended attributes in the user namespace and POSIX ACLs are set on
//     files and directories; security.capability too when privileged.
//     Other namespaces, trusted.* (which could steer an overlay mount of the
//     result) and security.selinux (the runtime labels files) among them,
//     are never set, and are reported as skipped, as are attributes on
//     symlinks and special files and those the filesystem refuses.
//
// # Containment
//
// Apply works through an [os.Root] opened on the target directory: nothing
// outside it is created, changed or removed. On top of that it reads names
// as a container will see them, with the root as "/":
//
//   - A leading "/" is dropped: "/etc/passwd" is <root>/etc/passwd.
//   - A name or hardlink target that climbs out with ".." ("../x",
//     "a/../../x"), a whiteout of "." or "..", and an entry that would
//     replace the root itself are refused with an [*UnsafeEntryError].
//   - Symlinks met on the way to an entry are followed as the container
//     would: an absolute target starts again at the root, and ".." stops
//     there. A layer with "lib -> /usr/lib" and "lib/x" writes
//     <root>/usr/lib/x; one with "evil -> /etc" (or "-> ../../..") and
//     "evil/passwd" writes <root>/etc/passwd, never the host's.
//   - The last component of a name is never followed: an entry replaces a
//     symlink at its path rather than writing through it.
//
// # Limits
//
// A layer may hold at most 64 GiB uncompressed ([WithMaxSize]), counting
// both the stream and the files' sizes, may expand at most 500 times its
// compressed size beyond its first 16 MiB ([WithMaxRatio]), and may hold at
// most 2,000,000 entries ([WithMaxEntries]). Names and hardlink targets are
// limited to 4096 bytes, symlink chains to 40 links, and zstd windows to
// 128 MiB. Apply streams: memory does not grow with file sizes, only with
// the number of entries it tracks for whiteouts; it holds about 6 MiB of
// buffers, and keeps open at most an eighth of the process's file
// descriptor limit (from 64 to 4096) of directories.
//
// # Speed
//
// Apply spreads a layer over several goroutines: one decompresses and hashes
// the stream a few chunks ahead of the one that reads the tar and creates
// entries, and, on Linux, a few more write file content and set each file's
// owner, mode and times through its descriptor, while paths are only ever
// created, linked and removed in stream order. On Linux it works on
// directory descriptors, kept open in a cache and opened with openat2(2) and
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, so that a new regular file costs four
// system calls (openat, write, futimens, close): no lstat before it, no
// chown or chmod when the system already gave the file its owner and mode. A
// file of 1 MiB or more is written back to disk as it is finished and then
// dropped from the page cache, a few files behind (Apply returns once they
// are written back), and a file of more than 8 MiB is written back and
// dropped 8 MiB at a time while it is written too, so that neither a large
// layer nor a single file of many GiB fills the cache with dirty pages
// (charged to the unpacking process's memory cgroup); reading
// such a file right after the unpack reads it from disk. Gzip layers are
// decompressed by igzip when it is on PATH ([WithExternalDecompressor]),
// about twice as fast as Go's fastest decoder. An [Unpacker] lets layers
// download bottom first ([WithFetchWindow]), so that the bottom layer is
// applied while those above it still download, and decompresses the next
// two layers into unnamed temporary files while the one below them is
// applied ([WithDecompressAhead]), so that layers decode on several cores;
// their large files are then linked into place, not copied.
//
// # Errors
//
// Errors are classified with github.com/containerd/errdefs. An unsafe
// entry is an [*UnsafeEntryError] (errdefs.ErrInvalidArgument); a DiffID
// that does not match is a [*DiffIDMismatchError]
// (errdefs.ErrFailedPrecondition and content.ErrDigestMismatch); a layer
// over a limit is a *content.LimitError (errdefs.ErrResourceExhausted and
// content.ErrTooLarge). A malformed stream matches
// errdefs.ErrInvalidArgument; an error of the caller's reader is returned
// wrapped, as it is. Snapshotters report a missing snapshot as
// errdefs.ErrNotFound, a key or name taken as errdefs.ErrAlreadyExists,
// and the removal of a parent as errdefs.ErrFailedPrecondition.
package unpack
