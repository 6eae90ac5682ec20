package importer

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/internal/compresstest"
)

// file is one entry of a test archive.
type file struct {
	name string
	body []byte
	typ  byte // tar.TypeReg when zero
	link string
}

func reg(name string, body []byte) file { return file{name: name, body: body} }
func symlink(name, target string) file  { return file{name: name, typ: tar.TypeSymlink, link: target} }
func hardlink(name, target string) file { return file{name: name, typ: tar.TypeLink, link: target} }
func dir(name string) file              { return file{name: name, typ: tar.TypeDir} }
func jsonFile(name string, v any) file  { return reg(name, mustJSON(v)) }
func blobFile(b []byte) file            { return reg(blobPath(digest.FromBytes(b)), b) }
func blobPath(d digest.Digest) string   { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }
func descOf(mt string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// tarball writes files into a tar archive, in the order given.
func tarball(t testing.TB, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Typeflag: f.typ, Mode: 0o644, Linkname: f.link, Format: tar.FormatPAX}
		switch f.typ {
		case 0:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.body))
		case tar.TypeDir:
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", f.name, err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatalf("tar body %q: %v", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layer is a test layer: a tar of a few files, maybe compressed.
type layer struct {
	blob   []byte        // the bytes as shipped
	diffID digest.Digest // digest of the uncompressed tar
	comp   compression
}

// newLayer makes a layer tar holding one file per name, whose content is
// the name repeated, compressed as c.
func newLayer(t testing.TB, c compression, names ...string) layer {
	t.Helper()
	var fs []file
	for _, n := range names {
		fs = append(fs, reg(n, bytes.Repeat([]byte(n+"\n"), 50)))
	}
	raw := tarball(t, fs...)
	l := layer{blob: raw, diffID: digest.FromBytes(raw), comp: c}
	switch c {
	case gzipped:
		l.blob = compresstest.Gzip(raw)
	case zstded:
		l.blob = compresstest.Zstd(raw)
	}
	return l
}

func (l layer) digest() digest.Digest { return digest.FromBytes(l.blob) }

// dockerType is the Docker media type the importer should give the layer.
func (l layer) dockerType() string {
	switch l.comp {
	case gzipped:
		return handlers.MediaTypeDockerSchema2Layer
	case zstded:
		return handlers.MediaTypeDockerSchema2LayerZstd
	}
	return handlers.MediaTypeDockerSchema2LayerUncompressed
}

func (l layer) ociType() string {
	switch l.comp {
	case gzipped:
		return ocispec.MediaTypeImageLayerGzip
	case zstded:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

// newConfig returns an image config for platform "os/arch" whose diff_ids
// are the layers'.
func newConfig(platform string, layers ...layer) []byte {
	os, arch, _ := strings.Cut(platform, "/")
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: os, Architecture: arch},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/sh"}},
	}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
	}
	return mustJSON(cfg)
}

// saved is an image as docker save writes it.
type saved struct {
	config []byte
	layers []layer
	tags   []string
}

func newSaved(tags []string, platform string, layers ...layer) saved {
	return saved{config: newConfig(platform, layers...), layers: layers, tags: tags}
}

func (s saved) configDigest() digest.Digest { return digest.FromBytes(s.config) }

// dockerSave returns the files of a classic docker save archive of imgs:
// for each layer "<id>/layer.tar" with its legacy VERSION and json files,
// the "<config hex>.json" configs, then manifest.json last, as Docker
// writes it. A layer shipped twice is written once; later uses link to it.
func dockerSave(imgs ...saved) []file {
	var (
		fs      []file
		entries []map[string]any
		written = map[digest.Digest]string{}
	)
	for _, img := range imgs {
		var paths []string
		for _, l := range img.layers {
			d := l.digest()
			id := d.Encoded()
			p := id + "/layer.tar"
			if _, ok := written[d]; !ok {
				fs = append(fs, dir(id+"/"), reg(id+"/VERSION", []byte("1.0")), reg(id+"/json", []byte(`{"id":"`+id+`"}`)), reg(p, l.blob))
				written[d] = p
			}
			paths = append(paths, p)
		}
		cfgName := img.configDigest().Encoded() + ".json"
		if !slices.ContainsFunc(fs, func(f file) bool { return f.name == cfgName }) {
			fs = append(fs, reg(cfgName, img.config))
		}
		entries = append(entries, map[string]any{"Config": cfgName, "RepoTags": img.tags, "Layers": paths})
	}
	return append(fs, jsonFile("manifest.json", entries))
}

