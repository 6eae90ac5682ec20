package pullkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/handlers/schema1"
	"github.com/pullkit/pullkit/reference"
	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/unpack"
)

// DefaultConcurrency is how many blobs Pull downloads at once unless
// [WithMaxConcurrentDownloads] says otherwise. Large blobs are also split
// into parallel ranges by package fetch.
const DefaultConcurrency = 4

// Image is what [Pull] pulled, in the terms the CRI's PullImage uses.
type Image struct {
	// Name is the normalized reference the name record was written under,
	// such as "docker.io/library/alpine:3.20".
	Name string
	// Target is the root descriptor: the index or manifest Name points at.
	// For a converted Docker schema 1 image ([WithSchema1Conversion]), it
	// is the converted Docker schema 2 manifest, which the registry does
	// not have.
	Target ocispec.Descriptor
	// Manifest is the descriptor of the manifest for the pulled platform.
	Manifest ocispec.Descriptor
	// ID is the digest of the image config, the image's ID.
	ID digest.Digest
	// RepoTags holds the repository with the tag,
	// "docker.io/library/alpine:3.20", when the reference had a tag
	// (even along with a digest); otherwise it is nil.
	RepoTags []string
	// RepoDigests holds the repository with the digest of the root as the
	// registry serves it, "docker.io/library/alpine@sha256:…": for a
	// converted schema 1 image, the schema 1 manifest's digest (pulling it
	// again converts it to the same Target), not Target's.
	RepoDigests []string
	// Size is the sum of the sizes of the root, the platform's manifest,
	// its config and its layers, as stored (compressed).
	Size int64
	// ChainID names the committed snapshot that holds the unpacked image,
	// with [WithUnpack]: the parent to prepare a container's root from.
	// It is empty without WithUnpack, and for an image with no layers.
	ChainID digest.Digest
}

// Option configures [Pull].
type Option func(*config)

type config struct {
	matcher      platforms.MatchComparer
	allPlatforms bool
	allMetadata  bool
	concurrency  int
	labels       map[string]string
	wrappers     []func(handlers.Handler) handlers.Handler
	observer     func(fetch.Event)
	resolver     resolve.Resolver
	hosts        resolve.HostsFunc
	keychain     auth.Keychain
	creds        *auth.Credential
	logger       *slog.Logger
	schema1      bool
	snapshotter  unpack.Snapshotter
}

// WithPlatforms sets which platform Pull fetches: the best match for m of
// an index's manifests, across nested indexes. The default, and nil, is
// platforms.Default(): the host, with the variants it can run.
func WithPlatforms(m platforms.MatchComparer) Option {
	return func(c *config) { c.matcher = m }
}

// WithAllPlatforms fetches every manifest of an index, with its config and
// layers, whatever their platform. [Image] then describes the best match
// for the platforms set with [WithPlatforms], or the index's first manifest
// when none matches. It takes precedence over [WithAllMetadata].
func WithAllPlatforms() Option {
	return func(c *config) { c.allPlatforms = true }
}

// WithAllMetadata fetches the manifests and configs of every platform of an
// index, but the layers of one manifest only, the best match for the
// platforms set with [WithPlatforms], so that the store can answer
// questions about every platform cheaply. As without it, Pull fails with a
// *handlers.NoMatchError when no manifest matches.
func WithAllMetadata() Option {
	return func(c *config) { c.allMetadata = true }
}

// WithMaxConcurrentDownloads bounds how many blobs download at once.
// n <= 0 means [DefaultConcurrency].
func WithMaxConcurrentDownloads(n int) Option {
	return func(c *config) { c.concurrency = n }
}

// WithLabels sets labels on the name record. Several calls add up.
func WithLabels(labels map[string]string) Option {
	return func(c *config) {
		if c.labels == nil {
			c.labels = map[string]string{}
		}
		maps.Copy(c.labels, labels)
	}
}

// WithHandlerWrapper wraps the handler Pull runs on every descriptor, after
// the fetch, children, platform and label handlers, so that w sees each
// descriptor with its children. Wrappers apply in the order given, the
// last outermost.
func WithHandlerWrapper(w func(handlers.Handler) handlers.Handler) Option {
	return func(c *config) { c.wrappers = append(c.wrappers, w) }
}

