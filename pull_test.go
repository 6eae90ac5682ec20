package pullkit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit"
	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/local"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/handlers/schema1"
	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

var (
	linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linux386   = ocispec.Platform{OS: "linux", Architecture: "386"}
	linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
	linuxS390X = ocispec.Platform{OS: "linux", Architecture: "s390x"}
)

// stores are the content stores every pull test runs against: the disk
// store in a temporary directory and the memory store.
var stores = []struct {
	name string
	open func(t *testing.T) (content.Store, content.Images)
}{
	{"memory", func(*testing.T) (content.Store, content.Images) {
		s := memory.New()
		return s, s.Images()
	}},
	{"local", func(t *testing.T) (content.Store, content.Images) {
		s, err := local.New(t.TempDir(), local.WithSync(false))
		if err != nil {
			t.Fatalf("local.New: %v", err)
		}
		return s, s.Images()
	}},
}

// testCtx returns a context that ends with the test, with a deadline far
// beyond what any test needs, so that a hang fails instead of blocking.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// smallImage is a random image of 3 layers for platform p.
func smallImage(seed int64, p ocispec.Platform, opts ...registrytest.ImageOption) registrytest.Image {
	return registrytest.RandomImage(seed, 3, 16<<10, append([]registrytest.ImageOption{registrytest.WithPlatform(p)}, opts...)...)
}

// composeImage builds an OCI image for p from existing layers, so that
// several images can share them.
func composeImage(t *testing.T, p ocispec.Platform, layers ...registrytest.Layer) registrytest.Image {
	t.Helper()
	cfg := ocispec.Image{Platform: p, RootFS: ocispec.RootFS{Type: "layers"}}
	manifest := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		manifest.Layers = append(manifest.Layers, l.Descriptor)
	}
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	manifest.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgBytes), Size: int64(len(cfgBytes))}
	mBytes, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	return registrytest.Image{
		Manifest:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mBytes), Size: int64(len(mBytes)), Platform: &p},
		ManifestBytes: mBytes,
		Config:        manifest.Config,
		ConfigBytes:   cfgBytes,
		Layers:        layers,
	}
}

// checkBlobs fails unless store holds every blob of img, byte for byte.
func checkBlobs(t *testing.T, store content.Provider, img registrytest.Image) {
	t.Helper()
	ctx := testCtx(t)
	for d, want := range img.Blobs() {
		ra, err := store.ReaderAt(ctx, ocispec.Descriptor{Digest: d, Size: int64(len(want))})
		if err != nil {
			t.Errorf("blob %s: %v", d, err)
			continue
		}
		got := make([]byte, ra.Size())
		_, err = ra.ReadAt(got, 0)
		ra.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("blob %s: read %d bytes (%v), want the %d bytes pushed", d, len(got), err, len(want))
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

// layerDigests returns the digests of img's layers.
func layerDigests(img registrytest.Image) []digest.Digest {
	var ds []digest.Digest
	for _, l := range img.Layers {
		ds = append(ds, l.Descriptor.Digest)
	}
	return ds
}

// labels returns the labels of the blob d.
func labels(t *testing.T, store content.Manager, d digest.Digest) map[string]string {
	t.Helper()
	info, err := store.Info(testCtx(t), d)
	if err != nil {
		t.Fatalf("Info(%s): %v", d, err)
	}
	return info.Labels
}

// checkManifestLabels fails unless img's manifest blob carries the GC
// labels of its config and layers.
func checkManifestLabels(t *testing.T, store content.Manager, img registrytest.Image) {
	t.Helper()
	got := labels(t, store, img.Manifest.Digest)
	want := map[string]string{"containerd.io/gc.ref.content.config": img.Config.Digest.String()}
	for i, l := range img.Layers {
		want[fmt.Sprintf("containerd.io/gc.ref.content.l.%d", i)] = l.Descriptor.Digest.String()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("manifest label %s = %q, want %q", k, got[k], v)
		}
	}
}

// listNames returns the names in the name store.
func listNames(t *testing.T, names content.Images) []string {
	t.Helper()
	recs, err := names.List(testCtx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Name)
	}
	return out
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

// kinds returns the kinds of the events recorded for d, in order.
func (r *recorder) kinds(d digest.Digest) []fetch.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ks []fetch.EventKind
	for _, e := range r.events {
		if e.Desc.Digest == d {
			ks = append(ks, e.Kind)
		}
	}
	return ks
}

// find returns the first event of kind for d.
func (r *recorder) find(kind fetch.EventKind, d digest.Digest) (fetch.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Kind == kind && e.Desc.Digest == d {
			return e, true
		}
	}
	return fetch.Event{}, false
}

