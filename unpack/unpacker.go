package unpack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

// Option configures an [Unpacker], [Unpack] and [ToDir].
type Option func(*config)

type config struct {
	platforms    platforms.MatchComparer
	applyOpts    []ApplyOption
	fetchSkipped bool
	fetchWindow  int64 // < 0: no window
	ahead        int   // layers decompressed ahead; <= 0: none
}

// defaultFetchWindow is the bytes of layers an Unpacker lets download at
// once, beyond the first.
const defaultFetchWindow = 64 << 20

func newConfig(opts []Option) config {
	cfg := config{fetchWindow: defaultFetchWindow, ahead: defaultDecompressAhead}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// WithPlatforms says which images to unpack. [Unpack] and [ToDir], given
// an index, unpack its best manifest for m, across nested indexes; given a
// manifest, they check its platform against m. Their default, and nil, is
// platforms.Default() for an index, and any platform for a manifest.
//
// An [Unpacker] unpacks only the images whose platform m matches (the one
// the manifest's descriptor names, else the one its config names), and
// lets the others pass, their layers fetched but not applied. Its default,
// and nil, is to unpack every image manifest the pipeline passes it: the
// pipeline's platform filter has chosen them.
func WithPlatforms(m platforms.MatchComparer) Option {
	return func(c *config) { c.platforms = m }
}

// WithApplyOptions passes opts to [Apply] for every layer, after the
// defaults: limits, ownership mapping, WithUnprivileged, WithSync. The
// DiffID to check always comes from the image config: a [WithDiffID] among
// opts is overridden. Several calls add up.
func WithApplyOptions(opts ...ApplyOption) Option {
	return func(c *config) { c.applyOpts = append(c.applyOpts, opts...) }
}

// WithFetchSkipped makes an [Unpacker] let the pipeline fetch the layers
// it does not need because their snapshots exist, so that the content store
// holds the whole image. By default they are not fetched. [Unpack] and
// [ToDir] ignore it.
func WithFetchSkipped() Option {
	return func(c *config) { c.fetchSkipped = true }
}

// WithFetchWindow sets how an [Unpacker] orders the downloads of the
// layers it applies: it lets them download bottom first, starting the next
// layer's while those started and not yet fetched hold fewer than n bytes,
// and always at least one. The bottom layer is then whole, and applied,
// while the layers above it still download, rather than when all of them
// end together. Small layers still download several at once (as many as
// the pull's concurrency allows); large ones one after the other, each at
// the speed of the connections it gets. A layer whose download feeds its
// decompression ahead ([WithDecompressAhead]) goes at that
// decompression's pace, and does not count against the window: the next
// layers start beside it. The default is 64 MiB; n < 0 lets
// every layer download at once, in no set order. [Unpack] and [ToDir], which
// read layers already in the store, have no use for it.
func WithFetchWindow(n int64) Option {
	return func(c *config) {
		if n == 0 {
			n = defaultFetchWindow
		}
		c.fetchWindow = n
	}
}

// WithDecompressAhead sets how many layers an [Unpacker] decompresses
// ahead of the one it applies. Layers are applied in order, one at a time,
// and a gzip stream decodes on one core; with n > 0, the next n layers
// decompress meanwhile, on other cores, into unnamed temporary files
// (O_TMPFILE) in the target's file system, with their size and ratio
// limits and their DiffID checked. A layer whose download starts while it
// is among those n decompresses from the download itself: the wrapped
// handler downloads it with a context in which [content.Copy] gives the
// decompression every byte it writes ([content.WithTee]), through 4 MiB
// of buffers, so that the layer is not read back from the store; the
// download waits when the decompression falls that far behind. Other
// layers decompress from the store once their blobs are there, as does a
// layer whose download does not give its whole blob (the store had it, or
// the download resumed an earlier ingest). Either way, nothing of a layer
// is applied before its blob is committed to the store. The content of each
// regular file of 1 MiB or more goes to a file of its own (up to 256 per
// layer, and a sixteenth of the process's limit of open files, for each is
// open until the layer applies), the rest of the tar stream to one more. When its turn comes, the
// layer is applied from those files without hashing it again: its large
// files are linked into place (linkat(2)), not copied, so that their
// content is written once; where a file cannot be linked (another file
// system inside the target, a directory whose new files get another group
// or a default ACL), it is copied. Files not linked are gone once closed,
// a crash included. The cost is disk space, up to the uncompressed size of
// n layers beside the image, and a second write and read of what a layer
// holds besides its large files. The large files leave the page cache as
// they are written; while the rest waits its turn, its pages sit in the
// page cache, charged to the memory cgroup of the process that unpacks.
//
// It applies to [NewDirUnpacker] and to Unpackers whose snapshotter is a
// [*Directory], on Linux; other snapshotters do not say where there is
// room. A decompression ahead that fails for any reason is dropped, and the
// layer is applied from its blob, which reports the failure as usual. The
// default is 2, which on 2 cores unpacked an image of four 256 MiB layers
// in 0.88 of the time 1 took, and 3 no faster; n < 0 turns it off.
// [Unpack] and [ToDir] ignore it.
func WithDecompressAhead(n int) Option {
	return func(c *config) {
		if n == 0 {
			n = defaultDecompressAhead
		}
		c.ahead = n
	}
}

// Unpacker unpacks images into a [Snapshotter] while they download: it
// wraps the handler of a pull, and applies each layer, in order, as soon as
// its blob is committed to the content store and the layers below it are
// applied, while later layers still download. [NewDirUnpacker] makes one
// that flattens an image into a plain directory instead.
//
// Wrap the pull's handler chain, outermost, and run it with handlers.Dispatch
// (or handlers.Walk). The wrapper then works as containerd's unpacker does:
//
//   - For an image manifest (one whose config is an image config) whose
//     layers the wrapped handler returns among its children, it returns the
//     children without the layers. (A manifest the wrapped handler returns
//     without its layers, as a pipeline that keeps only the metadata of
//     other platforms does, is not unpacked.)
//   - For that manifest's config, once the wrapped handler has fetched it,
//     it reads the config, computes the layers' chainIDs, and returns as the
//     config's children the layers whose snapshots are missing, bottom
//     first, as many as [WithFetchWindow] lets download at once; the layers
//     below the highest committed chainID are never fetched (unless
//     [WithFetchSkipped]), which is how a pull learns which blobs it can skip.
//   - For each of those layers, once the wrapped handler has fetched it, it
//     returns as the layer's children the layers the window now lets
//     download and, when the layers below are applied, a descriptor of its
//     own (media type "application/vnd.pullkit.unpack.apply"), which only
//     the wrapper sees: handling it applies the layer onto a snapshot
//     prepared on the layer below, verifies its DiffID against the config's
//     rootfs.diff_ids, and commits the snapshot under the layer's chainID;
//     then it applies any later layers already fetched, and returns as
//     its children the layers the window then lets download. A layer
//     fetched early waits, committed in the store, for the one that applies
//     the layer below it to apply it too.
//
// So every apply happens inside a handler call, beside the downloads that
// go on: when Dispatch returns, every image whose layers it fetched is
// unpacked, and an apply error is Dispatch's error. Layers stream from the
// store's ReaderAt; memory does not grow with layer sizes.
//
// A layer that fails, its DiffID mismatching included, leaves no snapshot:
// its active snapshot is removed and nothing is committed under its
// chainID (the layers below it stay committed). Two unpacks of the same layer onto one Snapshotter in this
// process, through this Unpacker or another one or [Unpack], apply it once:
// the second waits for the first, and then finds it committed. Unpacks in
// other processes apply it each, and the one that commits second finds the
// chainID committed and discards its copy.
//
// Use an Unpacker for one pull. It is safe for concurrent use, as Dispatch
// requires.
type Unpacker struct {
	sn  Snapshotter
	dir string // NewDirUnpacker's directory; "" with a snapshotter
	p   content.Provider
	cfg config

	mu       sync.Mutex
	jobs     []*unpackJob // in the order the manifests were seen
	byDigest map[digest.Digest]*unpackJob
	byConfig map[digest.Digest][]*unpackJob
	byLayer  map[digest.Digest][]*unpackJob
}

// Result describes an image an [Unpacker] unpacked.
type Result struct {
	// Manifest is the image's manifest.
	Manifest ocispec.Descriptor
	// Config is the image's config.
	Config ocispec.Descriptor
	// ChainID is the name of the committed snapshot that holds the whole
	// image: the parent to Prepare a container's root on. It is "" for an
	// image with no layers. For [NewDirUnpacker], it is computed from the
	// DiffIDs, with no snapshot behind it.
	ChainID digest.Digest
	// Layers describes the layers, bottom first.
	Layers []LayerResult
}

// LayerResult describes one layer of an unpacked image.
type LayerResult struct {
	// Layer is the layer's descriptor in the manifest.
	Layer ocispec.Descriptor
	// DiffID is the digest of the uncompressed layer, from the config, and
	// verified when the layer was applied.
	DiffID digest.Digest
	// ChainID is the name of the committed snapshot that holds this layer
	// and those below it (for [NewDirUnpacker], computed only).
	ChainID digest.Digest
	// Applied is true when this unpack applied the layer, and false when
	// its snapshot was committed already, or by a concurrent unpack.
	Applied bool
}

type unpackJob struct {
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor

	// Set once, when the config is handled; read without the lock after.
	started  bool
	ignored  bool // platform not wanted
	diffIDs  []digest.Digest
	chainIDs []digest.Digest

	// Guarded by Unpacker.mu.
	fetched  []bool
	applied  []bool
	next     int  // the next layer to apply
	released int  // layers below this one were returned to be fetched
	applying bool // a handler call is applying this image's layers
	done     bool
	err      error

	ahead        map[int]*ahead // layers decompressed ahead, by index
	aheadRunning int            // decompressions ahead under way
}

// applyMediaType marks the descriptors an Unpacker returns as children for
// itself: handling one applies the fetched layers of the image whose
// manifest digest it carries. Only the Unpacker's own wrapper sees them,
// since it is the outermost.
const applyMediaType = "application/vnd.pullkit.unpack.apply"

// NewUnpacker returns an Unpacker that unpacks into sn the layers it reads
// from p, the store the pull writes to. Neither may be nil.
func NewUnpacker(sn Snapshotter, p content.Provider, opts ...Option) *Unpacker {
	return &Unpacker{
		sn:       sn,
		p:        p,
		cfg:      newConfig(opts),
		byDigest: map[digest.Digest]*unpackJob{},
		byConfig: map[digest.Digest][]*unpackJob{},
		byLayer:  map[digest.Digest][]*unpackJob{},
	}
}

// NewDirUnpacker returns an Unpacker that flattens the image a pull fetches
// into the plain directory dir, as [ToDir] does, but while it downloads:
// each layer is applied straight into dir as soon as its blob is committed
// to p and the layers below it are applied, in order, its DiffID verified
// against the image config. It works as the snapshot Unpacker does
// otherwise (Wrap it outermost; every apply happens inside a handler call),
// with these differences:
//
//   - It unpacks one image: the first image manifest the wrapped handler
//     returns with its layers (and that [WithPlatforms] does not exclude).
//     Later image manifests pass through, their layers fetched but not
//     applied.
//   - No snapshot is looked up or made: every layer is fetched and applied,
//     and [WithFetchSkipped] does nothing. [Result].ChainID and
//     [LayerResult].ChainID are computed from the DiffIDs, with no
//     snapshot behind them, and every layer is Applied.
//   - dir is created, with mode 0755, when the image's config is handled;
//     what it holds already is treated as a layer below the image's.
//
// Nothing is written outside dir: a layer that would reach out of it fails
// with an [*UnsafeEntryError]. There is no roll back: after an error, dir
// holds part of the image and should be discarded. Neither dir nor p may be
// empty or nil.
func NewDirUnpacker(dir string, p content.Provider, opts ...Option) *Unpacker {
	u := NewUnpacker(nil, p, opts...)
	u.dir = dir
	return u
}

// Wrap returns h wrapped to unpack the images it fetches, as the
// [Unpacker] documentation describes. It must be the outermost wrapper of
// the pull's chain, so that handlers such as handlers.SetChildrenLabels see
// a manifest's layers among its children.
func (u *Unpacker) Wrap(h handlers.Handler) handlers.Handler {
	return handlers.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if desc.MediaType == applyMediaType {
			return u.applyHandled(ctx, desc)
		}
		hctx, teed := u.teeAhead(ctx, desc)
		children, err := h.Handle(hctx, desc)
		teed(err)
		if err != nil {
			return children, err
		}
		if handlers.IsManifest(desc.MediaType) {
			return u.manifestHandled(ctx, desc, children)
		}
		more, err := u.configHandled(ctx, desc)
		if err != nil {
			return nil, err
		}
		return append(append(children, more...), u.layerHandled(ctx, desc)...), nil
	})
}

