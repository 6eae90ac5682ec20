package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// The workloads. Sizes are at -scale 1; each is multiplied by the scale.
const (
	bigLayers       = 4
	bigLayerSize    = 256 << 20 // compressed bytes per layer
	bigFileSize     = 8 << 20   // uncompressed bytes per file in a big layer
	treeFiles       = 30_000
	manyLayers      = 40
	manyLayerSize   = 2 << 20
	multiLayers     = 3
	multiLayerSize  = 16 << 20
	segment         = 256 << 10 // half-compressible data alternates random and text segments of this size
	textCorpusBytes = 4 << 20
)

// epoch is the modification time of every generated entry.
var epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// blob is one generated blob, kept in a file of the work directory.
type blob struct {
	Path string
	Desc ocispec.Descriptor
	// DiffID and USize are the digest and size of a layer's uncompressed tar.
	DiffID digest.Digest
	USize  int64
}

// image is a generated image as pushed to the registry.
type image struct {
	Name string // workload name
	Repo string
	Tag  string
	Root ocispec.Descriptor
	// Push holds every blob in an order the registry accepts: layers and
	// configs, then manifests, then the index.
	Push []blob
	// Layers are the host platform's layers in order, and PullBytes the
	// bytes a pull of the host platform fetches (root, manifest, config,
	// layers).
	Layers    []blob
	PullBytes int64
	// Fetch lists what a pull of the host platform fetches, in order, for
	// the ref-get reference: "manifest:<digest>" for manifests and indexes,
	// "<digest>" for blobs.
	Fetch []string
}

// saveArchive is the docker save archive of an image, written to a file.
type saveArchive struct {
	Path string
	Size int64
}

// generator makes the workloads' content from a seed, identically on every
// run: each layer draws from its own PRNG, derived from the seed and the
// layer's name, so the order and parallelism of generation do not matter.
type generator struct {
	seed  uint64
	scale float64
	dir   string // blobs are written here
	text  []byte // the repetitive text corpus
}

func newGenerator(seed uint64, scale float64, dir string) (*generator, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	g := &generator{seed: seed, scale: scale, dir: dir}
	g.text = textCorpus(g.rng("text"))
	return g, nil
}

// rng returns the PRNG for a named stream.
func (g *generator) rng(name string) *rand.ChaCha8 {
	var s [32]byte
	h := sha256.Sum256([]byte(fmt.Sprintf("%d/%s", g.seed, name)))
	copy(s[:], h[:])
	return rand.NewChaCha8(s)
}

func (g *generator) scaled(n int64, floor int64) int64 {
	v := int64(float64(n) * g.scale)
	return max(v, floor)
}

// textCorpus builds lines of words from a small vocabulary: text that
// compresses about 3:1, as source code and configuration do.
func textCorpus(r *rand.ChaCha8) []byte {
	words := strings.Fields(`the of and to in is that for it as was with be by on not he this are or
	his from at which but have an they you were her she there one all we their been has would when
	if more will no out so said what up its about into than them can only other new some could time
	these two may then do first any my now such like our over man me even most made after also did
	many before must through back years where much your way well down should because each just those
	people how too little state good very make world still own see men work long get here between
	both life being under never day same another know while last might us great old year off come
	since against go came right used take three func return err nil struct package import string int`)
	rr := rand.New(r)
	var b strings.Builder
	for b.Len() < textCorpusBytes {
		n := 4 + rr.IntN(10)
		for i := range n {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[rr.IntN(len(words))])
		}
		b.WriteString(".\n")
	}
	return []byte(b.String())
}

// filler writes half-compressible content: segments of random bytes and of
// text taken from the corpus at random offsets, alternating.
type filler struct {
	r    *rand.ChaCha8
	rr   *rand.Rand
	text []byte
	buf  []byte
}

func (g *generator) filler(name string) *filler {
	r := g.rng(name)
	return &filler{r: r, rr: rand.New(g.rng(name + "/pick")), text: g.text, buf: make([]byte, segment)}
}

