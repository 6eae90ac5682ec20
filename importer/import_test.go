package importer

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/internal/compresstest"
)

func TestImportShapes(t *testing.T) {
	base := newLayer(t, plain, "etc/os-release")
	app := newLayer(t, plain, "app/bin", "app/lib")
	gz := newLayer(t, gzipped, "gz/file")
	zs := newLayer(t, zstded, "zst/file")
	ubuntu := newSaved([]string{"ubuntu:latest", "ubuntu:22.04"}, "linux/amd64", base, app)

	// Docker 25: an OCI layout whose manifests docker save also lists.
	mixed := newLayout()
	mixedImg := mixed.image("linux/amd64", base, app)
	mixedCfg := newConfig("linux/amd64", base, app)
	docker25 := append(mixed.files(withName(mixedImg, annotationImageName, "docker.io/library/web:1")),
		jsonFile("manifest.json", []map[string]any{{
			"Config":   blobPath(digest.FromBytes(mixedCfg)),
			"RepoTags": []string{"web:1", "web:stable"},
			"Layers":   []string{blobPath(base.digest()), blobPath(app.digest())},
		}}),
		jsonFile("repositories", map[string]any{"web": map[string]string{"1": base.digest().Encoded()}}))

	// OCI: index.json → index → {amd64 manifest, index → {arm64 manifest}}.
	nested := newLayout()
	amd := withPlatform(nested.image("linux/amd64", base, gz), "linux/amd64")
	arm := withPlatform(nested.image("linux/arm64", base, zs), "linux/arm64")
	inner := nested.indexOf(arm)
	outer := nested.indexOf(amd, inner)
	nestedFiles := nested.files(withName(outer, ocispec.AnnotationRefName, "example.com/app:1.0"))

	// A multi-platform index of which the archive ships one platform.
	sparse := newLayout()
	present := withPlatform(sparse.image("linux/amd64", base), "linux/amd64")
	absent := withPlatform(descOf(ocispec.MediaTypeImageManifest, []byte(`{"absent":true}`)), "linux/s390x")
	sparseIdx := sparse.indexOf(present, absent)

	// Legacy Docker: a layer shared by two images is a chain of links.
	chainA := newSaved([]string{"a:1"}, "linux/amd64", base)
	chainB := newSaved([]string{"b:1"}, "linux/amd64", base, app)
	chainFiles := []file{
		reg("l1/layer.tar", base.blob),
		symlink("l2/layer.tar", "../l1/layer.tar"),
		symlink("l3/layer.tar", "../l2/layer.tar"),
		hardlink("l4/layer.tar", "l3/layer.tar"),
		reg("l5/layer.tar", app.blob),
		reg(chainA.configDigest().Encoded()+".json", chainA.config),
		reg(chainB.configDigest().Encoded()+".json", chainB.config),
		jsonFile("manifest.json", []map[string]any{
			{"Config": chainA.configDigest().Encoded() + ".json", "RepoTags": []string{"a:1"}, "Layers": []string{"l3/layer.tar"}},
			{"Config": chainB.configDigest().Encoded() + ".json", "RepoTags": []string{"b:1"}, "Layers": []string{"./l4/layer.tar", "l5/layer.tar"}},
		}),
	}

	untagged := newSaved(nil, "linux/amd64", app)
	repos := newSaved(nil, "linux/amd64", base, app)

	tests := []struct {
		name    string
		archive []byte
		opts    []Option
		want    []string // names
		// wantTarget, when set, is the digest every name must point at.
		wantTarget digest.Digest
	}{
		{
			name:    "docker save, manifest.json last",
			archive: tarball(t, dockerSave(ubuntu)...),
			want:    []string{"docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:latest"},
		},
		{
			name:    "docker save, two images sharing layers",
			archive: tarball(t, dockerSave(ubuntu, newSaved([]string{"ghcr.io/acme/app:2"}, "linux/arm64", base, app, gz))...),
			want:    []string{"docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:latest", "ghcr.io/acme/app:2"},
		},
		{
			name:    "docker save, manifest.json first",
			archive: tarball(t, rotate(dockerSave(ubuntu))...),
			want:    []string{"docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:latest"},
		},
		{
			name:    "docker save, symlinked and hard-linked layer.tar chains",
			archive: tarball(t, chainFiles...),
			want:    []string{"docker.io/library/a:1", "docker.io/library/b:1"},
		},
		{
			name: "docker save, names from repositories",
			archive: tarball(t, append(dockerSave(repos),
				jsonFile("repositories", map[string]any{"myrepo": map[string]string{"v1": app.digest().Encoded(), "v2": app.digest().Encoded()}}))...),
			want: []string{"docker.io/library/myrepo:v1", "docker.io/library/myrepo:v2"},
		},
		{
			name:    "docker save by ID, no RepoTags, default prefix",
			archive: tarball(t, dockerSave(untagged)...),
			want:    []string{"docker.io/library/import-" + time.Now().UTC().Format("2006-01-02") + "@"},
		},
		{
			name:    "docker save by ID, name prefix",
			archive: tarball(t, dockerSave(untagged)...),
			opts:    []Option{WithNamePrefix("example.com/imported")},
			want:    []string{"example.com/imported@"},
		},
		{
			name:    "docker save with digest names",
			archive: tarball(t, dockerSave(ubuntu)...),
			opts:    []Option{WithDigestNames(), WithNamePrefix("localhost:5000/x")},
			want:    []string{"docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:latest", "localhost:5000/x@"},
		},
		{
			name:    "docker save, gzip and zstd layers keep their media types",
			archive: tarball(t, dockerSave(newSaved([]string{"comp:1"}, "linux/amd64", base, gz, zs))...),
			want:    []string{"docker.io/library/comp:1"},
		},
		{
			name:    "docker save, gzip-wrapped",
			archive: compresstest.Gzip(tarball(t, dockerSave(ubuntu)...)),
			want:    []string{"docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:latest"},
		},
		{
			name:    "docker save, zstd-wrapped, compressed layers inside",
			archive: compresstest.Zstd(tarball(t, dockerSave(newSaved([]string{"z:1"}, "linux/amd64", gz, zs))...)),
			want:    []string{"docker.io/library/z:1"},
		},
		{
			name:       "Docker 25 mixed layout keeps OCI manifest and manifest.json names",
			archive:    tarball(t, docker25...),
			want:       []string{"docker.io/library/web:1", "docker.io/library/web:stable"},
			wantTarget: mixedImg.Digest,
		},
		{
			name:       "OCI layout, nested index",
			archive:    tarball(t, nestedFiles...),
			want:       []string{"example.com/app:1.0"},
			wantTarget: outer.Digest,
		},
		{
			name:       "OCI layout, nested index, arm64 only",
			archive:    tarball(t, nestedFiles...),
			opts:       []Option{WithPlatforms(platforms.Only(platforms.MustParse("linux/arm64")))},
			want:       []string{"example.com/app:1.0"},
			wantTarget: outer.Digest,
		},
		{
			name:       "OCI layout, gzip-wrapped, index missing a platform",
			archive:    compresstest.Gzip(tarball(t, sparse.files(withName(sparseIdx, annotationImageName, "quay.io/x/y:z"))...)),
			want:       []string{"quay.io/x/y:z"},
			wantTarget: sparseIdx.Digest,
		},
		{
			name:    "OCI layout, tag-only ref name and unnamed entry",
			archive: tarball(t, sparse.files(withName(present, ocispec.AnnotationRefName, "v2"), sparseIdx)...),
			opts:    []Option{WithNamePrefix("registry.local/team/img")},
			want:    []string{"registry.local/team/img:v2", "registry.local/team/img@"},
		},
		{
			name:    "docker save, platform filter keeps one image",
			archive: tarball(t, dockerSave(ubuntu, newSaved([]string{"arm:1"}, "linux/arm64", base))...),
			opts:    []Option{WithPlatforms(platforms.Only(platforms.MustParse("linux/arm64")))},
			want:    []string{"docker.io/library/arm:1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := memory.New()
			imgs, err := importPiped(t, store, store.Images(), tt.archive, tt.opts...)
			if err != nil {
				t.Fatalf("Import() error = %v", err)
			}
			got := names(imgs)
			if len(got) != len(tt.want) {
				t.Fatalf("Import() names = %q, want %q", got, tt.want)
			}
			for i, w := range tt.want {
				if strings.HasSuffix(w, "@") {
					w = regexp.QuoteMeta(w) + "sha256:[0-9a-f]{64}$"
				} else {
					w = "^" + regexp.QuoteMeta(w) + "$"
				}
				if !regexp.MustCompile(w).MatchString(got[i]) {
					t.Errorf("name %d = %q, want %s", i, got[i], w)
				}
			}
			listed, err := store.Images().List(context.Background())
			if err != nil || !slices.Equal(names(listed), got) {
				t.Errorf("stored names = %q (err %v), returned %q", names(listed), err, got)
			}
			for _, img := range imgs {
				if tt.wantTarget != "" && img.Target.Digest != tt.wantTarget {
					t.Errorf("%s points at %s, want %s", img.Name, img.Target.Digest, tt.wantTarget)
				}
				if i := strings.IndexByte(img.Name, '@'); i >= 0 && img.Name[i+1:] != img.Target.Digest.String() {
					t.Errorf("digest name %s points at %s", img.Name, img.Target.Digest)
				}
				checkImage(t, store, img.Target)
			}
		})
	}
}

