package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	ctrarchive "github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/transfer"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	ctrlocal "github.com/containerd/containerd/v2/plugins/content/local"
	ctrplatforms "github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit"
	pklocal "github.com/pullkit/pullkit/content/local"
	"github.com/pullkit/pullkit/importer"
	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/unpack"
)

// job is what a worker is asked to do.
type job struct {
	Contender string
	Op        string // pull, unpack, import
	Ref       string // host/repo:tag
	Host      string // the registry host (or the capped proxy's), plain HTTP
	Dir       string // a fresh directory for the store and the root filesystem
	Archive   string // import: the docker save archive; gnutar: the layer blob
	Blobs     string // ref-get: comma-separated digests to fetch, in order
	Repo      string // ref-get: the repository
}

func (j job) store() string  { return filepath.Join(j.Dir, "store") }
func (j job) rootfs() string { return filepath.Join(j.Dir, "rootfs") }

// ops maps contender and op to the function that does it.
var ops = map[string]map[string]func(context.Context, job) error{
	"pullkit": {
		"pull":   func(ctx context.Context, j job) error { _, _, err := pullkitPull(ctx, j); return err },
		"unpack": pullkitUnpack,
		"import": pullkitImport,
	},
	// pullkit with a store that does not fsync (local.WithSync(false)), as
	// ggcr's layout never does: what durability costs.
	"pullkit-nosync": {
		"pull":   func(ctx context.Context, j job) error { _, _, err := pullkitPull(ctx, j); return err },
		"import": pullkitImport,
	},
	// pullkit's unpack without decompressing layers ahead
	// (unpack.WithDecompressAhead(-1)): what that lever gives.
	"pullkit-noahead": {
		"unpack": pullkitUnpack,
	},
	"containerd": {
		"pull":   func(ctx context.Context, j job) error { _, _, err := containerdPull(ctx, j); return err },
		"unpack": containerdUnpack,
		"import": containerdImport,
	},
	// containerd with its opt-in parallel range download of a layer
	// (ConcurrentLayerFetchBuffer, off by default), 4 ranges of 16 MiB.
	"containerd-chunked": {
		"pull":   func(ctx context.Context, j job) error { _, _, err := containerdPull(ctx, j); return err },
		"unpack": containerdUnpack,
	},
	"ggcr": {
		"pull":   ggcrPull,
		"unpack": ggcrUnpack,
		"import": ggcrImport,
	},
	// References: the plain single-stream path, GNU tar, and read+sha256 of
	// an archive from a pipe.
	"ref-get":    {"pull": refGet},
	"gnu-tar":    {"unpack": gnuTar},
	"ref-sha256": {"import": refSHA256},
	// A worker that does nothing, for the floor of the peak RSS figures.
	"idle": {"pull": func(context.Context, job) error { return nil }},
}

// ---- pullkit ----

func pullkitStore(j job) (*pklocal.Store, error) {
	return pklocal.New(j.store(), pklocal.WithSync(j.Contender != "pullkit-nosync"))
}

func pullkitPull(ctx context.Context, j job) (pullkit.Image, *pklocal.Store, error) {
	store, err := pullkitStore(j)
	if err != nil {
		return pullkit.Image{}, nil, err
	}
	img, err := pullkit.Pull(ctx, j.Ref, store, store.Images(),
		pullkit.WithHosts(resolve.Hosts(resolve.WithPlainHTTP(j.Host))))
	return img, store, err
}