// WithObserver receives progress events: the resolved root, and each
// blob's start, progress, retries, resumes, commit or skip. It is called
// from several goroutines, never concurrently for one blob, and must not
// block. With [WithResolver], the resolver's own events (Resolved,
// Retried, Resumed) go where that resolver sends them, and fn gets the
// handler's. The default, and nil, is no observer.
func WithObserver(fn func(fetch.Event)) Option {
	return func(c *config) { c.observer = fn }
}

// WithResolver sets the resolver Pull uses, overriding [WithHosts],
// [WithKeychain], [WithCredentials] and [WithLogger]: configure r with
// them instead. Share one resolver across pulls to reuse its tokens.
// The default, and nil, is a new resolve.Registry configured by those
// options for each Pull.
func WithResolver(r resolve.Resolver) Option {
	return func(c *config) { c.resolver = r }
}

// WithHosts sets where each registry's content is asked for: mirrors in
// order, then the registry, with their TLS and headers (see
// resolve.Hosts, and resolve.WithHostsDir for containerd's hosts.toml).
// The default, and nil, is resolve.Hosts(): the registry itself, over
// plain HTTP for loopback hosts.
func WithHosts(fn resolve.HostsFunc) Option {
	return func(c *config) { c.hosts = fn }
}

// WithKeychain sets where credentials come from, per host, such as
// auth.DockerConfig(). The default, and nil, is anonymous access.
func WithKeychain(k auth.Keychain) Option {
	return func(c *config) { c.keychain = k }
}

// WithCredentials authenticates as username with password (or an
// identity token as password with username "<token>") to the registry
// of the reference being pulled, and to no other host: mirrors stay
// anonymous unless a keychain covers them. It takes precedence over
// [WithKeychain] for that registry.
func WithCredentials(username, password string) Option {
	return func(c *config) {
		c.creds = &auth.Credential{Username: username, Password: password}
	}
}

// WithLogger sets where failovers, retries and resumes are logged. The
// default, and nil, is no logging.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithSchema1Conversion lets Pull pull images whose root is a Docker
// schema 1 manifest, signed or not: the format of images pushed by Docker
// before version 1.10, which some registries still serve and which Docker
// and containerd have deprecated. The image is converted to a Docker
// schema 2 image as it is pulled, by handlers/schema1: its layers are
// downloaded (each size asked with a HEAD request, since schema 1 does
// not record sizes), their diff IDs computed, empty layers dropped, and a
// config and a manifest built and written to the store; the schema 1
// manifest is not stored. The name record then points at the converted
// manifest, which [Image] describes.
// With [WithResolver], the resolver's fetcher must have a Stat method
// (schema1.Stater), as resolve.Registry's has.
//
// Handler wrappers ([WithHandlerWrapper]) see the converted manifest, its
// config and layers, not the schema 1 manifest; the observer sees the
// layer downloads. The default is to refuse schema 1 images with an error
// that wraps schema1.ErrConversionDisabled (errdefs.ErrNotImplemented),
// before anything is downloaded.
func WithSchema1Conversion() Option {
	return func(c *config) { c.schema1 = true }
}

// WithUnpack unpacks the image into sn as it downloads: each layer is
// applied, its diff ID verified, the moment its blob is committed, in
// order, while later layers still download; a layer whose snapshot sn
// already has is not applied again. The name record is written only once
// the unpack has succeeded, and [Image].ChainID names the top snapshot.
// The content store still receives every blob. The default is not to
// unpack.
func WithUnpack(sn unpack.Snapshotter) Option {
	return func(c *config) { c.snapshotter = sn }
}