func TestPull(t *testing.T) {
	reg := registrytest.NewT(t)
	host := reg.Host()

	single := smallImage(1, linuxAMD64)
	singleDesc := reg.PushImage("team/app", "v1", single)
	dockerSingle := smallImage(2, linuxAMD64, registrytest.WithDockerMediaTypes())
	dockerSingleDesc := reg.PushImage("team/docker", "v1", dockerSingle)
	ociAMD64, ociARM64 := smallImage(3, linuxAMD64), smallImage(4, linuxARM64)
	ociIndex := reg.PushIndex("team/multi", "v1", ociAMD64, ociARM64)
	listAMD64 := smallImage(5, linuxAMD64, registrytest.WithDockerMediaTypes())
	listARM64 := smallImage(6, linuxARM64, registrytest.WithDockerMediaTypes())
	dockerList := reg.PushIndex("team/list", "v1", listAMD64, listARM64)

	tests := []struct {
		name      string
		ref       string
		wantName  string
		root      ocispec.Descriptor
		rootType  string
		want      registrytest.Image   // the image pulled
		notWanted []registrytest.Image // images of the index left behind
		repo      string
		tagged    bool
	}{
		{"OCI manifest by tag", host + "/team/app:v1", host + "/team/app:v1", singleDesc, ocispec.MediaTypeImageManifest, single, nil, "team/app", true},
		{"OCI manifest by digest", host + "/team/app@" + singleDesc.Digest.String(), host + "/team/app@" + singleDesc.Digest.String(), singleDesc, ocispec.MediaTypeImageManifest, single, nil, "team/app", false},
		{"Docker manifest by tag", host + "/team/docker:v1", host + "/team/docker:v1", dockerSingleDesc, handlers.MediaTypeDockerSchema2Manifest, dockerSingle, nil, "team/docker", true},
		{"OCI index by tag", host + "/team/multi:v1", host + "/team/multi:v1", ociIndex, ocispec.MediaTypeImageIndex, ociARM64, []registrytest.Image{ociAMD64}, "team/multi", true},
		{"OCI index by digest", host + "/team/multi@" + ociIndex.Digest.String(), host + "/team/multi@" + ociIndex.Digest.String(), ociIndex, ocispec.MediaTypeImageIndex, ociARM64, []registrytest.Image{ociAMD64}, "team/multi", false},
		{"Docker list by tag", host + "/team/list:v1", host + "/team/list:v1", dockerList, handlers.MediaTypeDockerSchema2ManifestList, listARM64, []registrytest.Image{listAMD64}, "team/list", true},
		{"Docker list by digest", host + "/team/list@" + dockerList.Digest.String(), host + "/team/list@" + dockerList.Digest.String(), dockerList, handlers.MediaTypeDockerSchema2ManifestList, listARM64, []registrytest.Image{listAMD64}, "team/list", false},
	}
	for _, st := range stores {
		for _, tt := range tests {
			t.Run(st.name+"/"+tt.name, func(t *testing.T) {
				ctx := testCtx(t)
				store, names := st.open(t)
				img, err := pullkit.Pull(ctx, tt.ref, store, names,
					pullkit.WithPlatforms(platforms.OnlyStrict(linuxARM64)),
					pullkit.WithLabels(map[string]string{"team": "blue"}))
				if err != nil {
					t.Fatalf("Pull(%q) error = %v", tt.ref, err)
				}

				if img.Name != tt.wantName {
					t.Errorf("Name = %q, want %q", img.Name, tt.wantName)
				}
				if img.Target.Digest != tt.root.Digest || img.Target.Size != tt.root.Size || img.Target.MediaType != tt.rootType {
					t.Errorf("Target = %s %s %d, want %s %s %d", img.Target.MediaType, img.Target.Digest, img.Target.Size, tt.rootType, tt.root.Digest, tt.root.Size)
				}
				if img.Manifest.Digest != tt.want.Manifest.Digest {
					t.Errorf("Manifest = %s, want %s", img.Manifest.Digest, tt.want.Manifest.Digest)
				}
				if img.ID != tt.want.Config.Digest {
					t.Errorf("ID = %s, want the config digest %s", img.ID, tt.want.Config.Digest)
				}
				var wantTags []string
				if tt.tagged {
					wantTags = []string{host + "/" + tt.repo + ":v1"}
				}
				if !slices.Equal(img.RepoTags, wantTags) {
					t.Errorf("RepoTags = %q, want %q", img.RepoTags, wantTags)
				}
				if want := []string{host + "/" + tt.repo + "@" + tt.root.Digest.String()}; !slices.Equal(img.RepoDigests, want) {
					t.Errorf("RepoDigests = %q, want %q", img.RepoDigests, want)
				}
				wantSize := tt.want.Size()
				if handlers.IsIndex(tt.rootType) {
					wantSize += tt.root.Size
				}
				if img.Size != wantSize {
					t.Errorf("Size = %d, want %d", img.Size, wantSize)
				}

				checkBlobs(t, store, tt.want)
				for _, other := range tt.notWanted {
					for _, d := range append(layerDigests(other), other.Manifest.Digest, other.Config.Digest) {
						if has(t, store, d) {
							t.Errorf("store has %s of another platform's image", d)
						}
					}
				}
				checkManifestLabels(t, store, tt.want)
				if handlers.IsIndex(tt.rootType) {
					got := labels(t, store, tt.root.Digest)
					if got["containerd.io/gc.ref.content.m.0"] != tt.want.Manifest.Digest.String() || got["containerd.io/gc.ref.content.m.1"] != "" {
						t.Errorf("index labels = %v, want m.0 = %s only", got, tt.want.Manifest.Digest)
					}
				}

				rec, err := names.Get(ctx, tt.wantName)
				if err != nil {
					t.Fatalf("names.Get(%q) error = %v", tt.wantName, err)
				}
				if rec.Target.Digest != tt.root.Digest || rec.Target.MediaType != tt.rootType || rec.Labels["team"] != "blue" {
					t.Errorf("name record = %s %s %v, want %s %s with team=blue", rec.Target.MediaType, rec.Target.Digest, rec.Labels, tt.rootType, tt.root.Digest)
				}
				if got := listNames(t, names); !slices.Equal(got, []string{tt.wantName}) {
					t.Errorf("names.List() = %q, want %q", got, tt.wantName)
				}
				if err := names.Delete(ctx, tt.wantName); err != nil {
					t.Fatalf("names.Delete: %v", err)
				}
				if _, err := names.Get(ctx, tt.wantName); !errdefs.IsNotFound(err) {
					t.Errorf("names.Get after Delete error = %v, want NotFound", err)
				}
				checkBlobs(t, store, tt.want) // the content outlives the name
			})
		}
	}
}

// TestPullHostPlatform pulls an index without WithPlatforms: the host's
// image is chosen.
func TestPullHostPlatform(t *testing.T) {
	reg := registrytest.NewT(t)
	hostPlatform := platforms.DefaultSpec()
	other := linuxS390X
	if hostPlatform.Architecture == other.Architecture {
		other = linuxAMD64
	}
	mine, theirs := smallImage(1, hostPlatform), smallImage(2, other)
	reg.PushIndex("team/app", "v1", theirs, mine)

	store := memory.New()
	img, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, store.Images())
	if err != nil {
		t.Fatalf("Pull error = %v", err)
	}
	if img.Manifest.Digest != mine.Manifest.Digest || img.ID != mine.Config.Digest {
		t.Errorf("pulled %s (ID %s), want the host's %s (ID %s)", img.Manifest.Digest, img.ID, mine.Manifest.Digest, mine.Config.Digest)
	}
	checkBlobs(t, store, mine)
	if has(t, store, theirs.Manifest.Digest) {
		t.Errorf("the %s manifest was fetched too", platforms.Format(other))
	}
}

// TestPullSingleManifestAnyPlatform pulls a reference to a single manifest
// of a platform other than the one asked for: it is what the reference
// names, so it is pulled, as containerd does.
func TestPullSingleManifestAnyPlatform(t *testing.T) {
	reg := registrytest.NewT(t)
	want := smallImage(1, linuxS390X)
	reg.PushImage("team/app", "v1", want)
	store := memory.New()
	img, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, store.Images(), pullkit.WithPlatforms(platforms.OnlyStrict(linuxARM64)))
	if err != nil {
		t.Fatalf("Pull error = %v", err)
	}
	if img.Manifest.Digest != want.Manifest.Digest {
		t.Errorf("Manifest = %s, want %s", img.Manifest.Digest, want.Manifest.Digest)
	}
	checkBlobs(t, store, want)
}

