package unpack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// Limits applied when no option overrides them.
const (
	defaultMaxLayerSize  = 64 << 30  // uncompressed bytes per layer
	defaultMaxExpansion  = 500       // uncompressed bytes per compressed byte
	expansionAllowance   = 16 << 20  // uncompressed bytes never counted against the ratio
	defaultMaxTarEntries = 2_000_000 // tar entries per layer
	applyBufferSize      = 1 << 20
)

// ApplyResult describes a layer that [Apply] applied.
type ApplyResult struct {
	// DiffID is the digest of the whole uncompressed layer stream, tar
	// headers and trailing padding included: the value an image config
	// lists in rootfs.diff_ids. It uses the algorithm of the digest given to
	// [WithDiffID], else SHA-256.
	DiffID digest.Digest
	// Size is the length of the uncompressed layer stream in bytes.
	Size int64
	// Skipped lists, in stream order, the entries or attributes that Apply
	// left out on purpose, such as devices when unprivileged. It is nil when
	// nothing was left out.
	Skipped []Skip
}

// Skip names an entry, or an attribute of one, that [Apply] did not create.
type Skip struct {
	// Name is the entry's path relative to the root, slash-separated and
	// cleaned, without a leading slash.
	Name string
	// Reason says what was left out and why, such as
	// "char device: unprivileged" or "xattr trusted.x: namespace not applied".
	Reason string
}

// ApplyOption configures [Apply].
type ApplyOption func(*applyConfig)

type applyConfig struct {
	diffID       digest.Digest
	maxSize      int64
	maxRatio     int64
	maxEntries   int64
	ownership    func(uid, gid int) (int, int, error)
	unprivileged bool
	sync         bool
	goGzip       bool        // never an external gzip decompressor
	ahead        *aheadLayer // the layer, decompressed ahead: see withAhead
}

// withAhead tells Apply that its reader is l's stream: the uncompressed
// layer whose digest WithDiffID gives, checked as it was written, so that
// it is not hashed again, and whose large files l holds apart, to be
// linked into place rather than copied.
func withAhead(l *aheadLayer) ApplyOption {
	return func(c *applyConfig) { c.ahead = l }
}

// WithDiffID makes [Apply] check the uncompressed digest of the layer
// against d once the whole stream is read, and fail with a
// [*DiffIDMismatchError] when they differ. The digest's algorithm is the
// one computed. The empty digest, the default, checks nothing.
func WithDiffID(d digest.Digest) ApplyOption {
	return func(c *applyConfig) { c.diffID = d }
}

// WithMaxSize bounds the uncompressed layer: both the bytes of the
// uncompressed stream and the total size of the regular files it holds
// (which differ for sparse files, whose holes the stream does not carry).
// Going over fails [Apply] with a *content.LimitError, which matches
// errdefs.ErrResourceExhausted. n == 0 means the default of 64 GiB; n < 0
// means no limit.
func WithMaxSize(n int64) ApplyOption {
	return func(c *applyConfig) { c.maxSize = n }
}

// WithMaxRatio bounds how far a compressed layer may expand, to stop
// decompression bombs: the uncompressed stream may hold at most r bytes
// per compressed byte read, plus 16 MiB that are never counted against the
// ratio (so small, very compressible layers pass). Going over fails [Apply]
// with a *content.LimitError, which matches errdefs.ErrResourceExhausted.
// Uncompressed layers are not checked. r == 0 means the default of 500;
// r < 0 means no limit.
func WithMaxRatio(r int) ApplyOption {
	return func(c *applyConfig) { c.maxRatio = int64(r) }
}

// WithMaxEntries bounds the number of tar entries in the layer, whiteouts
// included. Going over fails [Apply] with a *content.LimitError, which
// matches errdefs.ErrResourceExhausted. n == 0 means the default of
// 2,000,000; n < 0 means no limit.
func WithMaxEntries(n int) ApplyOption {
	return func(c *applyConfig) { c.maxEntries = int64(n) }
}

// WithOwnership maps the uid and gid an entry records to the ones it gets,
// as a user-namespace ID map does; an error from f fails [Apply]. Ownership
// is only applied when [Apply] runs privileged (effective uid 0, and no
// [WithUnprivileged]). If f is nil, the default, the recorded IDs are used
// as they are.
func WithOwnership(f func(uid, gid int) (int, int, error)) ApplyOption {
	return func(c *applyConfig) { c.ownership = f }
}

// WithUnprivileged makes [Apply] behave as it does for a caller without
// privileges, even when the effective uid is 0: ownership is not applied
// (files belong to the caller), char and block devices and the
// security.capability xattr are left out and reported in
// [ApplyResult].Skipped. The default is to detect privileges from the
// effective uid.
func WithUnprivileged() ApplyOption {
	return func(c *applyConfig) { c.unprivileged = true }
}

// WithSync makes [Apply] flush the filesystem that holds the root to
// stable storage once the layer is applied (syncfs(2) on Linux, an fsync of
// the root directory elsewhere). The default is not to sync: files are not
// fsynced one by one in any case.
func WithSync() ApplyOption {
	return func(c *applyConfig) { c.sync = true }
}

