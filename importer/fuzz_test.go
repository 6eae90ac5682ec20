package importer

import (
	"bytes"
	"context"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/internal/compresstest"
	"github.com/pullkit/pullkit/reference"
)

// FuzzManifestJSON decodes docker save manifest.json files. Property: an
// accepted manifest has only clean, relative paths without "..", and
// RepoTags that are normalized references; a refused one gets an
// InvalidArgument or ResourceExhausted error.
func FuzzManifestJSON(f *testing.F) {
	for _, s := range []string{
		`[{"Config":"abc.json","RepoTags":["ubuntu:latest"],"Layers":["l1/layer.tar","l2/layer.tar"]}]`,
		`[{"Config":"blobs/sha256/aa","RepoTags":null,"Layers":["./blobs/sha256/bb"]}]`,
		`[{"Config":"../etc/passwd","Layers":[]}]`,
		`[{"Config":"/abs.json","Layers":["a//b/../c"]}]`,
		`[{"Config":"c.json","Layers":["..\\x"]}]`,
		`[{"Config":"c.json","Layers":["."]}]`,
		`[{"Config":"c.json","RepoTags":["a@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}]`,
		`[{"Config":"c.json","LayerSources":{"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855":{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":1,"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}}]`,
		`[]`, `null`, `{}`, `[{}]`, `[{"Config":""}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := decodeManifestJSON(b)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) && !errdefs.IsResourceExhausted(err) {
				t.Fatalf("decodeManifestJSON() error = %v, not classified", err)
			}
			return
		}
		for _, m := range ms {
			for _, p := range append([]string{m.Config}, m.Layers...) {
				if p == "" || p == "." || path.Clean(p) != p || path.IsAbs(p) || strings.HasPrefix(p, `\`) {
					t.Fatalf("accepted path %q is not clean and relative", p)
				}
				for _, el := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
					if el == ".." {
						t.Fatalf("accepted path %q has a \"..\" element", p)
					}
				}
			}
			for _, tag := range m.RepoTags {
				ref, err := reference.Parse(tag)
				if err != nil || ref.String() != tag || ref.Tag == "" || ref.Digest != "" {
					t.Fatalf("accepted RepoTag %q is not a normalized tagged name (%v)", tag, err)
				}
			}
		}
	})
}

// FuzzIndexJSON decodes OCI index.json files and names their entries.
// Property: every entry accepted has a valid digest, a media type and a
// size that is not negative; names are normalized references; refusals
// are classified.
func FuzzIndexJSON(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":2,"annotations":{"org.opencontainers.image.ref.name":"1.0"}}]}`,
		`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":2,"annotations":{"io.containerd.image.name":"docker.io/library/x:1"}}]}`,
		`{"manifests":[{"digest":"sha256:xyz","size":-1}]}`,
		`{"mediaType":"application/json","manifests":[]}`,
		`{"manifests":[{"mediaType":"m","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0,"annotations":{"org.opencontainers.image.ref.name":"UPPER/x:1"}}]}`,
	} {
		f.Add([]byte(s))
	}
	im := &importer{}
	var err error
	if im.prefix, err = parsePrefix("example.com/fuzz", time.Now()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := decodeIndexJSON(b)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) && !errdefs.IsResourceExhausted(err) {
				t.Fatalf("decodeIndexJSON() error = %v, not classified", err)
			}
			return
		}
		for _, d := range idx.Manifests {
			if d.Digest.Validate() != nil || d.MediaType == "" || d.Size < 0 {
				t.Fatalf("accepted entry %+v", d)
			}
			ns, err := im.ociNames(d)
			if err != nil {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("ociNames() error = %v, not classified", err)
				}
				continue
			}
			for _, n := range ns {
				if ref, err := reference.Parse(n); err != nil || ref.String() != n {
					t.Fatalf("name %q is not normalized (%v)", n, err)
				}
			}
		}
	})
}

// FuzzImport imports arbitrary bytes. Property: no panic; an error is
// classified and leaves no name in the store; a success leaves names that
// point at content the store has.
func FuzzImport(f *testing.F) {
	l := newLayer(f, plain, "f")
	gz := newLayer(f, gzipped, "g")
	img := newSaved([]string{"fuzz:1"}, "linux/amd64", l, gz)
	save := tarball(f, dockerSave(img)...)
	f.Add(save)
	f.Add(compresstest.Gzip(save))
	f.Add(compresstest.Zstd(save))
	o := newLayout()
	m := o.image("linux/amd64", l)
	f.Add(tarball(f, o.files(withName(o.indexOf(withPlatform(m, "linux/amd64")), ocispec.AnnotationRefName, "v1"))...))
	f.Add(tarball(f, symlink("a/layer.tar", "../b/layer.tar"), reg("b/layer.tar", l.blob), reg("manifest.json", []byte(`[{"Config":"c.json","Layers":["a/layer.tar"]}]`))))
	f.Add(save[:len(save)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx := context.Background()
		store := memory.New()
		imgs, err := Import(ctx, store, store.Images(), bytes.NewReader(b))
		listed, lerr := store.Images().List(ctx)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if err != nil {
			if !classified(err) {
				t.Fatalf("Import() error = %v, not classified", err)
			}
			if len(listed) != 0 {
				t.Fatalf("Import() failed (%v) but left names %v", err, names(listed))
			}
			return
		}
		if len(imgs) == 0 || len(listed) != len(imgs) {
			t.Fatalf("Import() returned %v, store lists %v", names(imgs), names(listed))
		}
		for _, img := range listed {
			if _, err := store.Info(ctx, img.Target.Digest); err != nil {
				t.Fatalf("name %s points at %s: %v", img.Name, img.Target.Digest, err)
			}
		}
	})
}