// rotate moves the last file (manifest.json) first.
func rotate(fs []file) []file {
	return append([]file{fs[len(fs)-1]}, fs[:len(fs)-1]...)
}

func TestImportDockerManifest(t *testing.T) {
	base := newLayer(t, plain, "a")
	gz := newLayer(t, gzipped, "b")
	zs := newLayer(t, zstded, "c")
	img := newSaved([]string{"x:1"}, "linux/arm64", base, gz, zs)
	store := memory.New()
	imgs, err := importPiped(t, store, store.Images(), tarball(t, dockerSave(img)...))
	if err != nil {
		t.Fatal(err)
	}
	target := imgs[0].Target
	if target.MediaType != handlers.MediaTypeDockerSchema2Manifest {
		t.Errorf("target media type %q", target.MediaType)
	}
	if target.Platform == nil || platforms.Format(*target.Platform) != "linux/arm64" {
		t.Errorf("target platform %v, want linux/arm64", target.Platform)
	}
	m, err := handlers.Manifest(context.Background(), store, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != handlers.MediaTypeDockerSchema2Config || m.Config.Digest != img.configDigest() {
		t.Errorf("config %+v, want docker config %s", m.Config, img.configDigest())
	}
	for i, l := range []layer{base, gz, zs} {
		want := ocispec.Descriptor{MediaType: l.dockerType(), Digest: l.digest(), Size: int64(len(l.blob))}
		if got := m.Layers[i]; got.MediaType != want.MediaType || got.Digest != want.Digest || got.Size != want.Size {
			t.Errorf("layer %d = %+v, want %+v", i, got, want)
		}
	}
	// The manifest is labelled with containerd's keys, from handlers.
	info, err := store.Info(context.Background(), target.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"containerd.io/gc.ref.content.config": img.configDigest().String(),
		"containerd.io/gc.ref.content.l.0":    base.digest().String(),
		"containerd.io/gc.ref.content.l.2":    zs.digest().String(),
	} {
		if info.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, info.Labels[k], v)
		}
	}
}