// pullkitUnpack flattens the image into a directory while it downloads:
// an unpack.NewDirUnpacker wraps the pull's handlers, so each layer is
// applied, its diffID verified, as soon as it and the layers below it are
// in the store, while later layers still download.
func pullkitUnpack(ctx context.Context, j job) error {
	store, err := pullkitStore(j)
	if err != nil {
		return err
	}
	var opts []unpack.Option
	if j.Contender == "pullkit-noahead" {
		opts = append(opts, unpack.WithDecompressAhead(-1))
	}
	u := unpack.NewDirUnpacker(j.rootfs(), store, opts...)
	if _, err := pullkit.Pull(ctx, j.Ref, store, store.Images(),
		pullkit.WithHosts(resolve.Hosts(resolve.WithPlainHTTP(j.Host))),
		pullkit.WithHandlerWrapper(u.Wrap)); err != nil {
		return err
	}
	res, err := u.Results()
	if err != nil {
		return err
	}
	if len(res) != 1 {
		return fmt.Errorf("unpacked %d images, want 1", len(res))
	}
	return nil
}

func pullkitImport(ctx context.Context, j job) error {
	store, err := pullkitStore(j)
	if err != nil {
		return err
	}
	return fromPipe(j.Archive, func(r io.Reader) error {
		_, err := importer.Import(ctx, store, store.Images(), r)
		return err
	})
}

// ---- containerd v2 client packages ----

func containerdPull(ctx context.Context, j job) (content.Store, images.Image, error) {
	store, err := ctrlocal.NewStore(j.store())
	if err != nil {
		return nil, images.Image{}, err
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchAllHosts)),
	})
	if j.Contender == "containerd-chunked" {
		s, ok := resolver.(interface {
			SetOptions(...transfer.ImageResolverOption)
		})
		if !ok {
			return nil, images.Image{}, errors.New("containerd's resolver has no SetOptions")
		}
		s.SetOptions(transfer.WithMaxConcurrentDownloads(4), transfer.WithConcurrentLayerFetchBuffer(16<<20))
	}
	name, desc, err := resolver.Resolve(ctx, j.Ref)
	if err != nil {
		return nil, images.Image{}, err
	}
	fetcher, err := resolver.Fetcher(ctx, name)
	if err != nil {
		return nil, images.Image{}, err
	}
	// As containerd's client.Fetch assembles it: fetch, then the children
	// of the manifests for the platform.
	plat := ctrplatforms.Default()
	children := images.ChildrenHandler(store)
	children = images.FilterPlatforms(children, plat)
	children = images.LimitManifests(children, plat, 1)
	h := images.Handlers(remotes.FetchHandler(store, fetcher), children)
	if err := images.Dispatch(ctx, h, nil, desc); err != nil {
		return nil, images.Image{}, err
	}
	return store, images.Image{Name: name, Target: desc}, nil
}

