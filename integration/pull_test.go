package integration

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit"
	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/local"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/unpack"
)

// stores are the content stores the pulls run against: the disk store in a
// temporary directory and the memory store.
var stores = []struct {
	name string
	open func(t *testing.T) (content.Store, content.Images)
}{
	{"local", func(t *testing.T) (content.Store, content.Images) {
		s, err := local.New(t.TempDir(), local.WithSync(false))
		if err != nil {
			t.Fatalf("local.New: %v", err)
		}
		return s, s.Images()
	}},
	{"memory", func(*testing.T) (content.Store, content.Images) {
		s := memory.New()
		return s, s.Images()
	}},
}

// checkBlobs fails unless store holds every blob in want, byte for byte.
func checkBlobs(t *testing.T, store content.Provider, want map[digest.Digest][]byte) {
	t.Helper()
	ctx := testCtx(t)
	for d, b := range want {
		ra, err := store.ReaderAt(ctx, ocispec.Descriptor{Digest: d, Size: int64(len(b))})
		if err != nil {
			t.Errorf("blob %s: %v", d, err)
			continue
		}
		got := make([]byte, ra.Size())
		_, err = ra.ReadAt(got, 0)
		ra.Close()
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("blob %s: read %d bytes (%v), want the %d bytes pushed", d, len(got), err, len(b))
		}
	}
}

// has reports whether store has the blob d.
func has(t *testing.T, store content.Manager, d digest.Digest) bool {
	t.Helper()
	_, err := store.Info(testCtx(t), d)
	if err != nil && !errdefs.IsNotFound(err) {
		t.Fatalf("Info(%s): %v", d, err)
	}
	return err == nil
}

// checkName fails unless names has exactly one record, name, pointing at root.
func checkName(t *testing.T, names content.Images, name string, root ocispec.Descriptor) {
	t.Helper()
	ctx := testCtx(t)
	rec, err := names.Get(ctx, name)
	if err != nil {
		t.Fatalf("names.Get(%q) error = %v", name, err)
	}
	if rec.Target.Digest != root.Digest || rec.Target.MediaType != root.MediaType || rec.Target.Size != root.Size {
		t.Errorf("name record target = %s %s %d, want %s %s %d", rec.Target.MediaType, rec.Target.Digest, rec.Target.Size, root.MediaType, root.Digest, root.Size)
	}
	all, err := names.List(ctx)
	if err != nil {
		t.Fatalf("names.List: %v", err)
	}
	if len(all) != 1 || all[0].Name != name {
		t.Errorf("names.List() has %d records (%v), want only %q", len(all), all, name)
	}
}

// checkPulled fails unless img describes want, pulled as name from root,
// with every blob of want in store and the name record in names.
func checkPulled(t *testing.T, got pullkit.Image, store content.Store, names content.Images, name string, root ocispec.Descriptor, want image) {
	t.Helper()
	if got.Name != name {
		t.Errorf("Name = %q, want %q", got.Name, name)
	}
	if got.Target.Digest != root.Digest || got.Target.MediaType != root.MediaType || got.Target.Size != root.Size {
		t.Errorf("Target = %s %s %d, want %s %s %d", got.Target.MediaType, got.Target.Digest, got.Target.Size, root.MediaType, root.Digest, root.Size)
	}
	if got.Manifest.Digest != want.Manifest.Digest {
		t.Errorf("Manifest = %s, want %s", got.Manifest.Digest, want.Manifest.Digest)
	}
	if got.ID != want.Config.Digest {
		t.Errorf("ID = %s, want the config digest %s", got.ID, want.Config.Digest)
	}
	wantSize := want.Size()
	if root.Digest != want.Manifest.Digest {
		wantSize += root.Size
	}
	if got.Size != wantSize {
		t.Errorf("Size = %d, want %d", got.Size, wantSize)
	}
	checkBlobs(t, store, want.Blobs())
	if !has(t, store, root.Digest) {
		t.Errorf("store lacks the root %s", root.Digest)
	}
	checkName(t, names, name, root)
}

// recorder collects the events of a pull.
type recorder struct {
	mu     sync.Mutex
	events []fetch.Event
}