// Results returns what the Unpacker unpacked, one Result for each image
// manifest the wrapped handler handled with its layers (leaving out those
// [WithPlatforms] excluded), in the order it handled them. Call it once
// Dispatch or Walk has returned.
//
// The error is the first image's error: the one an apply failed with, or,
// for an image whose config or some of whose layers the wrapped handler
// never handled (it pruned them, or the walk stopped early), an error that
// matches errdefs.ErrFailedPrecondition. Only complete images are in the
// slice.
func (u *Unpacker) Results() ([]Result, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var (
		out   []Result
		first error
	)
	for _, j := range u.jobs {
		u.dropAhead(j) // left by a pull that failed
		var err error
		switch {
		case j.ignored:
			continue
		case j.err != nil:
			err = j.err
		case !j.started:
			err = fmt.Errorf("unpack %s: its config %s was not handled: %w", j.manifest.Digest, j.config.Digest, errdefs.ErrFailedPrecondition)
		case !j.done:
			err = fmt.Errorf("unpack %s: layer %d (%s) was not handled: %w", j.manifest.Digest, j.next, j.layers[j.next].Digest, errdefs.ErrFailedPrecondition)
		}
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		r := Result{Manifest: j.manifest, Config: j.config}
		if n := len(j.layers); n > 0 {
			r.ChainID = j.chainIDs[n-1]
		}
		for i, l := range j.layers {
			r.Layers = append(r.Layers, LayerResult{Layer: l, DiffID: j.diffIDs[i], ChainID: j.chainIDs[i], Applied: j.applied[i]})
		}
		out = append(out, r)
	}
	return out, first
}