// Pull resolves ref, downloads the image it names into store, verifying
// every blob, and writes the name record in names once everything is
// committed, so the name never points at a partial image. A name that
// already exists is moved to the new target. Blobs the store already has
// are not downloaded again, and concurrent Pulls into one store download
// each blob they share once.
//
// For an index, Pull fetches the manifest that best matches the platforms
// ([WithPlatforms], the host by default), with its config and layers;
// see [WithAllMetadata] and [WithAllPlatforms] for more. A reference to a
// single manifest is pulled whatever its platform, as containerd does.
//
// A Docker schema 1 manifest is converted to a Docker schema 2 image with
// [WithSchema1Conversion], and refused without it: the error wraps
// schema1.ErrConversionDisabled and matches errdefs.ErrNotImplemented.
//
// A failed or cancelled Pull writes no name and leaves what it committed
// in store, and its partial downloads as ingests that the next Pull of the
// same content resumes without fetching those bytes again.
//
// Errors are classified with errdefs and say what to do next: a bad
// reference matches ErrInvalidArgument; missing or wrong credentials
// ErrUnauthenticated; a refusal ErrPermissionDenied; an unknown image, or
// no manifest for the platform (a *handlers.NoMatchError listing what the
// index offers), ErrNotFound; a rate limit or an outage ErrUnavailable.
// Content that fails verification matches content.ErrDigestMismatch and is
// not kept. A cancelled ctx gives its error.
func Pull(ctx context.Context, ref string, store content.Store, names content.Images, opts ...Option) (Image, error) {
	cfg := config{matcher: platforms.Default(), concurrency: DefaultConcurrency}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.concurrency <= 0 {
		cfg.concurrency = DefaultConcurrency
	}
	if cfg.matcher == nil {
		cfg.matcher = platforms.Default()
	}
	if store == nil || names == nil {
		return Image{}, fmt.Errorf("pull %s: a store and a name store are required: %w", ref, errdefs.ErrInvalidArgument)
	}
	parsed, err := reference.Parse(ref)
	if err != nil {
		return Image{}, fmt.Errorf("pull: %w", err)
	}
	r := cfg.resolver
	if r == nil {
		r = cfg.newResolver(parsed.Registry)
	}

	name, root, err := r.Resolve(ctx, parsed.String())
	if err != nil {
		return Image{}, cfg.pullError(parsed.String(), parsed.Registry, err, false)
	}
	isSchema1 := handlers.IsSchema1(root.MediaType)
	if isSchema1 && !cfg.schema1 {
		return Image{}, fmt.Errorf("pull %s: %w", name, schema1.ErrConversionDisabled)
	}
	f, err := r.Fetcher(ctx, name)
	if err != nil {
		return Image{}, cfg.pullError(name, parsed.Registry, err, false)
	}

	served := root.Digest // the root's digest at the registry
	observer := cfg.observer
	if isSchema1 {
		if root, err = cfg.convertSchema1(ctx, store, f, root); err != nil {
			return Image{}, cfg.pullError(name, parsed.Registry, err, true)
		}
		// The converter reported the downloads; what follows finds
		// everything in the store.
		observer = nil
	}
	h := cfg.handler(store, f, root, observer)
	var u *unpack.Unpacker
	if cfg.snapshotter != nil {
		var uopts []unpack.Option
		if cfg.allPlatforms {
			uopts = append(uopts, unpack.WithPlatforms(cfg.matcher))
		}
		// The store must hold every blob the name will point at, even
		// those whose snapshots exist already.
		u = unpack.NewUnpacker(cfg.snapshotter, store, append(uopts, unpack.WithFetchSkipped())...)
		h = u.Wrap(h) // outermost, as the Unpacker requires
	}
	if err := handlers.Dispatch(ctx, h, cfg.concurrency, root); err != nil {
		return Image{}, cfg.pullError(name, parsed.Registry, err, true)
	}

	img, err := describe(ctx, store, name, root, served, cfg.matcher, cfg.allPlatforms)
	if err != nil {
		return Image{}, cfg.pullError(name, parsed.Registry, err, true)
	}
	if u != nil {
		if img.ChainID, err = unpacked(u, img.Manifest); err != nil {
			return Image{}, fmt.Errorf("pull %s: unpack: %w", name, err)
		}
	}
	if err := setName(ctx, names, name, root, cfg.labels); err != nil {
		return Image{}, fmt.Errorf("pull %s: write the name record: %w", name, err)
	}
	return img, nil
}

