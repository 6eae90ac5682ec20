// Package local is pullkit's default content store: an OCI image layout in a
// directory, which skopeo, crane, oras and umoci read as they read any
// other, and which several processes may use at once.
//
// [New] opens or creates the layout. The [*Store] it returns implements
// [content.Store]; [Store.Images] implements [content.Images] over the
// layout's index.json.
//
// # On disk
//
//	oci-layout                    {"imageLayoutVersion":"1.0.0"}
//	index.json                    OCI image index: one entry per name
//	index.json.lock               flock guarding rewrites of index.json
//	blobs/<alg>/<hex>             committed blobs, mode 0444
//	labels/<alg>/<hex>            a blob's labels, a JSON object
//	labels/<alg>/<hex>.lock       flock guarding those labels
//	ingest/<key>/                 a write in progress; key = sha256(ref) in hex
//	ingest/<key>/data             the bytes written so far
//	ingest/<key>/ref              the ref, written last when the ingest starts
//	ingest/<key>/total            expected size in decimal, when known
//	ingest/<key>/expected         expected digest, when known
//	ingest/<key>/startedat        start time, RFC 3339
//	ingest/<key>/lock             flock held by the ingest's writer
//
// A name is an index.json entry: the target descriptor, annotated with
// org.opencontainers.image.ref.name set to the name (for example
// "docker.io/library/alpine:3.20", which is how skopeo's oci:DIR:NAME finds
// it). The record's CreatedAt, UpdatedAt and labels are the annotations
// [AnnotationCreated], [AnnotationUpdated] and [AnnotationLabelPrefix]+KEY
// on that entry. Entries and top-level fields written by other tools are
// kept as they are when index.json is rewritten. Blob labels are not in
// index.json: they live under labels/, which other tools ignore, as they
// ignore ingest/.
//
// Committed blobs are read-only, so that nothing rewrites verified bytes in
// place. A tool that writes a blob by opening its path for writing fails on
// one that is already there, unless it runs as root: skopeo copying into
// the layout an image whose manifest the layout already holds does so
// (other images, and their names, it adds as to any layout).
//
// A blob's Info has the blob file's modification time as CreatedAt (set to
// the commit time) and its labels file's as UpdatedAt.
//
// # Writing and crashes
//
// A writer hashes bytes as they come and gathers them in 512 KiB buffers,
// which a goroutine of the writer's own writes to the file, in order,
// while the caller hashes and fills the next: hashing takes one core, and
// the kernel's copying and writeback another. A writer has at most two
// buffers, so memory stays flat whatever the blob's size; a blob under
// 512 KiB is written once, at Commit, with no goroutine. A write error is
// returned by a later Write, or by Status, Close or Commit.
// [content.Writer.Status] waits until every byte accepted is in the file,
// so its Offset survives the death of the process. A writer on Linux
// starts the writeback of each 8 MiB it writes (sync_file_range) and waits
// for the 8 MiB before, so the disk works while the download runs and the
// fsync at commit has little left to write; the fsync stays, and makes the
// commit durable. A store that does not sync writes back the same way, so
// that the dirty pages of a whole image do not pile up. Bytes on disk are
// dropped from the page cache (posix_fadvise DONTNEED), so a pull holds at
// most 16 MiB of cache for each blob it writes rather than the whole
// image: a blob is written once and read seldom, an unpack reads each
// layer once, and the cache of an image would only crowd out other files
// and count against the memory cgroup of the process that pulls. The pages
// freed are the ones the next writes reuse. For the same reasons, a
// [Store.ReaderAt] reader that reads a blob of 16 MiB or more from its
// start, front to back (as an unpack or a copy does), drops what lies 8
// MiB behind it, and the rest when it is closed; a reader that reads
// anywhere else leaves the cache alone.
//
// Commit verifies size and digest from the running hash (the bytes are not
// read again), fsyncs the data, makes it read-only and hard-links it into
// blobs/ (a link, unlike a rename, fails when the blob already exists),
// fsyncs the directory and removes the ingest. Labels given to Commit are
// written before the link, so a blob is never visible without them. A
// crash at any point leaves either no blob or a complete, verified one.
//
// An ingest survives its writer: a writer opened later for the same ref, by
// any process, re-hashes the data file once and continues at its end, which
// [content.Copy] and [content.WriteBlob] use to resume a download. When the
// new writer's descriptor names another size or digest than the ingest was
// started with, the ingest starts over.
//
// A commit whose bytes do not match returns a [*content.MismatchError] and
// commits nothing. Bytes that can never be the expected blob (a wrong
// digest, or more bytes than expected) are discarded with the ingest, so a
// retry starts clean; an ingest with fewer bytes than expected is kept for
// a later writer to complete.
//
// # Several processes
//
// Every guarantee holds across processes sharing the directory, on a local
// file system with flock (Linux, macOS, the BSDs):
//
//   - A ref has at most one writer: the writer holds an exclusive flock on
//     the ingest's lock file (and a process-wide lock, as flock alone is per
//     process on some network file systems). Another writer, or an Abort,
//     fails with errdefs.ErrUnavailable meanwhile; [content.OpenWriter]
//     waits instead.
//   - Two writers of one blob under different refs both verify their bytes;
//     the first commit wins and the second gets errdefs.ErrAlreadyExists,
//     which [content.Copy] treats as success.
//   - index.json is rewritten (temporary file, fsync, rename, directory
//     fsync) under an exclusive flock, so concurrent Create, Update and
//     Delete calls lose nothing; readers read the renamed file without a
//     lock and see the old index or the new one.
//   - Labels files are rewritten the same way under a per-blob flock, which
//     Update, Delete and Commit take, so concurrent label updates lose
//     nothing.
//
// [WithSync] (false) turns off the fsyncs for caches and tests; writes stay
// atomic but may be lost to a power failure.
package local