// manifestHandled registers an image manifest and takes its layers out of
// its children: the config's handling returns those that are needed.
func (u *Unpacker) manifestHandled(ctx context.Context, desc ocispec.Descriptor, children []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if desc.Platform != nil && u.cfg.platforms != nil && !u.cfg.platforms.Match(*desc.Platform) {
		return children, nil
	}
	m, err := handlers.Manifest(ctx, u.p, desc, platforms.All)
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", desc.Digest, err)
	}
	if !isImageConfig(m.Config.MediaType) {
		return children, nil // an artifact, not an image
	}
	layerSet := map[digest.Digest]bool{}
	for _, l := range m.Layers {
		layerSet[l.Digest] = true
	}
	// Unpack only the images whose layers the pipeline would fetch: one
	// that keeps only metadata for some manifests has left their layers out.
	for _, l := range m.Layers {
		if !slices.ContainsFunc(children, func(c ocispec.Descriptor) bool { return c.Digest == l.Digest }) {
			return children, nil
		}
	}

	u.mu.Lock()
	if _, ok := u.byDigest[desc.Digest]; !ok && u.dir != "" && len(u.jobs) > 0 {
		// A directory holds one image: this one passes through.
		u.mu.Unlock()
		return children, nil
	}
	if _, ok := u.byDigest[desc.Digest]; !ok {
		j := &unpackJob{manifest: desc, config: m.Config, layers: m.Layers}
		u.jobs = append(u.jobs, j)
		u.byDigest[desc.Digest] = j
		u.byConfig[m.Config.Digest] = append(u.byConfig[m.Config.Digest], j)
	}
	u.mu.Unlock()

	return slices.DeleteFunc(slices.Clone(children), func(c ocispec.Descriptor) bool {
		return c.Digest != m.Config.Digest && layerSet[c.Digest]
	}), nil
}