// pullError wraps err with the reference and, when there is one, a hint
// at what to do next. fetching says whether the error came after the
// reference was resolved.
func (cfg *config) pullError(name, registry string, err error, fetching bool) error {
	if h := cfg.hint(err, registry, fetching); h != "" {
		return fmt.Errorf("pull %s: %w: %s", name, err, h)
	}
	return fmt.Errorf("pull %s: %w", name, err)
}

// hint says what the caller of Pull can do about err, or "" when err
// already says it or nothing helps. It never repeats a hint that
// resolve.Error gives for the same class.
func (cfg *config) hint(err error, registry string, fetching bool) string {
	var (
		noMatch     *handlers.NoMatchError
		resolveErr  *resolve.Error
		fromResolve = errors.As(err, &resolveErr)
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if fetching {
			return "partial downloads are kept: pull again to resume them"
		}
		return ""
	case errors.As(err, &noMatch):
		return "choose one of those platforms with WithPlatforms, or pull them all with WithAllPlatforms"
	case errdefs.IsUnauthorized(err):
		if cfg.resolver != nil {
			return "configure the credentials of the resolver given with WithResolver"
		}
		if fromResolve {
			// resolve.Error has said to check them.
			return "give them to Pull with WithCredentials or WithKeychain"
		}
		return fmt.Sprintf("check the credentials for %s: give them with WithCredentials, or WithKeychain(auth.DockerConfig()) after docker login", registry)
	case errdefs.IsPermissionDenied(err):
		if fromResolve {
			return ""
		}
		return "the credentials may not pull this repository: check its name and the account's access"
	case errdefs.IsNotFound(err):
		if fetching {
			return "the registry lacks content the image references: the image is incomplete there, or a mirror is stale"
		}
		return "check the registry, the repository name and the tag or digest"
	case errdefs.IsUnavailable(err):
		if fromResolve {
			return ""
		}
		return "the registry is rate limiting or unavailable: try again later"
	case errors.Is(err, content.ErrDigestMismatch):
		return "the registry or a proxy served content that does not match its digest, and none of it was kept: pull again, or from another mirror"
	}
	return ""
}

// newResolver builds the default resolver from the options.
func (cfg *config) newResolver(registry string) resolve.Resolver {
	keychain := cfg.keychain
	if cfg.creds != nil {
		static := auth.Static(registry, *cfg.creds)
		if keychain != nil {
			keychain = auth.Chain(static, keychain)
		} else {
			keychain = static
		}
	}
	return resolve.New(
		resolve.WithHosts(cfg.hosts),
		resolve.WithKeychain(keychain),
		resolve.WithObserver(cfg.observer),
		resolve.WithLogger(cfg.logger),
	)
}

// convertSchema1 pulls the Docker schema 1 image root into store with f
// and returns the descriptor of the Docker schema 2 manifest it converts
// to, which is in store with its config and layers.
func (cfg *config) convertSchema1(ctx context.Context, store content.Store, f fetch.Fetcher, root ocispec.Descriptor) (ocispec.Descriptor, error) {
	c := schema1.NewConverter(store, f, schema1.WithProgress(cfg.observer))
	if err := handlers.Dispatch(ctx, c, cfg.concurrency, root); err != nil {
		return ocispec.Descriptor{}, err
	}
	return c.Convert(ctx)
}

// handler builds the chain Dispatch runs on every descriptor under root:
// fetch into the store (reporting to observer, which may be nil), read
// children, keep the wanted platforms, label, then the caller's wrappers.
func (cfg *config) handler(store content.Store, f fetch.Fetcher, root ocispec.Descriptor, observer func(fetch.Event)) handlers.Handler {
	var h handlers.Handler = handlers.Sequence(
		fetch.Handler(store, f, fetch.WithProgress(observer)),
		handlers.Children(store),
	)
	switch {
	case cfg.allPlatforms:
	case cfg.allMetadata:
		h = layersOfOne(h, cfg.matcher, root)
	default:
		// LimitManifests drops the manifests cfg.matcher does not match
		// and keeps the best one, across nested indexes; a no-match error
		// lists every platform the index offers.
		h = handlers.LimitManifests(h, cfg.matcher, 1)
	}
	h = handlers.SetChildrenLabels(store, h)
	for _, w := range cfg.wrappers {
		h = w(h)
	}
	return h
}