// TestPullMovesName pulls a tag, then the same tag after it moved: the name
// follows, keeping its labels, and the first image's blobs stay.
func TestPullMovesName(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			ctx := testCtx(t)
			reg := registrytest.NewT(t)
			store, names := st.open(t)
			ref := reg.Host() + "/team/app:v1"

			first := smallImage(1, linuxAMD64)
			reg.PushImage("team/app", "v1", first)
			if _, err := pullkit.Pull(ctx, ref, store, names, pullkit.WithLabels(map[string]string{"a": "1"})); err != nil {
				t.Fatalf("first Pull error = %v", err)
			}
			second := smallImage(2, linuxAMD64)
			reg.PushImage("team/app", "v1", second)
			img, err := pullkit.Pull(ctx, ref, store, names, pullkit.WithLabels(map[string]string{"b": "2"}))
			if err != nil {
				t.Fatalf("second Pull error = %v", err)
			}
			if img.Target.Digest != second.Manifest.Digest {
				t.Errorf("Target = %s, want the new %s", img.Target.Digest, second.Manifest.Digest)
			}
			rec, err := names.Get(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Target.Digest != second.Manifest.Digest || rec.Labels["a"] != "1" || rec.Labels["b"] != "2" {
				t.Errorf("record = %s %v, want %s with a=1 and b=2", rec.Target.Digest, rec.Labels, second.Manifest.Digest)
			}
			if got := listNames(t, names); len(got) != 1 {
				t.Errorf("names = %q, want one", got)
			}
			checkBlobs(t, store, first)
			checkBlobs(t, store, second)
		})
	}
}

func TestPullFaults(t *testing.T) {
	bigger := registrytest.RandomImage(10, 3, 256<<10)
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Run("connection resets", func(t *testing.T) {
				reg := registrytest.NewT(t)
				img := bigger
				reg.PushImage("team/app", "v1", img)
				var injections []*registrytest.Injection
				for _, l := range img.Layers {
					// Two resets per layer, each a third of the way into
					// the body it cuts: the pull needs two resumptions.
					injections = append(injections, reg.Inject(registrytest.Fault{
						Kind: registrytest.FaultReset, Digest: l.Descriptor.Digest, Bytes: l.Descriptor.Size / 3, Times: 2,
					}))
				}
				store, names := st.open(t)
				var rec recorder
				if _, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, names, pullkit.WithObserver(rec.observe)); err != nil {
					t.Fatalf("Pull error = %v", err)
				}
				checkBlobs(t, store, img)
				for i, inj := range injections {
					if inj.Hits() != 2 {
						t.Errorf("layer %d: reset %d times, want 2", i, inj.Hits())
					}
					if _, ok := rec.find(fetch.Resumed, img.Layers[i].Descriptor.Digest); !ok {
						t.Errorf("layer %d: no Resumed event: %v", i, rec.kinds(img.Layers[i].Descriptor.Digest))
					}
				}
				served, size := reg.BytesServed(), img.Size()
				t.Logf("served %d bytes for an image of %d (%.3f×)", served, size, float64(served)/float64(size))
				if served > size+size/10 {
					t.Errorf("served %d bytes for an image of %d: more than 1.1×", served, size)
				}
			})

			t.Run("429 with Retry-After", func(t *testing.T) {
				reg := registrytest.NewT(t)
				img := smallImage(11, linuxAMD64)
				reg.PushImage("team/app", "v1", img)
				layer := img.Layers[1].Descriptor
				inj := reg.Inject(registrytest.Fault{Kind: registrytest.FaultTooManyRequests, Digest: layer.Digest, RetryAfter: time.Second, Times: 1})
				store, names := st.open(t)
				var rec recorder
				start := time.Now()
				if _, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, names, pullkit.WithObserver(rec.observe)); err != nil {
					t.Fatalf("Pull error = %v", err)
				}
				took := time.Since(start)
				checkBlobs(t, store, img)
				if inj.Hits() != 1 {
					t.Errorf("429 answered %d times, want 1", inj.Hits())
				}
				if took < time.Second {
					t.Errorf("Pull took %v: it did not wait the 1 s Retry-After asked for", took)
				}
				e, ok := rec.find(fetch.Retried, layer.Digest)
				if !ok || !errdefs.IsUnavailable(e.Err) {
					t.Errorf("Retried event = %+v (found %v), want one for the 429", e, ok)
				}
			})

			t.Run("wrong digest", func(t *testing.T) {
				ctx := testCtx(t)
				reg := registrytest.NewT(t)
				img := smallImage(12, linuxAMD64)
				reg.PushImage("team/app", "v1", img)
				bad := img.Layers[2].Descriptor
				reg.Inject(registrytest.Fault{Kind: registrytest.FaultCorrupt, Digest: bad.Digest})
				store, names := st.open(t)
				_, err := pullkit.Pull(ctx, reg.Host()+"/team/app:v1", store, names)
				if !errors.Is(err, content.ErrDigestMismatch) {
					t.Fatalf("Pull error = %v, want content.ErrDigestMismatch", err)
				}
				if !strings.Contains(err.Error(), bad.Digest.String()) || !strings.Contains(err.Error(), "pull again") {
					t.Errorf("error %q does not name the blob and say what to do", err)
				}
				if has(t, store, bad.Digest) {
					t.Errorf("the corrupt blob %s was committed", bad.Digest)
				}
				if sts, err := store.ListStatuses(ctx, fetch.IngestRef(bad)); err != nil || len(sts) != 0 {
					t.Errorf("ingests of the corrupt blob = %+v, %v, want none", sts, err)
				}
				if got := listNames(t, names); len(got) != 0 {
					t.Errorf("names = %q after a failed pull, want none", got)
				}
			})

			t.Run("CDN redirect with token auth", func(t *testing.T) {
				reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "s3cret"))
				img := smallImage(13, linuxAMD64)
				reg.PushImage("team/app", "v1", img)
				reg.Inject(registrytest.Fault{Kind: registrytest.FaultRedirect})
				store, names := st.open(t)
				if _, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, names, pullkit.WithCredentials("alice", "s3cret")); err != nil {
					t.Fatalf("Pull error = %v", err)
				}
				checkBlobs(t, store, img)
				if reg.CDNSawAuthorization() {
					t.Error("the CDN received an Authorization header")
				}
				cdn, bearer := 0, 0
				for _, r := range reg.Requests() {
					if r.Server == registrytest.ServerCDN && r.Status == 200 {
						cdn++
					}
					if r.Server == registrytest.ServerRegistry && r.AuthScheme == "Bearer" {
						bearer++
					}
				}
				if cdn < len(img.Layers)+1 || bearer == 0 {
					t.Errorf("%d blobs served by the CDN and %d Bearer requests to the registry, want %d and some", cdn, bearer, len(img.Layers)+1)
				}
			})
		})
	}
}

