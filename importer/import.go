package importer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/reference"
)

// Import reads a docker save or OCI layout archive from r, once, start to
// end, puts its images into store and names them in images.
//
// r may be plain, gzip- or zstd-compressed (told apart by magic bytes) and
// need not be seekable: a pipe from docker save works. Files go into the
// store as they pass; nothing is spooled to disk outside the store, and
// memory stays flat whatever the layers' sizes.
//
// The archive may be:
//
//   - a docker save archive: manifest.json lists each image's config
//     ("<id>.json"), layers ("<id>/layer.tar", which older Docker versions
//     made symbolic links to another layer's file) and tags. Import writes a
//     Docker schema 2 manifest for each image, whose layers carry the media
//     type of their actual compression. Tags are normalized as
//     [reference.Parse] does ("ubuntu:22.04" is
//     "docker.io/library/ubuntu:22.04"); an image with no RepoTags takes its
//     names from the repositories file, when it names the image's top layer.
//   - an OCI image layout (oci-layout and index.json): each entry of
//     index.json is an image, named by its io.containerd.image.name or
//     org.opencontainers.image.ref.name annotation (see [WithNamePrefix] for
//     names that are only a tag). Indexes may nest.
//   - both, as Docker 25 and later write: the OCI layout's manifests are
//     imported as they are, with the names of manifest.json added to the
//     entry whose manifest has the config manifest.json names.
//
// An image left unnamed is named "<prefix>@<manifest digest>" (see
// [WithNamePrefix]).
//
// Every blob is verified as it streams: files named "blobs/<alg>/<encoded>"
// must have that digest, and the layers' uncompressed digests must match the
// diff_ids of their image's config (see the package documentation for when
// a compressed layer's is checked). Each imported manifest and index gets
// containerd's garbage-collection labels for its children
// ([handlers.ChildGCLabels]), and each compressed layer an
// "containerd.io/uncompressed" label with its diffID.
//
// Names are created last, once every image is complete: a name that already
// exists is pointed at the new image. If anything fails, Import removes the
// names it created and points the ones it changed back, so no name refers
// to a partial import; blobs already committed stay in the store, verified
// but possibly unreferenced.
//
// Import returns the records it created, changed or found already right,
// sorted by name. If images is nil, no record is stored and the records
// returned are the ones that would have been. store must not be nil.
//
// Errors: a malformed archive matches [ErrInvalidArchive], an unsafe path
// [ErrUnsafePath], a missing file or blob [ErrMissing], a name claimed by
// two images [ErrDuplicateName], a recognized but unsupported archive
// [ErrUnsupported]; a blob or layer whose digest is not the one its name or
// config declares is a [*content.MismatchError]; an archive over a limit
// ([MaxEntries], [MaxJSONSize], [MaxMetadataSize], handlers.MaxLayers) is a
// [*content.LimitError]; no image for the platforms of [WithPlatforms] is a
// [*handlers.NoMatchError]. Errors of r, of the store and of ctx are
// returned wrapped, unchanged in kind.
func Import(ctx context.Context, store content.Store, images content.Images, r io.Reader, opts ...Option) ([]content.Image, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	prefix, err := parsePrefix(cfg.prefix, time.Now())
	if err != nil {
		return nil, err
	}
	im := &importer{
		store:   store,
		match:   cfg.platforms,
		prefix:  prefix,
		refBase: "pullkit-import-" + nonce(),
		labels:  map[digest.Digest]map[string]string{},
		visited: map[digest.Digest]visit{},
	}
	a, err := im.scan(ctx, r)
	if err != nil {
		return nil, err
	}
	imgs, err := im.assemble(ctx, a)
	if err != nil {
		return nil, err
	}
	records, err := im.records(imgs, cfg.digestNames)
	if err != nil {
		return nil, err
	}
	if err := im.applyLabels(ctx); err != nil {
		return nil, err
	}
	if cfg.unpacker != nil {
		for _, img := range imgs {
			if err := cfg.unpacker.Unpack(ctx, img.target); err != nil {
				return nil, fmt.Errorf("unpack %s: %w", img.target.Digest, err)
			}
		}
	}
	if images == nil {
		return records, nil
	}
	return createNames(ctx, images, records)
}

// importer holds the state of one import.
type importer struct {
	store   content.Store
	match   platforms.MatchComparer
	prefix  reference.Reference
	refBase string
	seq     int
	// labels are the blob labels to set once every image is verified.
	labels map[digest.Digest]map[string]string
	// visited memoizes the walk of OCI manifests and indexes.
	visited map[digest.Digest]visit
	// offered lists the platforms of images the platform filter left out.
	offered []ocispec.Platform
}

// image is an image root the import found, and the names it gives it.
type image struct {
	target ocispec.Descriptor
	names  []string
	// configs are the digests of the configs of the manifests kept under
	// target, to match manifest.json entries to OCI layout entries.
	configs []digest.Digest
}

// nonce returns a random string that keeps the ingest refs of concurrent
// imports apart.
func nonce() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// nextRef returns a fresh ingest ref.
func (im *importer) nextRef() string {
	im.seq++
	return im.refBase + "-" + strconv.Itoa(im.seq)
}