// WithExternalDecompressor says whether [Apply] may decompress gzip layers
// with igzip (from Intel's ISA-L: the Debian package isal) when it is on
// PATH, looked up once per process. igzip decodes about twice as fast as
// Go's fastest decoder, on a core of its own. (unpigz is not used: it
// decodes no faster than Go.) The program runs as a child process, fed the
// compressed stream through a pipe by a goroutine of Apply; Apply stops it
// and waits for it before returning. The DiffID is computed on what it
// outputs, as on Go's output.
//
// Two things differ: bytes after the last complete gzip member are ignored
// rather than refused (they are not part of the DiffID either way), and
// [WithMaxRatio] counts the compressed bytes handed to the program, which
// may be a MiB or so ahead of those it has decoded.
//
// The default is on: igzip is used when it is found, and Go's decoder
// (github.com/klauspost/compress) otherwise, or when on is false.
func WithExternalDecompressor(on bool) ApplyOption {
	return func(c *applyConfig) { c.goGzip = !on }
}

var applyBuffers = sync.Pool{New: func() any {
	b := make([]byte, applyBufferSize)
	return &b
}}

// Apply reads a layer from r and applies it to the directory root, which
// holds the layers below it (or nothing, for the first layer). It returns
// the layer's DiffID and uncompressed size once the whole stream, trailing
// padding included, has been read.
//
// The stream may be a plain tar or a tar compressed with gzip or zstd; the
// compression is detected from its first bytes. Entries follow the OCI
// image-spec layer rules: a ".wh.<name>" entry removes <name> from the
// layers below, a ".wh..wh..opq" entry empties its directory of what the
// layers below put there, and neither removes what this layer adds,
// whatever the order of the entries. The last of duplicate entries wins.
// See the package documentation for how names, links, ownership, xattrs
// and devices are treated.
//
// Nothing outside root is created, changed or removed. An entry whose
// name or hardlink target climbs out of the root with "..", a whiteout of
// ".." and an entry that would replace the root itself fail Apply with an
// [*UnsafeEntryError]. Apply does not roll back: after an error, root holds
// part of the layer and should be discarded.
//
// Apply fails with a [*DiffIDMismatchError] when [WithDiffID] was given and
// the digest differs, and with a *content.LimitError when the layer goes
// over a limit ([WithMaxSize], [WithMaxRatio], [WithMaxEntries]). On error
// the result is the zero value.
//
// Apply reads r from a goroutine of its own, so that decompressing and
// hashing the stream run beside the writing of files, and stops reading it
// before returning; it does not close r.
// Several Apply calls may run at once on different roots; two on the same
// root at once leave it undefined.
func Apply(ctx context.Context, root string, r io.Reader, opts ...ApplyOption) (ApplyResult, error) {
	cfg := newApplyConfig(opts)

	alg := digest.SHA256
	if cfg.diffID != "" {
		if err := cfg.diffID.Validate(); err != nil {
			return ApplyResult{}, fmt.Errorf("apply layer: expected diffID %q: %w: %w", cfg.diffID, errdefs.ErrInvalidArgument, err)
		}
		alg = cfg.diffID.Algorithm()
	}
	if err := ctx.Err(); err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer to %s: %w", root, err)
	}

	rt, err := os.OpenRoot(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ApplyResult{}, fmt.Errorf("apply layer: open root: %w: %w", errdefs.ErrNotFound, err)
		}
		return ApplyResult{}, fmt.Errorf("apply layer: open root: %w", err)
	}
	defer rt.Close()

	var gzipCmd string
	if !cfg.goGzip {
		gzipCmd = gzipCommand()
	}
	var stream *layerStream
	if cfg.ahead != nil {
		alg = "" // not hashed: see withAhead
		stream = newVerifiedStream(cfg.ahead.stream)
	} else if stream, err = newLayerStream(r, alg, cfg.maxSize, cfg.maxRatio, gzipCmd); err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer to %s: %w", root, err)
	}
	defer stream.Close()

	bufp := applyBuffers.Get().(*[]byte)
	defer applyBuffers.Put(bufp)

	t, err := newTree(rt)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer to %s: %w", root, err)
	}
	defer t.close()
	a := newApplier(t, &cfg, stream, *bufp)
	defer a.stopWriters()
	if err := a.applyTar(ctx); err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer to %s: %w", root, err)
	}
	// The diffID covers the whole uncompressed stream: read what follows
	// the end-of-archive marker (padding to the record size, usually).
	if err := stream.drain(); err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer to %s: %w", root, err)
	}
	if err := a.finish(); err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer to %s: %w", root, err)
	}

	res := ApplyResult{DiffID: cfg.diffID, Size: stream.size(), Skipped: a.skipped}
	if alg != "" {
		res.DiffID = stream.digest()
	}
	if cfg.diffID != "" && res.DiffID != cfg.diffID {
		return ApplyResult{}, fmt.Errorf("apply layer to %s: %w", root, &DiffIDMismatchError{Expected: cfg.diffID, Actual: res.DiffID})
	}
	if cfg.sync {
		if err := t.sync(); err != nil {
			return ApplyResult{}, fmt.Errorf("apply layer to %s: sync: %w", root, err)
		}
	}
	return res, nil
}

// newApplyConfig applies opts to the defaults.
func newApplyConfig(opts []ApplyOption) applyConfig {
	cfg := applyConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.maxSize = applyLimit(cfg.maxSize, defaultMaxLayerSize)
	cfg.maxRatio = applyLimit(cfg.maxRatio, defaultMaxExpansion)
	cfg.maxEntries = applyLimit(cfg.maxEntries, defaultMaxTarEntries)
	return cfg
}

// applyLimit maps an option value to a limit: 0 is the default and a
// negative value means none (0 inside the package).
func applyLimit(v, def int64) int64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}