// TestPullConcurrent runs 32 pulls of 4 images that share layers into one
// store at once: every blob crosses the wire once.
func TestPullConcurrent(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			ctx := testCtx(t)
			reg := registrytest.NewT(t)
			base := registrytest.RandomImage(20, 3, 96<<10).Layers
			extra := registrytest.RandomImage(21, 4, 128<<10).Layers
			imgs := []registrytest.Image{
				composeImage(t, linuxAMD64, base[0], base[1], extra[0]),
				composeImage(t, linuxAMD64, base[0], base[1], extra[1]),
				composeImage(t, linuxAMD64, base[0], base[2], extra[2]),
				composeImage(t, linuxAMD64, base[0], base[2], extra[3]),
			}
			var refs []string
			for i, img := range imgs {
				tag := fmt.Sprintf("v%d", i)
				reg.PushImage("team/app", tag, img)
				refs = append(refs, reg.Host()+"/team/app:"+tag)
			}

			store, names := st.open(t)
			const pulls = 32
			errs := make([]error, pulls)
			results := make([]pullkit.Image, pulls)
			var wg sync.WaitGroup
			for i := range pulls {
				wg.Go(func() {
					results[i], errs[i] = pullkit.Pull(ctx, refs[i%len(refs)], store, names)
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("Pull %d of %s error = %v", i, refs[i%len(refs)], err)
				} else if want := imgs[i%len(imgs)].Config.Digest; results[i].ID != want {
					t.Errorf("Pull %d: ID = %s, want %s", i, results[i].ID, want)
				}
			}

			blobs := map[digest.Digest]int64{}
			for _, img := range imgs {
				checkBlobs(t, store, img)
				for d, b := range img.Blobs() {
					blobs[d] = int64(len(b))
				}
			}
			for d, size := range blobs {
				if got := reg.BlobBytesServed(d); got != size {
					t.Errorf("blob %s: %d bytes served, want %d (once)", d, got, size)
				}
			}
			if got := listNames(t, names); !slices.Equal(got, refs) {
				t.Errorf("names = %q, want %q", got, refs)
			}
		})
	}
}

// TestPullCancelResume cancels a pull while a layer trickles in, then
// pulls again: the second pull fetches only the bytes the first did not
// store.
func TestPullCancelResume(t *testing.T) {
	img := registrytest.RandomImage(30, 1, 2<<20, registrytest.WithCompression(handlers.CompressionNone))
	layer := img.Layers[0].Descriptor
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			reg := registrytest.NewT(t)
			reg.PushImage("team/big", "v1", img)
			// 16 KiB every 10 ms: the 2 MiB layer would take over a second.
			reg.Inject(registrytest.Fault{Kind: registrytest.FaultTrickle, Digest: layer.Digest, Bytes: 16 << 10, Interval: 10 * time.Millisecond})
			store, names := st.open(t)
			ref := reg.Host() + "/team/big:v1"

			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			var (
				once        sync.Once
				cancelledAt atomic.Pointer[time.Time]
			)
			observe := func(e fetch.Event) {
				if e.Kind == fetch.Progress && e.Desc.Digest == layer.Digest && e.Offset > 0 {
					once.Do(func() {
						now := time.Now()
						cancelledAt.Store(&now)
						cancel()
					})
				}
			}
			_, err := pullkit.Pull(ctx, ref, store, names, pullkit.WithObserver(observe))
			returned := time.Now()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Pull error = %v, want context.Canceled", err)
			}
			if !strings.Contains(err.Error(), "resume") {
				t.Errorf("error %q does not say that pulling again resumes", err)
			}
			at := cancelledAt.Load()
			if at == nil {
				t.Fatal("no Progress event for the layer before the pull ended")
			}
			took := returned.Sub(*at)
			t.Logf("Pull returned %v after the cancel", took)
			if took > 5*time.Second {
				t.Errorf("Pull returned %v after the cancel, want well under a second", took)
			}
			if got := listNames(t, names); len(got) != 0 {
				t.Errorf("names = %q after a cancelled pull, want none", got)
			}

			ctx2 := testCtx(t)
			sts, err := store.ListStatuses(ctx2, fetch.IngestRef(layer))
			if err != nil || len(sts) != 1 || sts[0].Offset <= 0 || sts[0].Offset >= layer.Size {
				t.Fatalf("ingests = %+v, %v, want one partial ingest of the layer", sts, err)
			}
			offset := sts[0].Offset
			t.Logf("kept %d of %d bytes", offset, layer.Size)

			reg.ClearFaults()
			reg.ResetStats()
			var rec recorder
			if _, err := pullkit.Pull(ctx2, ref, store, names, pullkit.WithObserver(rec.observe)); err != nil {
				t.Fatalf("second Pull error = %v", err)
			}
			checkBlobs(t, store, img)
			if got, want := reg.BlobBytesServed(layer.Digest), layer.Size-offset; got != want {
				t.Errorf("second pull fetched %d bytes of the layer, want %d (size %d - offset %d)", got, want, layer.Size, offset)
			}
			wantRange := fmt.Sprintf("bytes=%d-", offset)
			ranged := false
			for _, r := range reg.Requests() {
				if strings.HasSuffix(r.Path, "/blobs/"+layer.Digest.String()) && r.Method == "GET" {
					ranged = ranged || r.Range == wantRange
					if r.Range == "" {
						t.Errorf("second pull asked for the whole layer")
					}
				}
			}
			if !ranged {
				t.Errorf("no GET of the layer with Range %q: %+v", wantRange, reg.Requests())
			}
			if e, ok := rec.find(fetch.Resumed, layer.Digest); !ok || e.Offset != offset {
				t.Errorf("Resumed event = %+v (found %v), want one at %d", e, ok, offset)
			}
			if sts, _ := store.ListStatuses(ctx2); len(sts) != 0 {
				t.Errorf("ingests left after the second pull: %+v", sts)
			}
			if got := listNames(t, names); !slices.Equal(got, []string{ref}) {
				t.Errorf("names = %q, want %q", got, ref)
			}
		})
	}
}