// parsePrefix checks the repository of WithNamePrefix, or makes the
// default one, and returns it without tag.
func parsePrefix(prefix string, now time.Time) (reference.Reference, error) {
	if prefix == "" {
		prefix = "import-" + now.UTC().Format("2006-01-02")
	}
	last := prefix[strings.LastIndexByte(prefix, '/')+1:]
	if strings.ContainsAny(last, ":@") {
		return reference.Reference{}, fmt.Errorf("name prefix %q: must be a repository without tag or digest: %w", prefix, errdefs.ErrInvalidArgument)
	}
	ref, err := reference.Parse(prefix)
	if err != nil {
		return reference.Reference{}, fmt.Errorf("name prefix: %w", err)
	}
	ref.Tag = ""
	return ref, nil
}

// digestName returns "<prefix>@<d>".
func (im *importer) digestName(d digest.Digest) (string, error) {
	ref, err := im.prefix.WithDigest(d)
	if err != nil {
		return "", err
	}
	return ref.String(), nil
}

// matches reports whether p passes the platform filter, and notes the
// platforms it rejects for the error that says nothing matched. A platform
// without an OS always passes.
func (im *importer) matches(p ocispec.Platform) bool {
	if im.match == nil || p.OS == "" || im.match.Match(p) {
		return true
	}
	if !slices.ContainsFunc(im.offered, func(o ocispec.Platform) bool { return platforms.FormatAll(o) == platforms.FormatAll(p) }) {
		im.offered = append(im.offered, p)
	}
	return false
}

// assemble turns what the scan found into images.
func (im *importer) assemble(ctx context.Context, a *archive) ([]*image, error) {
	var (
		imgs []*image
		err  error
	)
	_, hasLayout := a.files[fileLayout]
	_, hasManifest := a.files[fileManifest]
	switch {
	case hasLayout:
		if imgs, err = im.importLayout(ctx, a); err != nil {
			return nil, err
		}
		if hasManifest {
			if imgs, err = im.importDockerSave(ctx, a, imgs); err != nil {
				return nil, err
			}
		}
	case hasManifest:
		if imgs, err = im.importDockerSave(ctx, a, nil); err != nil {
			return nil, err
		}
	case a.files[fileRepositories] != nil:
		return nil, fmt.Errorf("archive has a repositories file but no manifest.json: a docker save archive from before Docker 1.10: %w", ErrUnsupported)
	default:
		return nil, invalid("archive has neither manifest.json (docker save) nor oci-layout (OCI image layout)")
	}
	if len(imgs) == 0 {
		if len(im.offered) > 0 {
			return nil, fmt.Errorf("archive images: %w", &handlers.NoMatchError{Offered: im.offered})
		}
		return nil, invalid("archive holds no image")
	}
	return merge(imgs), nil
}

// plan adds labels to set on the blob d.
func (im *importer) plan(d digest.Digest, labels map[string]string) {
	if len(labels) == 0 {
		return
	}
	m := im.labels[d]
	if m == nil {
		m = map[string]string{}
		im.labels[d] = m
	}
	for k, v := range labels {
		m[k] = v
	}
}

// labelUncompressed is containerd's label for a compressed layer's diffID.
const labelUncompressed = "containerd.io/uncompressed"

// planLayerLabels labels the compressed layers whose diffID is known.
func (im *importer) planLayerLabels(a *archive, layers []ocispec.Descriptor) {
	for _, l := range layers {
		if e := a.byDigest[l.Digest]; e != nil && e.comp != plain && e.diff.diffID != "" {
			im.plan(l.Digest, map[string]string{labelUncompressed: e.diff.diffID.String()})
		}
	}
}

// applyLabels sets the planned labels, changing only those keys.
func (im *importer) applyLabels(ctx context.Context) error {
	for _, d := range slices.Sorted(maps.Keys(im.labels)) {
		labels := im.labels[d]
		fields := make([]string, 0, len(labels))
		for k := range labels {
			fields = append(fields, "labels."+k)
		}
		slices.Sort(fields)
		if _, err := im.store.Update(ctx, content.Info{Digest: d, Labels: labels}, fields...); err != nil {
			return fmt.Errorf("set labels on %s: %w", d, err)
		}
	}
	return nil
}

// checkDiffIDs compares the diffIDs of the layers, as far as the import
// knows them, with those the config lists.
func checkDiffIDs(a *archive, layers []ocispec.Descriptor, diffIDs []digest.Digest) error {
	if len(diffIDs) != len(layers) {
		return invalid("config lists %d diff_ids for %d layers", len(diffIDs), len(layers))
	}
	for i, l := range layers {
		var got digest.Digest
		if e := a.byDigest[l.Digest]; e != nil {
			if e.diff.err != nil {
				return invalid("layer %d (%s): %s stream does not decompress: %v", i, l.Digest, e.comp, e.diff.err)
			}
			got = e.diff.diffID
		} else if c, err := handlers.LayerCompression(l.MediaType); err == nil && c == handlers.CompressionNone {
			got = l.Digest
		}
		want := diffIDs[i]
		if got == "" || got.Algorithm() != want.Algorithm() {
			continue // not known here; unpacking checks it
		}
		if got != want {
			return fmt.Errorf("layer %d (%s): uncompressed digest: %w", i, l.Digest, &content.MismatchError{Expected: want, Actual: got})
		}
	}
	return nil
}

// platformOf returns the platform an image config declares.
func platformOf(img ocispec.Image) ocispec.Platform {
	return ocispec.Platform{
		OS:           img.OS,
		Architecture: img.Architecture,
		Variant:      img.Variant,
		OSVersion:    img.OSVersion,
		OSFeatures:   img.OSFeatures,
	}
}
