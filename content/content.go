package content

import (
	"context"
	"io"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Info describes a committed blob.
type Info struct {
	// Digest is the blob's content address.
	Digest digest.Digest
	// Size is the blob's length in bytes.
	Size int64
	// CreatedAt is when the blob was committed.
	CreatedAt time.Time
	// UpdatedAt is when the blob's labels last changed, or CreatedAt if they never did.
	UpdatedAt time.Time
	// Labels are free-form key/value pairs kept beside the blob. A nil map means no labels.
	Labels map[string]string
}

// Status describes an ingest: a write in progress under a ref.
type Status struct {
	// Ref is the ingest's key, chosen by the writer.
	Ref string
	// Offset is how many bytes have been written so far; a resumed writer continues here.
	Offset int64
	// Total is the expected size, or 0 when unknown.
	Total int64
	// Expected is the expected digest, or empty when unknown.
	Expected digest.Digest
	// StartedAt is when the ingest began.
	StartedAt time.Time
	// UpdatedAt is when the ingest last received bytes.
	UpdatedAt time.Time
}

// ReaderAt reads a committed blob at any offset.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	// Size returns the blob's length in bytes.
	Size() int64
}

// Provider opens committed blobs for reading.
type Provider interface {
	// ReaderAt opens the blob desc.Digest. It returns an error that matches
	// errdefs.ErrNotFound when the store does not have it.
	ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error)
}

// Ingester opens writers that add blobs to a store.
type Ingester interface {
	// Writer opens a writer for the ref given by [WithRef], which is required.
	//
	// If another writer holds the same ref, Writer fails with an error that
	// matches errdefs.ErrUnavailable; [OpenWriter] waits instead. If the store
	// already has the blob named by [WithDescriptor], Writer fails with an error
	// that matches errdefs.ErrAlreadyExists. If an ingest with this ref was
	// abandoned earlier (a closed writer, a crashed process), the new writer
	// resumes it: its Status().Offset says where.
	Writer(ctx context.Context, opts ...WriterOpt) (Writer, error)
}

// Writer writes one blob. Bytes written are not visible through a [Provider]
// until Commit verifies them.
//
// A Writer is not safe for concurrent use.
type Writer interface {
	// Write appends to the ingest.
	io.Writer
	// Close releases the writer and its ref lock. The ingest stays, so a
	// later writer with the same ref resumes it, until Commit or an Abort.
	io.Closer
	// Digest returns the digest of the bytes written so far.
	Digest() digest.Digest
	// Commit makes the blob visible. It fails, committing nothing, with an
	// error that matches [ErrDigestMismatch] and errdefs.ErrFailedPrecondition
	// when the bytes written do not have the given size (if size > 0) or
	// digest (if expected is not empty). It fails with an error that matches
	// errdefs.ErrAlreadyExists when the blob was committed by someone else
	// meanwhile; the blob is then present and verified, and callers may treat
	// that as success. Commit releases the writer.
	Commit(ctx context.Context, size int64, expected digest.Digest, opts ...CommitOpt) error
	// Status reports the ingest's progress.
	Status() (Status, error)
	// Truncate cuts the ingest to size bytes, so writing continues from there.
	// Only truncation to 0 is guaranteed to be supported; a store may return
	// an error that matches errdefs.ErrNotImplemented for other sizes.
	Truncate(size int64) error
}

// Manager reads and changes what is known about committed blobs.
type Manager interface {
	// Info returns the blob's metadata, or an error that matches errdefs.ErrNotFound.
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
	// Update changes the blob's labels and returns the new Info. With no
	// fieldpaths, all labels are replaced by info.Labels. A fieldpath
	// "labels" does the same; "labels.KEY" sets or, when info.Labels has no
	// KEY or its value is empty, removes that one label. Any other fieldpath
	// is an error that matches errdefs.ErrInvalidArgument.
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)
	// Walk calls fn for every committed blob that passes all filters, in no
	// particular order. An error from fn stops the walk and is returned.
	Walk(ctx context.Context, fn WalkFunc, filters ...Filter) error
	// Delete removes the blob and its labels, or returns an error that matches errdefs.ErrNotFound.
	Delete(ctx context.Context, dgst digest.Digest) error
}

// WalkFunc is called by [Manager.Walk] for each blob.
type WalkFunc func(Info) error

// Filter selects blobs in [Manager.Walk]. A blob is visited when every filter returns true.
type Filter func(Info) bool