func TestPullErrors(t *testing.T) {
	index := func(reg *registrytest.Registry) string {
		reg.PushIndex("team/app", "v1", smallImage(1, linuxAMD64), smallImage(2, linuxARM64))
		return reg.Host() + "/team/app:v1"
	}
	image := func(reg *registrytest.Registry) string {
		reg.PushImage("team/app", "v1", smallImage(3, linuxAMD64))
		return reg.Host() + "/team/app:v1"
	}
	tests := []struct {
		name    string
		regOpts []registrytest.Option
		setup   func(reg *registrytest.Registry) string // returns the reference
		opts    []pullkit.Option
		is      func(error) bool
		class   string
		hint    string
	}{
		{
			name:    "no credentials",
			regOpts: []registrytest.Option{registrytest.WithTokenAuth("alice", "s3cret")},
			setup:   image,
			is:      errdefs.IsUnauthorized, class: "Unauthorized",
			hint: "WithCredentials",
		},
		{
			name:    "wrong credentials",
			regOpts: []registrytest.Option{registrytest.WithTokenAuth("alice", "s3cret")},
			setup:   image,
			opts:    []pullkit.Option{pullkit.WithCredentials("alice", "hunter2")},
			is:      errdefs.IsUnauthorized, class: "Unauthorized",
			hint: "WithCredentials",
		},
		{
			name:    "no credentials in the resolver given",
			regOpts: []registrytest.Option{registrytest.WithTokenAuth("alice", "s3cret")},
			setup:   image,
			opts:    []pullkit.Option{pullkit.WithResolver(resolve.New())},
			is:      errdefs.IsUnauthorized, class: "Unauthorized",
			hint: "WithResolver",
		},
		{
			name:    "forbidden",
			regOpts: []registrytest.Option{registrytest.WithTokenAuth("alice", "s3cret"), registrytest.WithDeniedRepos("team/app")},
			setup:   image,
			opts:    []pullkit.Option{pullkit.WithCredentials("alice", "s3cret")},
			is:      errdefs.IsPermissionDenied, class: "PermissionDenied",
			hint: "may not pull",
		},
		{
			name:  "not found",
			setup: func(reg *registrytest.Registry) string { return reg.Host() + "/team/nothing:v1" },
			is:    errdefs.IsNotFound, class: "NotFound",
			hint: "check the registry, the repository name",
		},
		{
			name: "blob not found",
			setup: func(reg *registrytest.Registry) string {
				img := smallImage(4, linuxAMD64)
				reg.PushBlob("team/app", img.ConfigBytes)
				reg.PushManifest("team/app", "v1", img.Manifest.MediaType, img.ManifestBytes)
				return reg.Host() + "/team/app:v1"
			},
			is: errdefs.IsNotFound, class: "NotFound",
			hint: "lacks content",
		},
		{
			name: "rate limited beyond the cap on the manifest",
			setup: func(reg *registrytest.Registry) string {
				reg.Inject(registrytest.Fault{Kind: registrytest.FaultTooManyRequests, Path: "/manifests/", RetryAfter: 2 * time.Minute})
				return image(reg)
			},
			is: errdefs.IsUnavailable, class: "Unavailable",
			hint: "try again later",
		},
		{
			name: "rate limited beyond the cap on a layer",
			setup: func(reg *registrytest.Registry) string {
				reg.Inject(registrytest.Fault{Kind: registrytest.FaultTooManyRequests, Path: "/blobs/", RetryAfter: 2 * time.Minute})
				return image(reg)
			},
			is: errdefs.IsUnavailable, class: "Unavailable",
			hint: "try again later",
		},
		{
			name:  "no matching platform",
			setup: index,
			opts:  []pullkit.Option{pullkit.WithPlatforms(platforms.OnlyStrict(linuxS390X))},
			is:    errdefs.IsNotFound, class: "NotFound",
			hint: "WithPlatforms",
		},
		{
			name:  "invalid reference",
			setup: func(reg *registrytest.Registry) string { return reg.Host() + "/Team/App:v1" },
			is:    errdefs.IsInvalidArgument, class: "InvalidArgument",
			hint: "lowercase",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registrytest.NewT(t, tt.regOpts...)
			ref := tt.setup(reg)
			store := memory.New()
			_, err := pullkit.Pull(testCtx(t), ref, store, store.Images(), tt.opts...)
			if err == nil || !tt.is(err) {
				t.Fatalf("Pull(%q) error = %v, want %s", ref, err, tt.class)
			}
			msg := err.Error()
			t.Logf("%s", msg)
			if !strings.Contains(msg, tt.hint) {
				t.Errorf("error %q does not contain the hint %q", msg, tt.hint)
			}
			for _, secret := range []string{"s3cret", "hunter2"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q leaks a password", msg)
				}
			}
			if got := listNames(t, store.Images()); len(got) != 0 {
				t.Errorf("names = %q after a failed pull, want none", got)
			}
		})
	}

	t.Run("no matching platform lists the offers", func(t *testing.T) {
		reg := registrytest.NewT(t)
		ref := index(reg)
		store := memory.New()
		_, err := pullkit.Pull(testCtx(t), ref, store, store.Images(), pullkit.WithPlatforms(platforms.OnlyStrict(linuxS390X)))
		var nm *handlers.NoMatchError
		if !errors.As(err, &nm) {
			t.Fatalf("Pull error = %v, want a *handlers.NoMatchError", err)
		}
		var offered []string
		for _, p := range nm.Offered {
			offered = append(offered, platforms.Format(p))
		}
		if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(offered, want) {
			t.Errorf("Offered = %q, want %q", offered, want)
		}
		if !strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
			t.Errorf("error %q does not list the platforms offered", err)
		}
	})

	t.Run("nil store", func(t *testing.T) {
		_, err := pullkit.Pull(testCtx(t), "127.0.0.1:1/team/app:v1", nil, nil)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("Pull error = %v, want InvalidArgument", err)
		}
	})
}

// TestPullFailureKeepsName pulls a tag, then fails to pull it after it
// moved: the name still points at the first image.
func TestPullFailureKeepsName(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			ctx := testCtx(t)
			reg := registrytest.NewT(t)
			store, names := st.open(t)
			ref := reg.Host() + "/team/app:v1"
			first := smallImage(1, linuxAMD64)
			reg.PushImage("team/app", "v1", first)
			if _, err := pullkit.Pull(ctx, ref, store, names); err != nil {
				t.Fatalf("first Pull error = %v", err)
			}
			second := smallImage(2, linuxAMD64)
			reg.PushImage("team/app", "v1", second)
			reg.Inject(registrytest.Fault{Kind: registrytest.FaultCorrupt, Digest: second.Layers[0].Descriptor.Digest})
			if _, err := pullkit.Pull(ctx, ref, store, names); !errors.Is(err, content.ErrDigestMismatch) {
				t.Fatalf("second Pull error = %v, want content.ErrDigestMismatch", err)
			}
			rec, err := names.Get(ctx, ref)
			if err != nil || rec.Target.Digest != first.Manifest.Digest {
				t.Errorf("record = %s, %v, want it still at %s", rec.Target.Digest, err, first.Manifest.Digest)
			}
		})
	}
}

