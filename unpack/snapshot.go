package unpack

import (
	"context"
	"maps"
	"time"
)

// Snapshotter keeps the root filesystems of images and containers as
// snapshots: each layer of an image is a committed snapshot whose parent is
// the layer below it, named by its chainID, and a container's root is an
// active snapshot prepared on top of the image's top layer. The model is
// containerd's snapshots.Snapshotter.
//
// Snapshots are found by key. Active snapshots, views and committed
// snapshots share one key space: a key names at most one snapshot of any
// kind. "name" below is the key of a committed snapshot.
//
// The life of a layer: Prepare an active snapshot on its parent (the empty
// parent "" for the first layer), mount it or use its directory, apply the
// layer, then Commit it under its chainID, which removes the active key. A
// failed apply is discarded with Remove.
//
// Errors are classified with github.com/containerd/errdefs: a key that
// names no snapshot matches errdefs.ErrNotFound; Prepare, View or Commit to
// a key that exists, errdefs.ErrAlreadyExists; a parent that is not
// committed, errdefs.ErrInvalidArgument; Commit of a view or Mounts of a
// committed snapshot, and Remove of a snapshot that is still the parent of
// another, errdefs.ErrFailedPrecondition.
//
// Implementations are safe for concurrent use.
type Snapshotter interface {
	// Stat returns what is known of the snapshot key, of any kind.
	Stat(ctx context.Context, key string) (Info, error)
	// Usage returns the disk space and inodes the snapshot key takes.
	Usage(ctx context.Context, key string) (Usage, error)
	// Mounts returns the mounts of the active snapshot or view key again,
	// as Prepare or View returned them.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Prepare creates the active snapshot key, writable, holding what the
	// committed snapshot parent holds, or nothing when parent is "". The
	// mounts it returns give access to the snapshot.
	Prepare(ctx context.Context, key, parent string, opts ...SnapshotOption) ([]Mount, error)
	// View creates the view key: a read-only active snapshot of the
	// committed snapshot parent (or of an empty tree when parent is "")
	// that cannot be committed.
	View(ctx context.Context, key, parent string, opts ...SnapshotOption) ([]Mount, error)
	// Commit turns the active snapshot key into the committed snapshot
	// name, with the same parent and content, and removes key.
	Commit(ctx context.Context, name, key string, opts ...SnapshotOption) error
	// Remove deletes the snapshot key, of any kind, once no other snapshot
	// has it as its parent.
	Remove(ctx context.Context, key string) error
	// Walk calls fn with the Info of every snapshot, in no particular
	// order. An error from fn stops the walk and is returned.
	Walk(ctx context.Context, fn WalkFunc) error
}

// WalkFunc is called by [Snapshotter].Walk for each snapshot.
type WalkFunc func(ctx context.Context, info Info) error

// Kind is the kind of a snapshot. The zero value is KindUnknown, which no
// snapshot has.
type Kind uint8

// The kinds of snapshot.
const (
	// KindUnknown is the zero Kind.
	KindUnknown Kind = iota
	// KindView is a read-only active snapshot, made by View; it cannot be
	// committed.
	KindView
	// KindActive is a writable snapshot made by Prepare, until it is
	// committed.
	KindActive
	// KindCommitted is an immutable snapshot made by Commit, which may be
	// the parent of others.
	KindCommitted
)

// String returns "view", "active", "committed" or "unknown".
func (k Kind) String() string {
	switch k {
	case KindView:
		return "view"
	case KindActive:
		return "active"
	case KindCommitted:
		return "committed"
	}
	return "unknown"
}

// parseKind reads what Kind.String wrote; anything else is KindUnknown.
func parseKind(s string) Kind {
	for _, k := range []Kind{KindView, KindActive, KindCommitted} {
		if s == k.String() {
			return k
		}
	}
	return KindUnknown
}

// Info describes a snapshot.
type Info struct {
	// Kind is what the snapshot is: active, a view, or committed.
	Kind Kind
	// Name is the snapshot's key.
	Name string
	// Parent is the key of the committed snapshot it descends from, or ""
	// for a snapshot that started empty.
	Parent string
	// Labels are free-form key/value pairs set with [WithLabels]. A nil map
	// means no labels.
	Labels map[string]string
	// Created is when the snapshot was made: by Prepare or View, or by
	// Commit for a committed snapshot.
	Created time.Time
	// Updated is when the snapshot last changed; Created until then.
	Updated time.Time
}

// Usage is what a snapshot takes on disk.
type Usage struct {
	// Size is the disk space used, in bytes: allocated blocks, each file
	// linked more than once counted once.
	Size int64
	// Inodes is the number of files, directories, links and other inodes.
	Inodes int64
}

// Mount says how to reach a snapshot's files, in the form of a mount(8)
// call or an OCI runtime spec mount.
type Mount struct {
	// Type is the filesystem type, such as "bind" or "overlay".
	Type string
	// Source is what is mounted: the directory of a bind mount.
	Source string
	// Options are mount options such as "rbind", "rw" or "ro".
	Options []string
}

// SnapshotOption sets properties of a snapshot when Prepare, View or
// Commit creates it.
type SnapshotOption func(*Info) error

// WithLabels adds labels to the snapshot created, on top of any it has:
// Commit keeps the active snapshot's labels and adds these.
func WithLabels(labels map[string]string) SnapshotOption {
	return func(info *Info) error {
		if len(labels) == 0 {
			return nil
		}
		if info.Labels == nil {
			info.Labels = make(map[string]string, len(labels))
		}
		maps.Copy(info.Labels, labels)
		return nil
	}
}