// write writes n bytes of content to w. Files shorter than two segments
// are half random, half text.
func (f *filler) write(w io.Writer, n int64) error {
	seg := int64(segment)
	if n < 2*seg {
		seg = max((n+1)/2, 1)
	}
	random := true
	for n > 0 {
		k := min(seg, n)
		var p []byte
		if random {
			p = f.buf[:k]
			_, _ = f.r.Read(p)
		} else {
			off := f.rr.IntN(len(f.text) - int(k))
			p = f.text[off : off+int(k)]
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
		n -= k
		random = !random
	}
	return nil
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// layerWriter receives a layer's tar and reports how many compressed bytes
// have been produced so far, so a generator can stop at a target size.
type layerWriter struct {
	tw         *tar.Writer
	compressed func() int64
}

func (lw *layerWriter) dir(name string, mode int64) error {
	return lw.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
}

func (lw *layerWriter) file(name string, mode int64, size int64, f *filler) error {
	if err := lw.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: size, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	return f.write(lw.tw, size)
}

func (lw *layerWriter) link(typ byte, name, target string) error {
	return lw.tw.WriteHeader(&tar.Header{Typeflag: typ, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX})
}

func (lw *layerWriter) empty(name string) error {
	return lw.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX})
}

// layer writes a gzip-compressed layer made by fill into the blob
// directory, with its digest, diffID and sizes.
func (g *generator) layer(fill func(*layerWriter) error) (blob, error) {
	tmp, err := os.CreateTemp(g.dir, "layer-*")
	if err != nil {
		return blob{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	dh := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(tmp, dh)}
	zw, err := gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	if err != nil {
		return blob{}, err
	}
	uh := sha256.New()
	uw := &countingWriter{w: io.MultiWriter(zw, uh)}
	lw := &layerWriter{tw: tar.NewWriter(uw), compressed: func() int64 { return cw.n }}
	if err := fill(lw); err != nil {
		return blob{}, err
	}
	if err := lw.tw.Close(); err != nil {
		return blob{}, err
	}
	if err := zw.Close(); err != nil {
		return blob{}, err
	}
	if err := tmp.Close(); err != nil {
		return blob{}, err
	}
	b := blob{
		Desc: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageLayerGzip,
			Digest:    digestOf(dh),
			Size:      cw.n,
		},
		DiffID: digestOf(uh),
		USize:  uw.n,
	}
	b.Path = filepath.Join(g.dir, b.Desc.Digest.Encoded())
	return b, os.Rename(tmp.Name(), b.Path)
}

func digestOf(h hash.Hash) digest.Digest {
	return digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
}

// jsonBlob writes v as a blob of media type mt.
func (g *generator) jsonBlob(mt string, v any) (blob, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return blob{}, err
	}
	d := digest.FromBytes(data)
	b := blob{Path: filepath.Join(g.dir, d.Encoded()), Desc: ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}}
	return b, os.WriteFile(b.Path, data, 0o644)
}

// manifest writes the config and manifest of an image made of layers for
// platform p.
func (g *generator) manifest(layers []blob, p ocispec.Platform) (cfg, man blob, err error) {
	img := ocispec.Image{
		Created:  &epoch,
		Platform: p,
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}, Cmd: []string{"/bin/sh"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, l.DiffID)
		img.History = append(img.History, ocispec.History{Created: &epoch, CreatedBy: "pullkit bench"})
		m.Layers = append(m.Layers, l.Desc)
	}
	if cfg, err = g.jsonBlob(ocispec.MediaTypeImageConfig, img); err != nil {
		return
	}
	m.Config = cfg.Desc
	man, err = g.jsonBlob(ocispec.MediaTypeImageManifest, m)
	return
}

// singleImage assembles an image of one platform from its layers.
func (g *generator) singleImage(name string, layers []blob) (*image, error) {
	cfg, man, err := g.manifest(layers, hostPlatform())
	if err != nil {
		return nil, err
	}
	im := &image{Name: name, Repo: "bench/" + name, Tag: "latest", Root: man.Desc, Layers: layers}
	im.Push = append(append(append(im.Push, layers...), cfg), man)
	im.PullBytes = cfg.Desc.Size + man.Desc.Size
	im.Fetch = []string{"manifest:" + man.Desc.Digest.String(), cfg.Desc.Digest.String()}
	for _, l := range layers {
		im.PullBytes += l.Desc.Size
		im.Fetch = append(im.Fetch, l.Desc.Digest.String())
	}
	return im, nil
}

func hostPlatform() ocispec.Platform {
	return ocispec.Platform{OS: "linux", Architecture: "amd64"}
}