// TestPullPlatformModes checks what WithAllMetadata and WithAllPlatforms
// fetch from an index.
func TestPullPlatformModes(t *testing.T) {
	amd64, i386, arm64 := smallImage(1, linuxAMD64), smallImage(2, linux386), smallImage(3, linuxARM64)
	all := []registrytest.Image{amd64, i386, arm64}

	tests := []struct {
		name       string
		opts       []pullkit.Option
		want       registrytest.Image   // what Image describes
		withLayers []registrytest.Image // images fetched whole
		metadata   []registrytest.Image // images fetched without layers
		absent     []registrytest.Image // images not fetched at all
	}{
		{
			// linux/amd64 hosts run linux/386: Only matches both, and the
			// default pull fetches the best one.
			name:       "default",
			opts:       []pullkit.Option{pullkit.WithPlatforms(platforms.Only(linuxAMD64))},
			want:       amd64,
			withLayers: []registrytest.Image{amd64},
			absent:     []registrytest.Image{i386, arm64},
		},
		{
			name:       "all metadata",
			opts:       []pullkit.Option{pullkit.WithPlatforms(platforms.Only(linuxAMD64)), pullkit.WithAllMetadata()},
			want:       amd64,
			withLayers: []registrytest.Image{amd64},
			metadata:   []registrytest.Image{i386, arm64},
		},
		{
			name:       "all metadata, the best match nested elsewhere",
			opts:       []pullkit.Option{pullkit.WithPlatforms(platforms.OnlyStrict(linuxARM64)), pullkit.WithAllMetadata()},
			want:       arm64,
			withLayers: []registrytest.Image{arm64},
			metadata:   []registrytest.Image{amd64, i386},
		},
		{
			name:       "all platforms",
			opts:       []pullkit.Option{pullkit.WithPlatforms(platforms.OnlyStrict(linuxARM64)), pullkit.WithAllPlatforms()},
			want:       arm64,
			withLayers: all,
		},
		{
			name:       "all platforms, none matching",
			opts:       []pullkit.Option{pullkit.WithPlatforms(platforms.OnlyStrict(linuxS390X)), pullkit.WithAllPlatforms()},
			want:       amd64, // the first
			withLayers: all,
		},
		{
			name:       "all platforms wins over all metadata",
			opts:       []pullkit.Option{pullkit.WithAllMetadata(), pullkit.WithAllPlatforms()},
			want:       amd64,
			withLayers: all,
		},
	}
	for _, st := range stores {
		for _, tt := range tests {
			t.Run(st.name+"/"+tt.name, func(t *testing.T) {
				reg := registrytest.NewT(t)
				// The index nests arm64 one level down.
				reg.PushImage("team/app", "", arm64)
				inner := reg.PushManifest("team/app", "", ocispec.MediaTypeImageIndex, registrytest.MarshalIndex(ocispec.MediaTypeImageIndex, arm64.Manifest))
				reg.PushImage("team/app", "", amd64)
				reg.PushImage("team/app", "", i386)
				root := reg.PushManifest("team/app", "v1", ocispec.MediaTypeImageIndex, registrytest.MarshalIndex(ocispec.MediaTypeImageIndex, amd64.Manifest, i386.Manifest, inner))

				store, names := st.open(t)
				img, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, names, tt.opts...)
				if err != nil {
					t.Fatalf("Pull error = %v", err)
				}
				if img.Manifest.Digest != tt.want.Manifest.Digest || img.ID != tt.want.Config.Digest {
					t.Errorf("Image describes %s (ID %s), want %s (ID %s)", img.Manifest.Digest, img.ID, tt.want.Manifest.Digest, tt.want.Config.Digest)
				}
				if want := root.Size + tt.want.Size(); img.Size != want {
					t.Errorf("Size = %d, want %d", img.Size, want)
				}
				for _, w := range tt.withLayers {
					checkBlobs(t, store, w)
					checkManifestLabels(t, store, w)
				}
				for _, m := range tt.metadata {
					if !has(t, store, m.Manifest.Digest) || !has(t, store, m.Config.Digest) {
						t.Errorf("%s: manifest or config missing", platforms.Format(*m.Manifest.Platform))
					}
					for _, d := range layerDigests(m) {
						if has(t, store, d) {
							t.Errorf("%s: layer %s fetched", platforms.Format(*m.Manifest.Platform), d)
						}
					}
				}
				for _, a := range tt.absent {
					for d := range a.Blobs() {
						if has(t, store, d) {
							t.Errorf("%s: blob %s fetched", platforms.Format(*a.Manifest.Platform), d)
						}
					}
				}
				if _, err := names.Get(testCtx(t), img.Name); err != nil {
					t.Errorf("names.Get: %v", err)
				}
			})
		}
	}

	t.Run("all metadata, none matching", func(t *testing.T) {
		reg := registrytest.NewT(t)
		reg.PushIndex("team/app", "v1", amd64, arm64)
		store := memory.New()
		_, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, store.Images(),
			pullkit.WithPlatforms(platforms.OnlyStrict(linuxS390X)), pullkit.WithAllMetadata())
		var nm *handlers.NoMatchError
		if !errors.As(err, &nm) || !errdefs.IsNotFound(err) {
			t.Fatalf("Pull error = %v, want a *handlers.NoMatchError", err)
		}
		if got := listNames(t, store.Images()); len(got) != 0 {
			t.Errorf("names = %q, want none", got)
		}
	})
}