// configHandled starts the images whose config desc is, and returns the
// layers to fetch for them.
func (u *Unpacker) configHandled(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	u.mu.Lock()
	var start []*unpackJob
	for _, j := range u.byConfig[desc.Digest] {
		if !j.started {
			j.started = true
			start = append(start, j)
		}
	}
	u.mu.Unlock()

	var fetch []ocispec.Descriptor
	for _, j := range start {
		layers, err := u.start(ctx, j)
		if err != nil {
			err = fmt.Errorf("unpack %s: %w", j.manifest.Digest, err)
			u.mu.Lock()
			j.err = err
			u.mu.Unlock()
			return nil, err
		}
		for _, l := range layers {
			if !slices.ContainsFunc(fetch, func(d ocispec.Descriptor) bool { return d.Digest == l.Digest }) {
				fetch = append(fetch, l)
			}
		}
	}
	return fetch, nil
}

// start reads j's config, finds which layers are unpacked already, and
// returns the layers to fetch.
func (u *Unpacker) start(ctx context.Context, j *unpackJob) ([]ocispec.Descriptor, error) {
	img, _, err := handlers.Config(ctx, u.p, j.manifest, platforms.All)
	if err != nil {
		return nil, err
	}
	if u.cfg.platforms != nil && img.OS != "" && !u.cfg.platforms.Match(img.Platform) {
		u.mu.Lock()
		j.ignored = true
		u.mu.Unlock()
		return j.layers, nil
	}
	diffIDs, err := handlers.DiffIDs(ctx, u.p, j.manifest, platforms.All)
	if err != nil {
		return nil, err
	}
	if err := checkLayers(j.layers); err != nil {
		return nil, err
	}
	chainIDs := ChainIDs(diffIDs)
	var have int
	if u.dir != "" {
		if err := os.MkdirAll(u.dir, 0o755); err != nil {
			return nil, err
		}
	} else if have, err = committedPrefix(ctx, u.sn, chainIDs); err != nil {
		return nil, err
	}

	n := len(j.layers)
	u.mu.Lock()
	defer u.mu.Unlock()
	j.diffIDs, j.chainIDs = diffIDs, chainIDs
	j.fetched, j.applied = make([]bool, n), make([]bool, n)
	j.next, j.released = have, have
	j.done = have == n
	for _, l := range j.layers[have:] {
		if !slices.Contains(u.byLayer[l.Digest], j) {
			u.byLayer[l.Digest] = append(u.byLayer[l.Digest], j)
		}
	}
	var fetch []ocispec.Descriptor
	if u.cfg.fetchSkipped && u.dir == "" {
		fetch = slices.Clone(j.layers[:have])
	}
	return append(fetch, u.release(j)...), nil
}