// Match reports whether info passes every filter, as [Manager.Walk] requires.
func Match(info Info, filters ...Filter) bool {
	for _, f := range filters {
		if !f(info) {
			return false
		}
	}
	return true
}

// HasLabel selects blobs that carry the label key, whatever its value.
func HasLabel(key string) Filter {
	return func(info Info) bool { _, ok := info.Labels[key]; return ok }
}

// LabelEquals selects blobs whose label key has the given value.
func LabelEquals(key, value string) Filter {
	return func(info Info) bool { v, ok := info.Labels[key]; return ok && v == value }
}

// IngestManager lists and cancels ingests.
type IngestManager interface {
	// Status returns the ingest with this ref, or an error that matches errdefs.ErrNotFound.
	Status(ctx context.Context, ref string) (Status, error)
	// ListStatuses returns the ingests whose ref starts with one of the
	// prefixes, or all ingests when none is given.
	ListStatuses(ctx context.Context, prefixes ...string) ([]Status, error)
	// Abort discards the ingest with this ref, or returns an error that
	// matches errdefs.ErrNotFound. It fails with errdefs.ErrUnavailable while
	// a writer holds the ref.
	Abort(ctx context.Context, ref string) error
}

// Store is a complete content store.
//
// Implementations are safe for concurrent use. Maps and slices they return
// are copies the caller may change, and a failed Update changes nothing.
type Store interface {
	Manager
	Provider
	IngestManager
	Ingester
}

// WriterOpts are the settings of [Ingester.Writer], filled by [WriterOpt]s.
type WriterOpts struct {
	// Ref is the ingest key; required. Writers that share a ref share the ingest.
	Ref string
	// Desc is what the writer is expected to produce. A zero Digest or Size means unknown.
	Desc ocispec.Descriptor
}

// WriterOpt sets a [WriterOpts] field.
type WriterOpt func(*WriterOpts) error

// WithRef sets the ingest key. Use a key that is stable across restarts
// (for example the blob's digest, or "<repository>@<digest>") so that an
// interrupted download resumes where it stopped.
func WithRef(ref string) WriterOpt {
	return func(o *WriterOpts) error { o.Ref = ref; return nil }
}

// WithDescriptor tells the store what the writer will produce: it records the
// expected size and digest, and lets the store answer AlreadyExists up front.
func WithDescriptor(desc ocispec.Descriptor) WriterOpt {
	return func(o *WriterOpts) error { o.Desc = desc; return nil }
}

// CommitOpt changes the [Info] a commit records.
type CommitOpt func(*Info) error

// WithLabels adds labels to the committed blob, on top of any it has.
func WithLabels(labels map[string]string) CommitOpt {
	return func(info *Info) error {
		if len(labels) == 0 {
			return nil
		}
		if info.Labels == nil {
			info.Labels = make(map[string]string, len(labels))
		}
		for k, v := range labels {
			info.Labels[k] = v
		}
		return nil
	}
}

// ApplyWriterOpts returns the settings the options describe. It is for store
// implementations.
func ApplyWriterOpts(opts ...WriterOpt) (WriterOpts, error) {
	var wo WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return WriterOpts{}, err
		}
	}
	return wo, nil
}

// ApplyUpdate applies an [Manager.Update] request to the labels a blob has
// and returns the new labels. It is for store implementations, so that all of
// them read fieldpaths the same way.
func ApplyUpdate(have map[string]string, info Info, fieldpaths ...string) (map[string]string, error) {
	if len(fieldpaths) == 0 {
		return cloneLabels(info.Labels), nil
	}
	out := cloneLabels(have)
	for _, fp := range fieldpaths {
		switch {
		case fp == "labels":
			out = cloneLabels(info.Labels)
		case strings.HasPrefix(fp, "labels.") && len(fp) > len("labels."):
			key := strings.TrimPrefix(fp, "labels.")
			if v := info.Labels[key]; v != "" {
				if out == nil {
					out = map[string]string{}
				}
				out[key] = v
			} else {
				delete(out, key)
			}
		default:
			return nil, invalidf("update %s: cannot update field %q", info.Digest, fp)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// ApplyCommitOpts returns the Info the options describe, starting from info.
// It is for store implementations.
func ApplyCommitOpts(info Info, opts ...CommitOpt) (Info, error) {
	info.Labels = cloneLabels(info.Labels)
	for _, o := range opts {
		if err := o(&info); err != nil {
			return Info{}, err
		}
	}
	return info, nil
}

func cloneLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