func TestPullOptions(t *testing.T) {
	t.Run("WithHosts mirror, WithCredentials for the registry only", func(t *testing.T) {
		upstream := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "s3cret"))
		mirror := registrytest.NewT(t)
		img := smallImage(1, linuxAMD64)
		upstream.PushImage("team/app", "v1", img)
		mirror.PushImage("team/app", "v1", img)
		store := memory.New()
		_, err := pullkit.Pull(testCtx(t), upstream.Host()+"/team/app:v1", store, store.Images(),
			pullkit.WithHosts(resolve.Hosts(resolve.WithMirrors(upstream.Host(), mirror.URL()))),
			pullkit.WithCredentials("alice", "s3cret"))
		if err != nil {
			t.Fatalf("Pull error = %v", err)
		}
		checkBlobs(t, store, img)
		if got := upstream.BytesServed(); got != 0 {
			t.Errorf("upstream served %d bytes, want 0: the mirror has everything", got)
		}
		for _, r := range mirror.Requests() {
			if r.Authorization {
				t.Errorf("the mirror got credentials: %s %s", r.Method, r.Path)
			}
		}
	})

	t.Run("WithKeychain", func(t *testing.T) {
		reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "s3cret"))
		img := smallImage(2, linuxAMD64)
		reg.PushImage("team/app", "v1", img)
		store := memory.New()
		kc := auth.Static(reg.Host(), auth.Credential{Username: "alice", Password: "s3cret"})
		if _, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, store.Images(), pullkit.WithKeychain(kc)); err != nil {
			t.Fatalf("Pull error = %v", err)
		}
		checkBlobs(t, store, img)
	})

	t.Run("WithResolver shares tokens", func(t *testing.T) {
		reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "s3cret"))
		one, two := smallImage(3, linuxAMD64), smallImage(4, linuxAMD64)
		reg.PushImage("team/app", "v1", one)
		reg.PushImage("team/app", "v2", two)
		r := resolve.New(resolve.WithKeychain(auth.Static(reg.Host(), auth.Credential{Username: "alice", Password: "s3cret"})))
		store := memory.New()
		for _, tag := range []string{"v1", "v2"} {
			// WithCredentials is overridden by WithResolver: wrong ones do no harm.
			if _, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:"+tag, store, store.Images(), pullkit.WithResolver(r), pullkit.WithCredentials("alice", "wrong")); err != nil {
				t.Fatalf("Pull %s error = %v", tag, err)
			}
		}
		checkBlobs(t, store, one)
		checkBlobs(t, store, two)
		tokens := 0
		for _, req := range reg.Requests() {
			if req.Server == registrytest.ServerToken {
				tokens++
			}
		}
		if tokens != 1 {
			t.Errorf("%d token requests for two pulls through one resolver, want 1", tokens)
		}
	})

	t.Run("WithObserver", func(t *testing.T) {
		reg := registrytest.NewT(t)
		img := smallImage(5, linuxAMD64)
		reg.PushImage("team/app", "v1", img)
		store := memory.New()
		for _, want := range []fetch.EventKind{fetch.Committed, fetch.Skipped} {
			var rec recorder
			if _, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, store.Images(), pullkit.WithObserver(rec.observe)); err != nil {
				t.Fatalf("Pull error = %v", err)
			}
			if _, ok := rec.find(fetch.Resolved, img.Manifest.Digest); !ok {
				t.Errorf("no Resolved event: %+v", rec.events)
			}
			for d := range img.Blobs() {
				if _, ok := rec.find(want, d); !ok {
					t.Errorf("blob %s: events %v, want %v", d, rec.kinds(d), want)
				}
			}
		}
	})

	t.Run("WithHandlerWrapper and WithMaxConcurrentDownloads", func(t *testing.T) {
		reg := registrytest.NewT(t)
		img := registrytest.RandomImage(6, 8, 8<<10)
		reg.PushImage("team/app", "v1", img)
		for _, limit := range []int{1, 3} {
			var (
				mu             sync.Mutex
				running, peak  int
				seen           []digest.Digest
				childrenOfRoot int
			)
			wrap := func(h handlers.Handler) handlers.Handler {
				return handlers.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
					mu.Lock()
					running++
					peak = max(peak, running)
					seen = append(seen, desc.Digest)
					mu.Unlock()
					time.Sleep(time.Millisecond) // let calls overlap if the limit allows
					children, err := h.Handle(ctx, desc)
					mu.Lock()
					running--
					if desc.Digest == img.Manifest.Digest {
						childrenOfRoot = len(children)
					}
					mu.Unlock()
					return children, err
				})
			}
			store := memory.New()
			if _, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, store.Images(),
				pullkit.WithHandlerWrapper(wrap), pullkit.WithMaxConcurrentDownloads(limit)); err != nil {
				t.Fatalf("Pull error = %v", err)
			}
			if peak > limit {
				t.Errorf("limit %d: %d handler calls at once", limit, peak)
			}
			if len(seen) != len(img.Blobs()) || childrenOfRoot != 1+len(img.Layers) {
				t.Errorf("limit %d: wrapper saw %d descriptors and %d children of the manifest, want %d and %d", limit, len(seen), childrenOfRoot, len(img.Blobs()), 1+len(img.Layers))
			}
		}
	})

	t.Run("WithLogger", func(t *testing.T) {
		reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "s3cret"))
		img := registrytest.RandomImage(7, 1, 256<<10)
		reg.PushImage("team/app", "v1", img)
		reg.Inject(registrytest.Fault{Kind: registrytest.FaultReset, Digest: img.Layers[0].Descriptor.Digest, Bytes: 64 << 10, Times: 1})
		var buf syncBuffer
		logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		store := memory.New()
		if _, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/app:v1", store, store.Images(),
			pullkit.WithCredentials("alice", "s3cret"), pullkit.WithLogger(logger)); err != nil {
			t.Fatalf("Pull error = %v", err)
		}
		log := buf.String()
		if !strings.Contains(log, img.Layers[0].Descriptor.Digest.Encoded()[:12]) {
			t.Errorf("the log does not mention the layer that was resumed:\n%s", log)
		}
		if strings.Contains(log, "s3cret") {
			t.Errorf("the log leaks the password:\n%s", log)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pushSchema1 pushes to team/old:v1 a Docker schema 1 image of three
// layers: base's two, with an empty one between them that is never pushed,
// so a pull that fetched it would fail. Signed, the empty layer is
// Docker's well-known empty tar (schema1.EmptyLayer); unsigned, it is
// another blob marked "throwaway" in its history. It returns the schema 1
// manifest's descriptor.
func pushSchema1(t *testing.T, reg *registrytest.Registry, base registrytest.Image, signed bool) ocispec.Descriptor {
	t.Helper()
	empty := registrytest.Layer{Descriptor: ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Layer, Digest: schema1.EmptyLayer}}
	if !signed {
		empty.Descriptor.Digest = digest.FromString("a throwaway layer, never pushed")
	}
	img := base
	img.Layers = []registrytest.Layer{base.Layers[0], empty, base.Layers[1]}
	body, mediaType := registrytest.Schema1Manifest(img, "team/old", "v1", signed)
	if !signed {
		body = markThrowaway(t, body, 1)
	}
	for _, l := range base.Layers {
		reg.PushBlob("team/old", l.Data)
	}
	return reg.PushManifest("team/old", "v1", mediaType, body)
}

// markThrowaway sets "throwaway": true in the v1Compatibility of history
// entry i (top first) of an unsigned schema 1 manifest.
func markThrowaway(t *testing.T, body []byte, i int) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	entry := m["history"].([]any)[i].(map[string]any)
	var v1 map[string]any
	if err := json.Unmarshal([]byte(entry["v1Compatibility"].(string)), &v1); err != nil {
		t.Fatal(err)
	}
	v1["throwaway"] = true
	b, err := json.Marshal(v1)
	if err != nil {
		t.Fatal(err)
	}
	entry["v1Compatibility"] = string(b)
	out, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPullSchema1 pulls schema 1 images with WithSchema1Conversion: the