// release returns the layers of j to fetch next, bottom first, within the
// fetch window. A layer whose download feeds a decompression ahead (see
// teeAhead) does not count against the window: it downloads at the pace
// of that decompression, on a core of its own, and holding the next
// layers back behind it would leave the other cores idle. The caller holds
// u.mu.
func (u *Unpacker) release(j *unpackJob) []ocispec.Descriptor {
	var (
		out      []ocispec.Descriptor
		inflight int64
		pending  int
	)
	for i := j.next; i < j.released; i++ {
		// A layer not yet fetched is decompressing ahead only from its
		// download: startAhead waits for the blob.
		if !j.fetched[i] && j.ahead[i] == nil {
			inflight += max(j.layers[i].Size, 0)
			pending++
		}
	}
	for j.released < len(j.layers) {
		if pending > 0 && u.cfg.fetchWindow >= 0 && inflight >= u.cfg.fetchWindow {
			break
		}
		i := j.released
		j.released++
		l := j.layers[i]
		if j.fetched[i] || slices.ContainsFunc(j.layers[j.next:i], func(d ocispec.Descriptor) bool { return d.Digest == l.Digest }) {
			continue // fetched already, or on its way for a lower layer
		}
		out = append(out, l)
		inflight += max(l.Size, 0)
		pending++
	}
	return out
}