// parallelLayers generates n layers, two at a time (the machine has two
// cores), in order of their index.
func parallelLayers(ctx context.Context, n int, gen func(i int) (blob, error)) ([]blob, error) {
	out := make([]blob, n)
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i := range n {
		g.Go(func() error {
			b, err := gen(i)
			out[i] = b
			return err
		})
	}
	return out, g.Wait()
}

// filesLayer makes a layer of the directories dirs, each inside the one
// before it, and, in the last, files named by the format file (given the
// file's number) of fileSize bytes from the filler called name, until the
// layer holds target compressed bytes.
func (g *generator) filesLayer(name string, dirs []string, file string, target, fileSize int64) (blob, error) {
	f := g.filler(name)
	return g.layer(func(lw *layerWriter) error {
		for _, d := range dirs {
			if err := lw.dir(d, 0o755); err != nil {
				return err
			}
		}
		dir := dirs[len(dirs)-1]
		for n := 0; lw.compressed() < target; n++ {
			if err := lw.file(dir+"/"+fmt.Sprintf(file, n), 0o644, fileSize, f); err != nil {
				return err
			}
		}
		return nil
	})
}

// big: four layers of about 256 MiB of gzip each, in files of 8 MiB of
// half-compressible data.
func (g *generator) big(ctx context.Context) (*image, error) {
	target := g.scaled(bigLayerSize, 1<<20)
	fileSize := min(int64(bigFileSize), max(target/8, 64<<10))
	layers, err := parallelLayers(ctx, bigLayers, func(i int) (blob, error) {
		return g.filesLayer(fmt.Sprintf("big/%d", i), []string{"opt", "opt/big", fmt.Sprintf("opt/big/layer%d", i)},
			"part-%04d.bin", target, fileSize)
	})
	if err != nil {
		return nil, err
	}
	return g.singleImage("big", layers)
}

// many: forty layers of about 2 MiB of gzip each.
func (g *generator) many(ctx context.Context) (*image, error) {
	target := g.scaled(manyLayerSize, 64<<10)
	fileSize := max(target/4, 16<<10)
	layers, err := parallelLayers(ctx, manyLayers, func(i int) (blob, error) {
		return g.filesLayer(fmt.Sprintf("many/%d", i), []string{"srv", "srv/many", fmt.Sprintf("srv/many/l%02d", i)},
			"f%03d.dat", target, fileSize)
	})
	if err != nil {
		return nil, err
	}
	return g.singleImage("many", layers)
}

// treeEntry is a file of the tree workload's first layer.
type treeEntry struct {
	name string
	kind byte // tar.TypeReg, tar.TypeSymlink or tar.TypeLink
}