func (r *recorder) observe(e fetch.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// digests returns the digests with an event of kind, sorted, without
// duplicates.
func (r *recorder) digests(kind fetch.EventKind) []digest.Digest {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ds []digest.Digest
	for _, e := range r.events {
		if e.Kind == kind {
			ds = append(ds, e.Desc.Digest)
		}
	}
	slices.Sort(ds)
	return slices.Compact(ds)
}

// sortedKeys returns the digests of m, sorted.
func sortedKeys(m map[digest.Digest][]byte) []digest.Digest {
	var ds []digest.Digest
	for d := range m {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds
}

// TestPullPlainHTTP pulls single images, an OCI index and a Docker manifest
// list, by tag and by digest, from a registry on plain HTTP, into each store.
func TestPullPlainHTTP(t *testing.T) {
	reg := startRegistry(t, nil)
	push := pusher{base: reg.URL}
	host := reg.Host

	ociImage := buildImage("oci-single", linuxAMD64, false)
	dockerImage := buildImage("docker-single", linuxAMD64, true)
	ociIndex := buildIndex(false, buildImage("oci-amd64", linuxAMD64, false), buildImage("oci-arm64", linuxARM64, false))
	dockerList := buildIndex(true, buildImage("docker-amd64", linuxAMD64, true), buildImage("docker-arm64", linuxARM64, true))

	push.image(t, "team/oci", "v1", ociImage)
	push.image(t, "team/docker", "v1", dockerImage)
	push.index(t, "team/index", "v1", ociIndex)
	push.index(t, "team/list", "v1", dockerList)

	tests := []struct {
		name  string
		ref   string
		root  ocispec.Descriptor
		want  image   // the image pulled
		other []image // images of the index that must stay behind
	}{
		{"OCI manifest by tag", host + "/team/oci:v1", ociImage.Manifest, ociImage, nil},
		{"OCI manifest by digest", host + "/team/oci@" + ociImage.Manifest.Digest.String(), ociImage.Manifest, ociImage, nil},
		{"Docker manifest by tag", host + "/team/docker:v1", dockerImage.Manifest, dockerImage, nil},
		{"Docker manifest by digest", host + "/team/docker@" + dockerImage.Manifest.Digest.String(), dockerImage.Manifest, dockerImage, nil},
		{"OCI index by tag", host + "/team/index:v1", ociIndex.Desc, ociIndex.Images[1], ociIndex.Images[:1]},
		{"OCI index by digest", host + "/team/index@" + ociIndex.Desc.Digest.String(), ociIndex.Desc, ociIndex.Images[1], ociIndex.Images[:1]},
		{"Docker list by tag", host + "/team/list:v1", dockerList.Desc, dockerList.Images[1], dockerList.Images[:1]},
		{"Docker list by digest", host + "/team/list@" + dockerList.Desc.Digest.String(), dockerList.Desc, dockerList.Images[1], dockerList.Images[:1]},
	}
	for _, st := range stores {
		for _, tt := range tests {
			t.Run(st.name+"/"+tt.name, func(t *testing.T) {
				ctx := testCtx(t)
				store, names := st.open(t)
				img, err := pullkit.Pull(ctx, tt.ref, store, names, pullkit.WithPlatforms(platforms.OnlyStrict(linuxARM64)))
				if err != nil {
					t.Fatalf("Pull(%q) error = %v", tt.ref, err)
				}
				checkPulled(t, img, store, names, tt.ref, tt.root, tt.want)
				for _, o := range tt.other {
					for d := range o.Blobs() {
						if has(t, store, d) {
							t.Errorf("store has %s of the other platform's image", d)
						}
					}
				}
			})
		}
	}

	// Pulling a second time finds everything in the store: the registry is
	// asked for the root only.
	t.Run("again", func(t *testing.T) {
		ctx := testCtx(t)
		store, names := stores[0].open(t)
		ref := host + "/team/index:v1"
		opts := []pullkit.Option{pullkit.WithPlatforms(platforms.OnlyStrict(linuxARM64))}
		if _, err := pullkit.Pull(ctx, ref, store, names, opts...); err != nil {
			t.Fatalf("first Pull(%q) error = %v", ref, err)
		}
		reg.log.reset()
		var rec recorder
		img, err := pullkit.Pull(ctx, ref, store, names, append(opts, pullkit.WithObserver(rec.observe))...)
		if err != nil {
			t.Fatalf("second Pull(%q) error = %v", ref, err)
		}
		checkPulled(t, img, store, names, ref, ociIndex.Desc, ociIndex.Images[1])
		if n := reg.log.count(contentRequest(http.MethodGet)); n > 1 {
			t.Errorf("second pull sent %d GET requests for content, want at most 1 (the index)", n)
		}
		if got := rec.digests(fetch.Committed); len(got) != 0 {
			t.Errorf("second pull committed %v, want nothing", got)
		}
	})

	t.Run("all platforms", func(t *testing.T) {
		ctx := testCtx(t)
		store, names := stores[0].open(t)
		var rec recorder
		ref := host + "/team/list:v1"
		img, err := pullkit.Pull(ctx, ref, store, names,
			pullkit.WithAllPlatforms(),
			pullkit.WithPlatforms(platforms.OnlyStrict(linuxAMD64)),
			pullkit.WithObserver(rec.observe))
		if err != nil {
			t.Fatalf("Pull(%q) error = %v", ref, err)
		}
		checkPulled(t, img, store, names, ref, dockerList.Desc, dockerList.Images[0])
		want := map[digest.Digest][]byte{dockerList.Desc.Digest: dockerList.Bytes}
		for _, sub := range dockerList.Images {
			for d, b := range sub.Blobs() {
				want[d] = b
			}
		}
		checkBlobs(t, store, want)
		if got := rec.digests(fetch.Committed); !slices.Equal(got, sortedKeys(want)) {
			t.Errorf("Committed events for %v, want one for each blob %v", got, sortedKeys(want))
		}
	})

	// The layers are real: what was pulled unpacks, with every diff ID of
	// the config verified, into the files the layers were built from.
	t.Run("unpack", func(t *testing.T) {
		ctx := testCtx(t)
		store, names := stores[0].open(t)
		ref := host + "/team/docker:v1"
		img, err := pullkit.Pull(ctx, ref, store, names)
		if err != nil {
			t.Fatalf("Pull(%q) error = %v", ref, err)
		}
		dir := t.TempDir()
		if err := unpack.ToDir(ctx, store, img.Manifest, dir); err != nil {
			t.Fatalf("unpack.ToDir: %v", err)
		}
		for i, l := range dockerImage.Layers {
			for name, want := range l.Files {
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: %d bytes (%v), want layer %d's %d bytes", name, len(got), err, i, len(want))
				}
			}
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, ref := range []string{
			host + "/team/oci:v2",
			host + "/team/nothing:v1",
			host + "/team/oci@" + dockerImage.Manifest.Digest.String(),
		} {
			store, names := stores[1].open(t)
			_, err := pullkit.Pull(testCtx(t), ref, store, names)
			if !errdefs.IsNotFound(err) {
				t.Errorf("Pull(%q) error = %v, want NotFound", ref, err)
			}
			if all, lerr := names.List(testCtx(t)); lerr != nil || len(all) != 0 {
				t.Errorf("after a failed Pull(%q), names = %v (%v), want none", ref, all, lerr)
			}
		}
	})
}