// layerHandled records that the blob desc is in the store, and returns
// what to handle next for every image that needs it: the layers the fetch
// window now lets download, and, for an image whose next layer to apply is
// now fetched, a descriptor whose handling applies it (see applyHandled).
// The apply runs in a handler call of its own so that this one returns, and
// the downloads it releases start, at once.
func (u *Unpacker) layerHandled(ctx context.Context, desc ocispec.Descriptor) []ocispec.Descriptor {
	u.mu.Lock()
	defer u.mu.Unlock()
	var next []ocispec.Descriptor
	for _, j := range u.byLayer[desc.Digest] {
		if j.done || j.err != nil {
			continue
		}
		for i := j.next; i < len(j.layers); i++ {
			if j.layers[i].Digest == desc.Digest {
				j.fetched[i] = true
			}
		}
		u.startAhead(ctx, j)
		if !j.applying && j.fetched[j.next] {
			j.applying = true
			next = append(next, ocispec.Descriptor{MediaType: applyMediaType, Digest: j.manifest.Digest})
		}
		for _, l := range u.release(j) {
			if !slices.ContainsFunc(next, func(d ocispec.Descriptor) bool { return d.Digest == l.Digest }) {
				next = append(next, l)
			}
		}
	}
	return next
}

// applyHandled applies the fetched layers of the image whose manifest
// digest desc carries, as layerHandled asked, and returns the layers the
// fetch window then lets download: those whose downloads now feed
// decompressions ahead no longer count against it (see release).
func (u *Unpacker) applyHandled(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	u.mu.Lock()
	j := u.byDigest[desc.Digest]
	u.mu.Unlock()
	if j == nil {
		return nil, fmt.Errorf("unpack: no image with manifest %s to apply: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	return u.drive(ctx, j)
}

// drive applies j's layers from j.next while they are fetched, and returns
// the layers the fetch window then lets download. The caller has set
// j.applying, which drive clears when it stops.
func (u *Unpacker) drive(ctx context.Context, j *unpackJob) ([]ocispec.Descriptor, error) {
	u.mu.Lock()
	i := j.next
	u.mu.Unlock()
	for {
		var applied bool
		var err error
		if u.dir != "" {
			applied, err = true, u.applyToDir(ctx, j, i)
		} else {
			applied, err = u.applySnapshot(ctx, j, i)
		}
		u.mu.Lock()
		if err != nil {
			j.err = err
			j.applying = false
			u.dropAhead(j)
			u.mu.Unlock()
			return nil, err
		}
		j.applied[i] = applied
		j.next++
		i = j.next
		u.startAhead(ctx, j)
		if i == len(j.layers) || !j.fetched[i] {
			j.done = i == len(j.layers)
			j.applying = false
			next := u.release(j) // none once done: every layer was released
			u.mu.Unlock()
			return next, nil
		}
		u.mu.Unlock()
	}
}

// applyToDir applies layer i of j straight into the Unpacker's directory,
// from the file it was decompressed ahead into, or from its blob.
func (u *Unpacker) applyToDir(ctx context.Context, j *unpackJob, i int) error {
	err := u.withLayer(ctx, j, i, func(src *aheadLayer) error {
		return applyFrom(ctx, u.p, j.layers[i], src, u.dir, append(slices.Clip(u.cfg.applyOpts), WithDiffID(j.diffIDs[i])))
	})
	if err != nil {
		return fmt.Errorf("unpack %s to %s: layer %d (%s): %w", j.manifest.Digest, u.dir, i, j.layers[i].Digest, err)
	}
	return nil
}

// applySnapshot applies layer i of j onto the Unpacker's snapshotter, from
// the file it was decompressed ahead into, or from its blob.
func (u *Unpacker) applySnapshot(ctx context.Context, j *unpackJob, i int) (applied bool, err error) {
	err = u.withLayer(ctx, j, i, func(src *aheadLayer) error {
		applied, err = applyShared(ctx, u.sn, u.p, j.manifest, j.layers, j.diffIDs, j.chainIDs, i, src, u.cfg.applyOpts)
		return err
	})
	return applied, err
}

// withLayer calls fn with layer i of j decompressed ahead, or with nil
// when it was not, and then closes what is left of it.
func (u *Unpacker) withLayer(ctx context.Context, j *unpackJob, i int, fn func(src *aheadLayer) error) error {
	src, err := u.takeAhead(ctx, j, i)
	if err != nil {
		return err
	}
	if src != nil {
		defer src.close()
	}
	return fn(src)
}

// applyFrom applies layer l into dir from src, the layer decompressed
// ahead, or from its blob in p when src is nil.
func applyFrom(ctx context.Context, p content.Provider, l ocispec.Descriptor, src *aheadLayer, dir string, opts []ApplyOption) error {
	if src == nil {
		return applyBlob(ctx, p, l, dir, opts)
	}
	_, err := Apply(ctx, dir, src.stream, append(opts, withAhead(src))...)
	return err
}

// Unpack unpacks the image desc, whose blobs are all in p, into sn, and
// returns the chainID of its top layer: the name of the committed snapshot
// that holds the image. Layers whose snapshots exist are not read. It is
// what an import uses, where the content is complete before unpacking.
//
// desc is a manifest, or an index whose manifest for [WithPlatforms]
// (the host's platform by default) is unpacked; see [Unpacker] for how
// layers are verified and how concurrent unpacks share work. An image with
// no layers has the chainID "". A manifest whose config is not an image
// config is an error that matches errdefs.ErrInvalidArgument.
func Unpack(ctx context.Context, sn Snapshotter, p content.Provider, desc ocispec.Descriptor, opts ...Option) (digest.Digest, error) {
	cfg := newConfig(opts)
	mdesc, err := chooseManifest(ctx, p, desc, cfg.platforms)
	if err != nil {
		return "", fmt.Errorf("unpack %s: %w", desc.Digest, err)
	}
	u := NewUnpacker(sn, p)
	u.cfg = cfg
	u.cfg.platforms = nil // chosen
	// The content is present: the walk only reads children, and applies each
	// layer as the walk reaches it.
	read := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if handlers.IsManifest(d.MediaType) {
			return handlers.ChildrenOf(ctx, p, d)
		}
		return nil, nil
	})
	if err := handlers.Walk(ctx, u.Wrap(read), mdesc); err != nil {
		return "", err
	}
	res, err := u.Results()
	if err != nil {
		return "", err
	}
	if len(res) == 0 {
		return "", fmt.Errorf("unpack %s: manifest %s has no image config: %w", desc.Digest, mdesc.Digest, errdefs.ErrInvalidArgument)
	}
	return res[0].ChainID, nil
}