// containerdUnpack pulls, then applies each layer as containerd's walking
// differ does: decompress, apply with pkg/archive, and check the digest of
// the uncompressed stream against the config's diffID.
func containerdUnpack(ctx context.Context, j job) error {
	store, img, err := containerdPull(ctx, j)
	if err != nil {
		return err
	}
	plat := ctrplatforms.Default()
	man, err := images.Manifest(ctx, store, img.Target, plat)
	if err != nil {
		return err
	}
	diffIDs, err := images.RootFS(ctx, store, man.Config)
	if err != nil {
		return err
	}
	if err := os.Mkdir(j.rootfs(), 0o755); err != nil {
		return err
	}
	for i, l := range man.Layers {
		ra, err := store.ReaderAt(ctx, l)
		if err != nil {
			return err
		}
		err = func() error {
			defer ra.Close()
			ds, err := compression.DecompressStream(content.NewReader(ra))
			if err != nil {
				return err
			}
			defer ds.Close()
			d := digest.Canonical.Digester()
			tee := io.TeeReader(ds, d.Hash())
			if _, err := archive.Apply(ctx, j.rootfs(), tee); err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, tee); err != nil {
				return err
			}
			if d.Digest() != diffIDs[i] {
				return fmt.Errorf("layer %d: diffID %s, want %s", i, d.Digest(), diffIDs[i])
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

func containerdImport(ctx context.Context, j job) error {
	store, err := ctrlocal.NewStore(j.store())
	if err != nil {
		return err
	}
	return fromPipe(j.Archive, func(r io.Reader) error {
		_, err := ctrarchive.ImportIndex(ctx, store, r)
		return err
	})
}

// ---- go-containerregistry ----

func ggcrImage(ctx context.Context, j job) (v1.Image, error) {
	ref, err := name.ParseReference(j.Ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	return remote.Image(ref, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
}

func ggcrPull(ctx context.Context, j job) error {
	img, err := ggcrImage(ctx, j)
	if err != nil {
		return err
	}
	p, err := layout.Write(j.store(), empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}

// ggcrUnpack streams the flattened filesystem from mutate.Extract into
// extractTar: ggcr has no extractor of its own, and no store on this path.
func ggcrUnpack(ctx context.Context, j job) error {
	img, err := ggcrImage(ctx, j)
	if err != nil {
		return err
	}
	if err := os.Mkdir(j.rootfs(), 0o755); err != nil {
		return err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	return extractTar(rc, j.rootfs())
}

// ggcrImport reads the archive by path: tarball.ImageFromPath opens the
// file several times, so it cannot read from a pipe.
func ggcrImport(ctx context.Context, j job) error {
	img, err := tarball.ImageFromPath(j.Archive, nil)
	if err != nil {
		return err
	}
	p, err := layout.Write(j.store(), empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}

// ---- references ----

// refGet fetches the image's blobs one after the other over one
// connection, hashing each and writing it to a file with fsync: what a
// single stream can do here, with no framework around it.
func refGet(ctx context.Context, j job) error {
	if err := os.MkdirAll(j.store(), 0o755); err != nil {
		return err
	}
	client := &http.Client{}
	buf := make([]byte, 1<<20)
	for _, d := range strings.Split(j.Blobs, ",") {
		dg := digest.Digest(d)
		u := fmt.Sprintf("http://%s/v2/%s/blobs/%s", j.Host, j.Repo, dg)
		if strings.HasPrefix(d, "manifest:") {
			dg = digest.Digest(strings.TrimPrefix(d, "manifest:"))
			u = fmt.Sprintf("http://%s/v2/%s/manifests/%s", j.Host, j.Repo, dg)
		}
		err := func() error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", u, resp.Status)
			}
			f, err := os.Create(filepath.Join(j.store(), dg.Encoded()))
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha256.New()
			if _, err := io.CopyBuffer(io.MultiWriter(f, h), resp.Body, buf); err != nil {
				return err
			}
			if digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)) != dg {
				return fmt.Errorf("GET %s: digest mismatch", u)
			}
			if err := f.Sync(); err != nil {
				return err
			}
			return f.Close()
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// gnuTar extracts a layer blob with GNU tar -xzf, which reads it with gzip
// in a second process.
func gnuTar(ctx context.Context, j job) error {
	if err := os.Mkdir(j.rootfs(), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "tar", "-xzf", j.Archive, "-C", j.rootfs())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("tar: %w: %s", err, out)
	}
	childRusage = cmd.ProcessState.SysUsage()
	return nil
}

// refSHA256 reads the archive from a pipe and hashes it: the least an
// import from a pipe must do.
func refSHA256(ctx context.Context, j job) error {
	return fromPipe(j.Archive, func(r io.Reader) error {
		h := sha256.New()
		_, err := io.CopyBuffer(h, r, make([]byte, 1<<20))
		return err
	})
}

// fromPipe feeds the file through an OS pipe, as `docker save | ...` would,
// to consume, which must read it to its end.
func fromPipe(file string, consume func(io.Reader) error) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(pw, f)
		_ = pw.Close()
		done <- err
	}()
	cerr := consume(pr)
	if cerr != nil {
		_ = pr.Close() // unblock the writer
		<-done
		return cerr
	}
	// Drain what the consumer left (tar padding past the end marker).
	_, _ = io.Copy(io.Discard, pr)
	_ = pr.Close()
	return errors.Join(cerr, <-done)
}