// layersOfOne passes every manifest and config under root, but the
// layers of one manifest only: the best match for m under root, chosen as
// LimitManifests chooses, across nested indexes. When root is a manifest,
// its layers are kept. When no manifest under an index root matches m,
// the handler fails with a *handlers.NoMatchError.
func layersOfOne(h handlers.Handler, m platforms.MatchComparer, root ocispec.Descriptor) handlers.HandlerFunc {
	var (
		mu     sync.Mutex
		chosen = root.Digest // the manifest whose layers are fetched
	)
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := h.Handle(ctx, desc)
		if err != nil {
			return children, err
		}
		switch {
		case desc.Digest == root.Digest && handlers.IsIndex(desc.MediaType):
			// Choose among root's children, which h already fetched and
			// read, and the manifests of the indexes nested in it, which
			// h fetches here and Dispatch finds in the store later.
			pick := handlers.LimitManifests(handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
				if d.Digest == root.Digest {
					return children, nil
				}
				return h.Handle(ctx, d)
			}), m, 1)
			best, err := pick.Handle(ctx, root)
			if err != nil {
				return nil, err
			}
			if len(best) > 0 {
				mu.Lock()
				chosen = best[0].Digest
				mu.Unlock()
			}
		case handlers.IsManifest(desc.MediaType):
			mu.Lock()
			keep := desc.Digest == chosen
			mu.Unlock()
			if !keep {
				children = slices.DeleteFunc(children, func(c ocispec.Descriptor) bool {
					return handlers.IsLayer(c.MediaType)
				})
			}
		}
		return children, nil
	}
}

// describe reads back what was pulled for the result: the manifest under
// root for m (for any platform when root is a manifest, or when
// anyPlatform and none matches). served is root's digest at the registry,
// which differs from root's for a converted schema 1 image.
func describe(ctx context.Context, store content.Provider, name string, root ocispec.Descriptor, served digest.Digest, m platforms.MatchComparer, anyPlatform bool) (Image, error) {
	if !handlers.IsIndex(root.MediaType) {
		m = platforms.All
	}
	mdesc, err := handlers.ManifestDescriptor(ctx, store, root, m)
	if err != nil && anyPlatform && errdefs.IsNotFound(err) {
		mdesc, err = handlers.ManifestDescriptor(ctx, store, root, platforms.All)
	}
	if err != nil {
		return Image{}, err
	}
	manifest, err := handlers.Manifest(ctx, store, mdesc, platforms.All)
	if err != nil {
		return Image{}, err
	}
	img := Image{Name: name, Target: root, Manifest: mdesc, ID: manifest.Config.Digest}
	img.Size = mdesc.Size + manifest.Config.Size
	if root.Digest != mdesc.Digest {
		img.Size += root.Size
	}
	for _, l := range manifest.Layers {
		img.Size += l.Size
	}
	ref, err := reference.Parse(name)
	if err != nil {
		return Image{}, err
	}
	if ref.Tag != "" {
		img.RepoTags = []string{ref.Name() + ":" + ref.Tag}
	}
	img.RepoDigests = []string{ref.Name() + "@" + served.String()}
	return img, nil
}

// unpacked returns the top chainID of manifest from what u unpacked.
func unpacked(u *unpack.Unpacker, manifest ocispec.Descriptor) (digest.Digest, error) {
	results, err := u.Results()
	if err != nil {
		return "", err
	}
	for _, r := range results {
		if r.Manifest.Digest == manifest.Digest {
			return r.ChainID, nil
		}
	}
	return "", fmt.Errorf("manifest %s was not unpacked: %w", manifest.Digest, errdefs.ErrFailedPrecondition)
}

// setName points name at root, creating the record or moving it.
func setName(ctx context.Context, names content.Images, name string, root ocispec.Descriptor, labels map[string]string) error {
	rec := content.Image{Name: name, Target: root, Labels: labels}
	_, err := names.Create(ctx, rec)
	if !errdefs.IsAlreadyExists(err) {
		return err
	}
	paths := []string{"target"}
	for k := range labels {
		paths = append(paths, "labels."+k)
	}
	_, err = names.Update(ctx, rec, paths...)
	return err
}