// layout builds an OCI image layout.
type layout struct {
	blobs []file
	seen  map[digest.Digest]bool
	index ocispec.Index
}

func newLayout() *layout {
	l := &layout{seen: map[digest.Digest]bool{}}
	l.index.SchemaVersion = 2
	l.index.MediaType = ocispec.MediaTypeImageIndex
	return l
}

// blob adds b and returns its descriptor.
func (o *layout) blob(mt string, b []byte) ocispec.Descriptor {
	d := descOf(mt, b)
	if !o.seen[d.Digest] {
		o.seen[d.Digest] = true
		o.blobs = append(o.blobs, blobFile(b))
	}
	return d
}

// image adds an OCI image for platform "os/arch" and returns its manifest's descriptor.
func (o *layout) image(platform string, layers ...layer) ocispec.Descriptor {
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{}}
	m.SchemaVersion = 2
	m.Config = o.blob(ocispec.MediaTypeImageConfig, newConfig(platform, layers...))
	for _, l := range layers {
		m.Layers = append(m.Layers, o.blob(l.ociType(), l.blob))
	}
	return o.blob(ocispec.MediaTypeImageManifest, mustJSON(m))
}

// indexOf adds an index of descs and returns its descriptor.
func (o *layout) indexOf(descs ...ocispec.Descriptor) ocispec.Descriptor {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	return o.blob(ocispec.MediaTypeImageIndex, mustJSON(idx))
}

// withPlatform returns d with its platform set to "os/arch".
func withPlatform(d ocispec.Descriptor, platform string) ocispec.Descriptor {
	os, arch, _ := strings.Cut(platform, "/")
	d.Platform = &ocispec.Platform{OS: os, Architecture: arch}
	return d
}

// withName returns d annotated with an OCI ref name.
func withName(d ocispec.Descriptor, key, name string) ocispec.Descriptor {
	d.Annotations = map[string]string{key: name}
	return d
}

// files returns the layout's files: oci-layout, the blobs, then index.json.
func (o *layout) files(roots ...ocispec.Descriptor) []file {
	o.index.Manifests = roots
	fs := []file{jsonFile("oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})}
	fs = append(fs, o.blobs...)
	return append(fs, jsonFile("index.json", o.index))
}

// importPiped imports archive through an io.Pipe, in small writes, so the
// importer gets a reader it can neither seek nor re-read. On success it
// checks that the importer read the pipe to its end.
func importPiped(t testing.TB, store content.Store, images content.Images, archive []byte, opts ...Option) ([]content.Image, error) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		var err error
		for b := archive; len(b) > 0 && err == nil; {
			n := min(len(b), 7777)
			_, err = pw.Write(b[:n])
			b = b[n:]
		}
		pw.Close()
		done <- err
	}()
	imgs, err := Import(context.Background(), store, images, pr, opts...)
	if err != nil {
		pr.CloseWithError(fmt.Errorf("import failed"))
		<-done
		return imgs, err
	}
	if werr := <-done; werr != nil {
		t.Errorf("importer did not read the archive to its end: %v", werr)
	}
	return imgs, nil
}

// names returns the names of records.
func names(imgs []content.Image) []string {
	var out []string
	for _, img := range imgs {
		out = append(out, img.Name)
	}
	return out
}