// name points at the converted Docker schema 2 manifest, of two layers.
func TestPullSchema1(t *testing.T) {
	base := registrytest.RandomImage(21, 2, 16<<10, registrytest.WithDockerMediaTypes(), registrytest.WithPlatform(linuxARM64))
	for _, st := range stores {
		for _, signed := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/signed=%v", st.name, signed), func(t *testing.T) {
				ctx := testCtx(t)
				reg := registrytest.NewT(t)
				s1 := pushSchema1(t, reg, base, signed)
				ref := reg.Host() + "/team/old:v1"

				// What the converter alone makes of it, into another store.
				c := schema1.NewConverter(memory.New(), fetch.New(reg.Host(), "team/old", fetch.WithClient(reg.Client()), fetch.WithPlainHTTP()))
				if err := handlers.Dispatch(ctx, c, 2, s1); err != nil {
					t.Fatal(err)
				}
				want, err := c.Convert(ctx)
				if err != nil {
					t.Fatal(err)
				}
				reg.ResetStats()

				store, names := st.open(t)
				var rec recorder
				var mu sync.Mutex
				wrapped := map[digest.Digest]bool{}
				wrap := func(h handlers.Handler) handlers.Handler {
					return handlers.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
						mu.Lock()
						wrapped[desc.Digest] = true
						mu.Unlock()
						return h.Handle(ctx, desc)
					})
				}
				img, err := pullkit.Pull(ctx, ref, store, names, pullkit.WithSchema1Conversion(),
					pullkit.WithObserver(rec.observe), pullkit.WithHandlerWrapper(wrap))
				if err != nil {
					t.Fatalf("Pull(%q) error = %v", ref, err)
				}

				if img.Target.Digest != want.Digest || img.Target.MediaType != handlers.MediaTypeDockerSchema2Manifest || img.Manifest.Digest != want.Digest {
					t.Errorf("Target = %s %s, Manifest = %s; want the converted %s %s", img.Target.MediaType, img.Target.Digest, img.Manifest.Digest, handlers.MediaTypeDockerSchema2Manifest, want.Digest)
				}
				m, err := handlers.Manifest(ctx, store, img.Manifest, nil)
				if err != nil {
					t.Fatalf("handlers.Manifest() error = %v", err)
				}
				if img.ID != m.Config.Digest {
					t.Errorf("ID = %s, want the converted config's digest %s", img.ID, m.Config.Digest)
				}
				var gotLayers []digest.Digest
				wantSize := img.Manifest.Size + m.Config.Size
				for _, l := range m.Layers {
					gotLayers = append(gotLayers, l.Digest)
					wantSize += l.Size
				}
				if !slices.Equal(gotLayers, layerDigests(base)) {
					t.Errorf("layers = %v, want the two that are not empty, base first: %v", gotLayers, layerDigests(base))
				}
				if img.Size != wantSize {
					t.Errorf("Size = %d, want %d", img.Size, wantSize)
				}
				cfg, _, err := handlers.Config(ctx, store, img.Manifest, nil)
				if err != nil {
					t.Fatalf("handlers.Config() error = %v", err)
				}
				if want := []digest.Digest{base.Layers[0].DiffID, base.Layers[1].DiffID}; !slices.Equal(cfg.RootFS.DiffIDs, want) {
					t.Errorf("diff IDs = %v, want %v", cfg.RootFS.DiffIDs, want)
				}
				if cfg.OS != "linux" || cfg.Architecture != "arm64" || len(cfg.History) != 3 || !cfg.History[1].EmptyLayer {
					t.Errorf("config = %s/%s with history %+v, want linux/arm64 and 3 entries, the middle one empty", cfg.OS, cfg.Architecture, cfg.History)
				}
				if want := []string{reg.Host() + "/team/old:v1"}; !slices.Equal(img.RepoTags, want) {
					t.Errorf("RepoTags = %q, want %q", img.RepoTags, want)
				}
				if want := []string{reg.Host() + "/team/old@" + s1.Digest.String()}; !slices.Equal(img.RepoDigests, want) {
					t.Errorf("RepoDigests = %q, want the registry's digest %q", img.RepoDigests, want)
				}

				named, err := names.Get(ctx, ref)
				if err != nil || named.Target.Digest != want.Digest || named.Target.MediaType != handlers.MediaTypeDockerSchema2Manifest {
					t.Errorf("name record = %+v, %v; want it at the converted manifest %s", named.Target, err, want.Digest)
				}
				if has(t, store, s1.Digest) {
					t.Error("the schema 1 manifest was stored")
				}
				for _, r := range reg.Requests() {
					if strings.Contains(r.Path, "/blobs/") && !strings.Contains(r.Path, base.Layers[0].Descriptor.Digest.String()) &&
						!strings.Contains(r.Path, base.Layers[1].Descriptor.Digest.String()) {
						t.Errorf("%s %s: only the two layers are blobs to ask for", r.Method, r.Path)
					}
				}
				for _, d := range layerDigests(base) {
					if _, ok := rec.find(fetch.Committed, d); !ok {
						t.Errorf("layer %s: events %v, want Committed", d, rec.kinds(d))
					}
				}
				if _, ok := rec.find(fetch.Resolved, s1.Digest); !ok {
					t.Errorf("no Resolved event for the schema 1 manifest")
				}
				for _, d := range append(layerDigests(base), want.Digest, m.Config.Digest) {
					if !wrapped[d] {
						t.Errorf("the handler wrapper did not see %s", d)
					}
				}

				// Again: the layers are in the store, with their diff IDs.
				reg.ResetStats()
				again, err := pullkit.Pull(ctx, ref, store, names, pullkit.WithSchema1Conversion())
				if err != nil || again.Target.Digest != want.Digest {
					t.Fatalf("second Pull = %s, %v; want %s", again.Target.Digest, err, want.Digest)
				}
				for _, r := range reg.Requests() {
					if r.Method == http.MethodGet && strings.Contains(r.Path, "/blobs/") {
						t.Errorf("second Pull fetched %s", r.Path)
					}
				}
			})
		}
	}
}

// TestPullSchema1Disabled pulls schema 1 images without
// WithSchema1Conversion: the error says how to enable it, and nothing is
// downloaded.
func TestPullSchema1Disabled(t *testing.T) {
	base := registrytest.RandomImage(22, 2, 4<<10, registrytest.WithDockerMediaTypes())
	for _, signed := range []bool{true, false} {
		t.Run(fmt.Sprintf("signed=%v", signed), func(t *testing.T) {
			reg := registrytest.NewT(t)
			pushSchema1(t, reg, base, signed)
			ref := reg.Host() + "/team/old:v1"
			store := memory.New()
			_, err := pullkit.Pull(testCtx(t), ref, store, store.Images())
			if !errors.Is(err, schema1.ErrConversionDisabled) || !errdefs.IsNotImplemented(err) {
				t.Fatalf("Pull(%q) error = %v, want schema1.ErrConversionDisabled, NotImplemented", ref, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "WithSchema1Conversion") || !strings.HasPrefix(msg, "pull "+ref+": ") {
				t.Errorf("error %q does not name the reference and the option", msg)
			}
			if got := listNames(t, store.Images()); len(got) != 0 {
				t.Errorf("names = %q, want none", got)
			}
			for _, r := range reg.Requests() {
				if strings.Contains(r.Path, "/blobs/") {
					t.Errorf("%s %s: nothing should be downloaded", r.Method, r.Path)
				}
			}
		})
	}
}

// noStatResolver is a resolver whose fetchers have no Stat method.
type noStatResolver struct{ *resolve.Registry }

func (r noStatResolver) Fetcher(ctx context.Context, ref string) (fetch.Fetcher, error) {
	f, err := r.Registry.Fetcher(ctx, ref)
	if err != nil {
		return nil, err
	}
	return fetch.FetcherFunc(f.Fetch), nil
}

// A resolver whose fetcher cannot tell sizes cannot convert schema 1
// images, and the error says why.
func TestPullSchema1WithoutStat(t *testing.T) {
	reg := registrytest.NewT(t)
	pushSchema1(t, reg, registrytest.RandomImage(23, 2, 4<<10, registrytest.WithDockerMediaTypes()), true)
	store := memory.New()
	_, err := pullkit.Pull(testCtx(t), reg.Host()+"/team/old:v1", store, store.Images(),
		pullkit.WithSchema1Conversion(), pullkit.WithResolver(noStatResolver{resolve.New()}))
	if !errdefs.IsNotImplemented(err) || errors.Is(err, schema1.ErrConversionDisabled) || !strings.Contains(err.Error(), "fetcher with Stat") {
		t.Fatalf("Pull error = %v, want NotImplemented naming Stat", err)
	}
	if got := listNames(t, store.Images()); len(got) != 0 {
		t.Errorf("names = %q, want none", got)
	}
}