// TestImportAgain imports an archive twice, and one whose name already
// points elsewhere: the second import changes nothing; the third moves the
// name.
func TestImportAgain(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	first := tarball(t, dockerSave(newSaved([]string{"app:1"}, "linux/amd64", newLayer(t, plain, "v1")))...)
	imgs1, err := importPiped(t, store, store.Images(), first)
	if err != nil {
		t.Fatal(err)
	}
	imgs2, err := importPiped(t, store, store.Images(), first)
	if err != nil {
		t.Fatal(err)
	}
	if imgs1[0].Target.Digest != imgs2[0].Target.Digest || !imgs1[0].CreatedAt.Equal(imgs2[0].CreatedAt) {
		t.Errorf("re-import changed the record: %+v then %+v", imgs1[0], imgs2[0])
	}
	second := tarball(t, dockerSave(newSaved([]string{"app:1"}, "linux/amd64", newLayer(t, plain, "v2")))...)
	imgs3, err := importPiped(t, store, store.Images(), second)
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Images().Get(ctx, "docker.io/library/app:1")
	if err != nil || got.Target.Digest != imgs3[0].Target.Digest || got.Target.Digest == imgs1[0].Target.Digest {
		t.Errorf("name after a newer import = %+v (err %v), want target %s", got.Target, err, imgs3[0].Target.Digest)
	}
}

// TestImportNoImages checks that a nil content.Images stores no record but
// still reports the names.
func TestImportNoImages(t *testing.T) {
	store := memory.New()
	imgs, err := importPiped(t, store, nil, tarball(t, dockerSave(newSaved([]string{"n:1"}, "linux/amd64", newLayer(t, plain, "n")))...))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/n:1" {
		t.Fatalf("records = %+v", imgs)
	}
	if listed, _ := store.Images().List(context.Background()); len(listed) != 0 {
		t.Errorf("stored %v, want nothing", names(listed))
	}
	checkImage(t, store, imgs[0].Target)
}