// chooseManifest returns the manifest to unpack for desc: the best for m
// in an index (m nil meaning the host), or desc itself, checked against m
// when m is set.
func chooseManifest(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m platforms.MatchComparer) (ocispec.Descriptor, error) {
	switch {
	case handlers.IsIndex(desc.MediaType):
		if m == nil {
			m = platforms.Default()
		}
		return handlers.ManifestDescriptor(ctx, p, desc, m)
	case m != nil:
		return handlers.ManifestDescriptor(ctx, p, desc, m)
	case handlers.IsManifest(desc.MediaType):
		return desc, nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("%q is not a manifest or index media type: %w", desc.MediaType, errdefs.ErrInvalidArgument)
}

// checkLayers refuses layers Apply cannot read, such as encrypted ones.
func checkLayers(layers []ocispec.Descriptor) error {
	for i, l := range layers {
		if _, err := handlers.LayerCompression(l.MediaType); err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
	}
	return nil
}

// isImageConfig reports whether mt may be an image config: an OCI or
// Docker config, or the legacy octet-stream type in a config slot.
func isImageConfig(mt string) bool {
	base, _, _ := strings.Cut(mt, ";")
	return handlers.IsConfig(mt) || strings.TrimSpace(base) == handlers.MediaTypeLegacyConfig
}

// committedPrefix returns how many layers, from the bottom, are unpacked
// already: one more than the index of the highest committed chainID.
func committedPrefix(ctx context.Context, sn Snapshotter, chainIDs []digest.Digest) (int, error) {
	for i := len(chainIDs) - 1; i >= 0; i-- {
		ok, err := isCommitted(ctx, sn, chainIDs[i])
		if err != nil {
			return 0, err
		}
		if ok {
			return i + 1, nil
		}
	}
	return 0, nil
}

func isCommitted(ctx context.Context, sn Snapshotter, chainID digest.Digest) (bool, error) {
	info, err := sn.Stat(ctx, chainID.String())
	switch {
	case err == nil:
		return info.Kind == KindCommitted, nil
	case errdefs.IsNotFound(err):
		return false, nil
	}
	return false, err
}

// flights are the layers being applied in this process, by snapshotter and
// chainID: one apply at a time for each.
var flights = struct {
	mu sync.Mutex
	m  map[flightKey]chan struct{}
}{m: map[flightKey]chan struct{}{}}

type flightKey struct {
	sn      any
	chainID digest.Digest
}

// joinFlight makes the caller the one applying chainID on sn, and returns
// the function that ends its turn; or, when another caller has the turn,
// returns a channel closed when that turn ends.
func joinFlight(sn Snapshotter, chainID digest.Digest) (end func(), busy <-chan struct{}) {
	key := flightKey{chainID: chainID}
	// A snapshotter that cannot be a map key shares turns with all such.
	if v := reflect.ValueOf(sn); v.IsValid() && v.Comparable() {
		key.sn = sn
	}
	flights.mu.Lock()
	defer flights.mu.Unlock()
	if ch, ok := flights.m[key]; ok {
		return nil, ch
	}
	ch := make(chan struct{})
	flights.m[key] = ch
	return func() {
		flights.mu.Lock()
		delete(flights.m, key)
		flights.mu.Unlock()
		close(ch)
	}, nil
}

// applyShared applies layer i of an image onto sn, unless its chainID is
// committed, taking turns with the other applies of that chainID in this
// process. It reports whether it applied the layer.
func applyShared(ctx context.Context, sn Snapshotter, p content.Provider, manifest ocispec.Descriptor,
	layers []ocispec.Descriptor, diffIDs, chainIDs []digest.Digest, i int, src *aheadLayer, applyOpts []ApplyOption) (bool, error) {
	for {
		end, busy := joinFlight(sn, chainIDs[i])
		if busy != nil {
			select {
			case <-busy:
				continue
			case <-ctx.Done():
				return false, fmt.Errorf("unpack %s: layer %d (%s): %w", manifest.Digest, i, layers[i].Digest, ctx.Err())
			}
		}
		applied, err := applyLayer(ctx, sn, p, layers[i], diffIDs[i], chainIDs, i, src, applyOpts)
		end()
		if err != nil {
			return false, fmt.Errorf("unpack %s: layer %d (%s): %w", manifest.Digest, i, layers[i].Digest, err)
		}
		return applied, nil
	}
}

// applyLayer prepares a snapshot on the layer below, applies the layer,
// and commits it as chainIDs[i]. On failure the snapshot is removed.
func applyLayer(ctx context.Context, sn Snapshotter, p content.Provider, layer ocispec.Descriptor,
	diffID digest.Digest, chainIDs []digest.Digest, i int, src *aheadLayer, applyOpts []ApplyOption) (applied bool, err error) {
	chainID := chainIDs[i].String()
	if ok, err := isCommitted(ctx, sn, chainIDs[i]); err != nil || ok {
		return false, err
	}
	var parent string
	if i > 0 {
		parent = chainIDs[i-1].String()
	}
	key := "unpack-" + randomHex(8) + " " + chainID
	mounts, err := sn.Prepare(ctx, key, parent)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			if rerr := sn.Remove(context.WithoutCancel(ctx), key); !errdefs.IsNotFound(rerr) {
				err = withCleanup(err, rerr)
			}
		}
	}()
	dir, err := mountDir(mounts)
	if err != nil {
		return false, err
	}
	if err = applyFrom(ctx, p, layer, src, dir, append(slices.Clip(applyOpts), WithDiffID(diffID))); err != nil {
		return false, err
	}
	if err = sn.Commit(ctx, chainID, key); errdefs.IsAlreadyExists(err) {
		// Another process committed it first: keep theirs.
		err = sn.Remove(context.WithoutCancel(ctx), key)
		return false, err
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// mountDir returns the directory a snapshot's mounts give, which must be
// one writable bind mount: unpacking needs no mount(2) then.
func mountDir(mounts []Mount) (string, error) {
	if len(mounts) != 1 || (mounts[0].Type != "bind" && mounts[0].Type != "rbind") || mounts[0].Source == "" {
		return "", fmt.Errorf("unpack needs one bind mount, the snapshotter gave %d mounts (%v): %w", len(mounts), mounts, errdefs.ErrNotImplemented)
	}
	if slices.Contains(mounts[0].Options, "ro") {
		return "", fmt.Errorf("unpack needs a writable mount, got %s read-only: %w", mounts[0].Source, errdefs.ErrInvalidArgument)
	}
	return mounts[0].Source, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