// tree: one layer holding a file tree of tens of thousands of small files in
// nested directories (with symlinks and hardlinks), and a second layer that
// removes some of them with whiteouts, empties a few directories with
// opaque whiteouts, and rewrites others.
func (g *generator) tree(ctx context.Context) (*image, error) {
	nfiles := int(g.scaled(treeFiles, 200))
	rr := rand.New(g.rng("tree/shape"))
	f := g.filler("tree/0")
	// 24 top directories of 10 subdirectories of up to 8 leaves.
	var dirs []string
	for a := range 24 {
		top := fmt.Sprintf("usr/share/pkg%02d", a)
		dirs = append(dirs, top)
		for b := range 10 {
			sub := fmt.Sprintf("%s/mod%02d", top, b)
			dirs = append(dirs, sub)
			for c := range 1 + rr.IntN(8) {
				dirs = append(dirs, fmt.Sprintf("%s/lib%d", sub, c))
			}
		}
	}
	var files []treeEntry
	var regular []string
	hardTargets := map[string]bool{}
	l1, err := g.layer(func(lw *layerWriter) error {
		for _, d := range []string{"usr", "usr/share"} {
			if err := lw.dir(d, 0o755); err != nil {
				return err
			}
		}
		for _, d := range dirs {
			if err := lw.dir(d, 0o755); err != nil {
				return err
			}
		}
		for i := range nfiles {
			d := dirs[rr.IntN(len(dirs))]
			name := fmt.Sprintf("%s/file%05d", d, i)
			switch p := rr.IntN(1000); {
			case p < 10 && len(regular) > 0: // symlink to a file, relative
				target := regular[rr.IntN(len(regular))]
				rel, _ := filepath.Rel(d, target)
				if err := lw.link(tar.TypeSymlink, name+".lnk", rel); err != nil {
					return err
				}
				files = append(files, treeEntry{name + ".lnk", tar.TypeSymlink})
			case p < 12 && len(regular) > 0: // hardlink to an earlier file
				target := regular[rr.IntN(len(regular))]
				if err := lw.link(tar.TypeLink, name+".hard", target); err != nil {
					return err
				}
				hardTargets[target] = true
				files = append(files, treeEntry{name + ".hard", tar.TypeLink})
			default:
				var size int64
				switch q := rr.IntN(100); {
				case q < 80:
					size = int64(rr.IntN(4 << 10))
				case q < 98:
					size = int64(4<<10 + rr.IntN(12<<10))
				default:
					size = int64(16<<10 + rr.IntN(112<<10))
				}
				mode := int64(0o644)
				if rr.IntN(20) == 0 {
					mode = 0o755
				}
				if err := lw.file(name, mode, size, f); err != nil {
					return err
				}
				files = append(files, treeEntry{name, tar.TypeReg})
				regular = append(regular, name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	f2 := g.filler("tree/1")
	l2, err := g.layer(func(lw *layerWriter) error {
		// Opaque whiteouts on three leaf directories, each refilled with a file.
		opaque := map[string]bool{}
		for len(opaque) < 3 {
			d := dirs[rr.IntN(len(dirs))]
			if strings.Count(d, "/") == 4 {
				opaque[d] = true
			}
		}
		written := map[string]bool{}
		for _, d := range sortedKeys(opaque) {
			for _, p := range parents(d) {
				if !written[p] {
					written[p] = true
					if err := lw.dir(p, 0o755); err != nil {
						return err
					}
				}
			}
			if err := lw.empty(d + "/.wh..wh..opq"); err != nil {
				return err
			}
			if err := lw.file(d+"/refilled", 0o644, 1000, f2); err != nil {
				return err
			}
		}
		// Remove 5% of the files outside those directories, and rewrite 1%.
		for _, e := range files {
			d := path.Dir(e.name)
			if opaque[d] || e.kind == tar.TypeLink || e.kind == tar.TypeSymlink {
				continue
			}
			p := rr.IntN(100)
			// Hardlink targets stay, so that a flattening extractor (which
			// meets the upper layer first) can still link to them.
			if p >= 6 || hardTargets[e.name] {
				continue
			}
			for _, q := range parents(d) {
				if !written[q] {
					written[q] = true
					if err := lw.dir(q, 0o755); err != nil {
						return err
					}
				}
			}
			if p < 5 {
				if err := lw.empty(d + "/.wh." + path.Base(e.name)); err != nil {
					return err
				}
			} else if err := lw.file(e.name, 0o644, int64(rr.IntN(8<<10)), f2); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return g.singleImage("tree", []blob{l1, l2})
}

func parents(d string) []string {
	var out []string
	for p := d; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		out = append([]string{p}, out...)
	}
	return out
}

// multi: an OCI index of three platforms, three layers of about 16 MiB each.
func (g *generator) multi(ctx context.Context) (*image, error) {
	plats := []ocispec.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "arm", Variant: "v7"},
	}
	target := g.scaled(multiLayerSize, 64<<10)
	fileSize := max(target/4, 16<<10)
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	im := &image{Name: "multi", Repo: "bench/multi", Tag: "latest"}
	var manifests []blob
	for pi, p := range plats {
		layers, err := parallelLayers(ctx, multiLayers, func(i int) (blob, error) {
			return g.filesLayer(fmt.Sprintf("multi/%d/%d", pi, i),
				[]string{"app", "app/" + p.Architecture, fmt.Sprintf("app/%s/l%d", p.Architecture, i)},
				"f%03d.dat", target, fileSize)
		})
		if err != nil {
			return nil, err
		}
		cfg, man, err := g.manifest(layers, p)
		if err != nil {
			return nil, err
		}
		im.Push = append(append(im.Push, layers...), cfg)
		manifests = append(manifests, man)
		d := man.Desc
		d.Platform = &plats[pi]
		idx.Manifests = append(idx.Manifests, d)
		if pi == 0 {
			im.Layers = layers
			im.PullBytes = cfg.Desc.Size + man.Desc.Size
			im.Fetch = []string{"manifest:" + man.Desc.Digest.String(), cfg.Desc.Digest.String()}
			for _, l := range layers {
				im.PullBytes += l.Desc.Size
				im.Fetch = append(im.Fetch, l.Desc.Digest.String())
			}
		}
	}
	im.Push = append(im.Push, manifests...)
	ib, err := g.jsonBlob(ocispec.MediaTypeImageIndex, idx)
	if err != nil {
		return nil, err
	}
	im.Push = append(im.Push, ib)
	im.Root = ib.Desc
	im.PullBytes += ib.Desc.Size
	im.Fetch = append([]string{"manifest:" + ib.Desc.Digest.String()}, im.Fetch...)
	return im, nil
}

// dockerSave writes im as `docker save` (Docker 25 and later) writes it: an
// OCI image layout whose layers are uncompressed tars, with manifest.json
// and repositories for older readers. Layers come first and the metadata
// last, as docker writes them, so a streaming reader meets manifest.json at
// the end.
func (g *generator) dockerSave(im *image, file string) (saveArchive, error) {
	out, err := os.Create(file)
	if err != nil {
		return saveArchive{}, err
	}
	defer out.Close()
	cw := &countingWriter{w: out}
	tw := tar.NewWriter(cw)
	hdr := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX})
	}
	dirHdr := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	if err := dirHdr("blobs/"); err != nil {
		return saveArchive{}, err
	}
	if err := dirHdr("blobs/sha256/"); err != nil {
		return saveArchive{}, err
	}
	var uncompressed []blob
	for _, l := range im.Layers {
		if err := hdr("blobs/sha256/"+l.DiffID.Encoded(), l.USize); err != nil {
			return saveArchive{}, err
		}
		if err := gunzipFile(tw, l.Path, l.USize); err != nil {
			return saveArchive{}, err
		}
		u := l
		u.Desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: l.DiffID, Size: l.USize}
		uncompressed = append(uncompressed, u)
	}
	cfg, man, err := g.manifest(uncompressed, hostPlatform())
	if err != nil {
		return saveArchive{}, err
	}
	for _, b := range []blob{cfg, man} {
		data, err := os.ReadFile(b.Path)
		if err != nil {
			return saveArchive{}, err
		}
		if err := hdr("blobs/sha256/"+b.Desc.Digest.Encoded(), int64(len(data))); err != nil {
			return saveArchive{}, err
		}
		if _, err := tw.Write(data); err != nil {
			return saveArchive{}, err
		}
	}
	tag := im.Repo + ":" + im.Tag
	md := man.Desc
	md.Annotations = map[string]string{
		"io.containerd.image.name": "docker.io/" + tag,
		ocispec.AnnotationRefName:  im.Tag,
	}
	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	var layerPaths []string
	for _, u := range uncompressed {
		layerPaths = append(layerPaths, "blobs/sha256/"+u.Desc.Digest.Encoded())
	}
	manifestJSON := []map[string]any{{
		"Config":   "blobs/sha256/" + cfg.Desc.Digest.Encoded(),
		"RepoTags": []string{tag},
		"Layers":   layerPaths,
	}}
	top := uncompressed[len(uncompressed)-1].Desc.Digest.Encoded()
	repositories := map[string]map[string]string{im.Repo: {im.Tag: top}}
	for _, f := range []struct {
		name string
		v    any
	}{
		{"index.json", index},
		{"manifest.json", manifestJSON},
		{"oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}},
		{"repositories", repositories},
	} {
		data, err := json.Marshal(f.v)
		if err != nil {
			return saveArchive{}, err
		}
		if err := hdr(f.name, int64(len(data))); err != nil {
			return saveArchive{}, err
		}
		if _, err := tw.Write(data); err != nil {
			return saveArchive{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return saveArchive{}, err
	}
	return saveArchive{Path: file, Size: cw.n}, out.Close()
}

// gunzipFile copies the decompressed content of a gzip file to w, which
// must be exactly size bytes.
func gunzipFile(w io.Writer, file string, size int64) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	n, err := io.Copy(w, zr)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s: decompressed %d bytes, want %d", file, n, size)
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	return slices.Sorted(maps.Keys(m))
}