// checkImage checks the image under target as a consumer would: every
// manifest and index has its children present and labelled, every layer
// decompresses to the diffID its config lists, and a compressed layer
// carries its diffID label. It returns the manifests it found.
func checkImage(t testing.TB, store *memory.Store, target ocispec.Descriptor) []ocispec.Manifest {
	t.Helper()
	ctx := context.Background()
	info, err := store.Info(ctx, target.Digest)
	if err != nil {
		t.Fatalf("target %s: %v", target.Digest, err)
	}
	children, err := handlers.ChildrenOf(ctx, store, target)
	if err != nil {
		t.Fatalf("children of %s: %v", target.Digest, err)
	}
	var kept []ocispec.Descriptor
	for _, c := range children {
		if _, err := store.Info(ctx, c.Digest); err == nil {
			kept = append(kept, c)
		}
	}
	if handlers.IsIndex(target.MediaType) {
		var ms []ocispec.Manifest
		for k, v := range info.Labels {
			if !strings.HasPrefix(k, "containerd.io/gc.ref.content.m.") {
				continue
			}
			i := slices.IndexFunc(kept, func(c ocispec.Descriptor) bool { return c.Digest.String() == v })
			if i < 0 {
				t.Fatalf("index %s: label %s=%s names no child present", target.Digest, k, v)
			}
			ms = append(ms, checkImage(t, store, kept[i])...)
		}
		if len(ms) == 0 {
			t.Fatalf("index %s: no manifest labelled (labels %v)", target.Digest, info.Labels)
		}
		return ms
	}
	if len(kept) != len(children) {
		t.Fatalf("manifest %s: %d of %d children present", target.Digest, len(kept), len(children))
	}
	want := handlers.ChildGCLabels(children)
	for k, v := range want {
		if info.Labels[k] != v {
			t.Errorf("manifest %s: label %s = %q, want %q", target.Digest, k, info.Labels[k], v)
		}
	}
	cfgBytes, err := content.ReadBlob(ctx, store, children[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		t.Fatal(err)
	}
	layers := children[1:]
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		t.Fatalf("manifest %s: %d diff_ids for %d layers", target.Digest, len(cfg.RootFS.DiffIDs), len(layers))
	}
	for i, l := range layers {
		b, err := content.ReadBlob(ctx, store, l, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		c := detect(b)
		raw := b
		if c != plain {
			zr, release, err := decompress(c, bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			raw, err = io.ReadAll(zr)
			release()
			if err != nil {
				t.Fatal(err)
			}
			li, _ := store.Info(ctx, l.Digest)
			if got := li.Labels[labelUncompressed]; got != cfg.RootFS.DiffIDs[i].String() {
				t.Errorf("layer %s: %s label = %q, want %s", l.Digest, labelUncompressed, got, cfg.RootFS.DiffIDs[i])
			}
		}
		if got := digest.FromBytes(raw); got != cfg.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: diffID %s, config says %s", i, got, cfg.RootFS.DiffIDs[i])
		}
		if mc, err := handlers.LayerCompression(l.MediaType); err != nil || mc.String() != map[compression]string{plain: "none", gzipped: "gzip", zstded: "zstd"}[c] {
			t.Errorf("layer %d: media type %q for a %s stream", i, l.MediaType, c)
		}
	}
	m := ocispec.Manifest{Config: children[0], Layers: layers}
	return []ocispec.Manifest{m}
}

// checkClean checks what a failed import must leave: no name, no ingest,
// and only blobs whose bytes match their digests.
func checkClean(t testing.TB, store *memory.Store) {
	t.Helper()
	ctx := context.Background()
	imgs, err := store.Images().List(ctx)
	if err != nil || len(imgs) != 0 {
		t.Errorf("names left after a failed import: %v (err %v)", names(imgs), err)
	}
	sts, err := store.ListStatuses(ctx)
	if err != nil || len(sts) != 0 {
		t.Errorf("ingests left after a failed import: %v (err %v)", sts, err)
	}
	err = store.Walk(ctx, func(info content.Info) error {
		if _, err := content.ReadBlob(ctx, store, ocispec.Descriptor{Digest: info.Digest, Size: info.Size}, 1<<30); err != nil {
			t.Errorf("blob %s: %v", info.Digest, err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// classified reports whether err carries one of the classes the importer
// promises.
func classified(err error) bool {
	return errdefs.IsInvalidArgument(err) || errdefs.IsNotFound(err) || errdefs.IsResourceExhausted(err) ||
		errdefs.IsNotImplemented(err) || errdefs.IsFailedPrecondition(err)
}