// TestImportUnpack checks that the unpacker sees every image, complete,
// before any name exists, and that its failure leaves no name.
func TestImportUnpack(t *testing.T) {
	archive := tarball(t, dockerSave(
		newSaved([]string{"u:1"}, "linux/amd64", newLayer(t, plain, "u1")),
		newSaved([]string{"u:2"}, "linux/amd64", newLayer(t, gzipped, "u2")))...)
	store := memory.New()
	var seen []digest.Digest
	u := UnpackerFunc(func(ctx context.Context, target ocispec.Descriptor) error {
		if listed, _ := store.Images().List(ctx); len(listed) != 0 {
			t.Errorf("names exist before unpack: %v", names(listed))
		}
		checkImage(t, store, target)
		seen = append(seen, target.Digest)
		return nil
	})
	imgs, err := importPiped(t, store, store.Images(), archive, WithUnpack(u))
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || len(imgs) != 2 {
		t.Fatalf("unpacked %d images, imported %d, want 2 and 2", len(seen), len(imgs))
	}

	store = memory.New()
	boom := UnpackerFunc(func(context.Context, ocispec.Descriptor) error { return content.ErrTooLarge })
	if _, err := importPiped(t, store, store.Images(), archive, WithUnpack(boom)); err == nil {
		t.Fatal("Import() with a failing unpacker succeeded")
	}
	checkClean(t, store)
}

// TestImportForeignLayer imports a docker save archive whose Windows-style
// foreign base layer is left out, as LayerSources describes it: the
// manifest lists the layer where a registry serves it.
func TestImportForeignLayer(t *testing.T) {
	base := newLayer(t, gzipped, "Files/base")
	top := newLayer(t, plain, "Files/app")
	img := newSaved([]string{"win:1"}, "windows/amd64", base, top)
	foreign := ocispec.Descriptor{
		MediaType: handlers.MediaTypeDockerSchema2LayerForeign,
		Digest:    base.digest(),
		Size:      int64(len(base.blob)),
		URLs:      []string{"https://mcr.example.com/base"},
	}
	cfgName := img.configDigest().Encoded() + ".json"
	archive := tarball(t,
		reg("top/layer.tar", top.blob),
		reg(cfgName, img.config),
		jsonFile("manifest.json", []map[string]any{{
			"Config": cfgName, "RepoTags": []string{"win:1"}, "Layers": []string{"base/layer.tar", "top/layer.tar"},
			"LayerSources": map[digest.Digest]ocispec.Descriptor{base.diffID: foreign},
		}}))
	store := memory.New()
	imgs, err := importPiped(t, store, store.Images(), archive)
	if err != nil {
		t.Fatal(err)
	}
	m, err := handlers.Manifest(context.Background(), store, imgs[0].Target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Layers[0]; got.MediaType != foreign.MediaType || got.Digest != foreign.Digest || len(got.URLs) != 1 {
		t.Errorf("layer 0 = %+v, want the foreign descriptor %+v", got, foreign)
	}
	if got := m.Layers[1]; got.Digest != top.digest() || got.MediaType != handlers.MediaTypeDockerSchema2LayerUncompressed {
		t.Errorf("layer 1 = %+v, want the shipped layer", got)
	}
}

// TestImportMixedFallback checks a Docker 25 archive whose manifest.json
// lists an image the OCI index does not: it gets a manifest written for it.
func TestImportMixedFallback(t *testing.T) {
	a := newLayer(t, plain, "a")
	b := newLayer(t, plain, "b")
	o := newLayout()
	m := o.image("linux/amd64", a)
	other := newConfig("linux/arm64", b)
	files := append(o.files(withName(m, annotationImageName, "docker.io/library/one:1")),
		blobFile(b.blob), blobFile(other),
		jsonFile("manifest.json", []map[string]any{
			{"Config": blobPath(digest.FromBytes(newConfig("linux/amd64", a))), "RepoTags": []string{"one:1"}, "Layers": []string{blobPath(a.digest())}},
			{"Config": blobPath(digest.FromBytes(other)), "RepoTags": []string{"two:2"}, "Layers": []string{blobPath(b.digest())}},
		}))
	store := memory.New()
	imgs, err := importPiped(t, store, store.Images(), tarball(t, files...))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(imgs); !slices.Equal(got, []string{"docker.io/library/one:1", "docker.io/library/two:2"}) {
		t.Fatalf("names = %q", got)
	}
	if imgs[0].Target.Digest != m.Digest || imgs[1].Target.MediaType != handlers.MediaTypeDockerSchema2Manifest {
		t.Errorf("targets = %+v, %+v: want the OCI manifest, then a written Docker manifest", imgs[0].Target, imgs[1].Target)
	}
	for _, img := range imgs {
		checkImage(t, store, img.Target)
	}
}
