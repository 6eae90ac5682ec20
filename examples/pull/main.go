// Command pull pulls an image into a pullkit store on disk and shows how
// the pull goes: each blob started, resumed, retried, committed or skipped,
// a live progress bar on a terminal, the timing, and what was pulled.
//
// Usage:
//
//	go run ./examples/pull [flags] [reference]
//
// With no reference it runs a demo, offline: it starts an in-process
// registry (resolve/registrytest) with token auth, pushes a multi-platform
// image to it (one manifest for this host, of a few MiB, and small ones for
// other platforms), and pulls demo.pullkit.test/pullkit/demo:latest from it
// with credentials. The registry stands in for demo.pullkit.test as its
// only mirror, as a hosts.toml would configure it, so that the name in the
// store is the same from run to run. Its blobs trickle in and one
// connection drops on purpose, so that the progress and a resumed download
// can be seen. Run it twice: the second run finds every blob in the store.
//
// With a reference, such as docker.io/library/alpine:3.20, it pulls from
// that registry, with the credentials of -username and -password or else
// those of docker's config.json.
//
// Flags:
//
//	-store DIR        the store, an OCI image layout (default ./pullkit-store)
//	-platform P       the platform to pull, os/arch[/variant] (default: this host's)
//	-concurrency N    how many blobs download at once (default 4)
//	-username U       the registry user name (default: from docker's config.json)
//	-password P       the registry password or token
//	-plain-http       speak plain HTTP to the reference's registry
//	-insecure         skip TLS certificate verification for the reference's registry
//	-hosts-dir DIR    read mirrors and TLS settings from containerd's hosts.toml layout
//	-rootfs DIR       after the pull, unpack the image into DIR (created; must be empty)
//
// Errors are printed on stderr and the exit status is 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit"
	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/content/local"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/reference"
	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/resolve/registrytest"
	"github.com/pullkit/pullkit/unpack"
)

// The demo's registry name, image and credentials.
const (
	demoRegistry = "demo.pullkit.test"
	demoRepo     = "pullkit/demo"
	demoRef      = demoRegistry + "/" + demoRepo + ":latest"
	demoUser     = "demo"
	demoPassword = "demo-password"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pull:", err)
		os.Exit(1)
	}
}

// run parses args, pulls, and writes the steps and the result to stdout.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	fs.SetOutput(stdout)
	storeDir := fs.String("store", "./pullkit-store", "the store `directory`, an OCI image layout")
	platform := fs.String("platform", "", "the `platform` to pull, os/arch[/variant] (default: this host's)")
	concurrency := fs.Int("concurrency", pullkit.DefaultConcurrency, "how many blobs download at once")
	username := fs.String("username", "", "the registry user name (default: from docker's config.json)")
	password := fs.String("password", "", "the registry password or token")
	plainHTTP := fs.Bool("plain-http", false, "speak plain HTTP to the reference's registry")
	insecure := fs.Bool("insecure", false, "skip TLS certificate verification for the reference's registry")
	hostsDir := fs.String("hosts-dir", "", "read mirrors and TLS settings from containerd's hosts.toml `directory`")
	rootfs := fs.String("rootfs", "", "after the pull, unpack the image into this `directory` (created; must be empty)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: pull [flags] [reference]\n\nWith no reference, pull a demo image from an in-process registry.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("give one reference at most, not %d: %q", fs.NArg(), fs.Args())
	}
	if *username == "" && *password != "" {
		return errors.New("-password needs -username")
	}

	opts := []pullkit.Option{pullkit.WithMaxConcurrentDownloads(*concurrency)}
	if *platform != "" {
		p, err := platforms.Parse(*platform)
		if err != nil {
			return fmt.Errorf("-platform: %w", err)
		}
		opts = append(opts, pullkit.WithPlatforms(platforms.Only(p)))
	}

	ref := fs.Arg(0)
	if ref == "" {
		if *plainHTTP || *insecure || *hostsDir != "" {
			return errors.New("-plain-http, -insecure and -hosts-dir are for a registry named by a reference; the demo needs none")
		}
		user, pass := demoUser, demoPassword
		if *username != "" {
			user, pass = *username, *password
		}
		reg := startDemo()
		defer reg.Close()
		fmt.Fprintf(stdout, "demo: a registry on %s (token auth, user %q) mirrors %s;\n", reg.Host(), demoUser, demoRegistry)
		fmt.Fprintf(stdout, "      its blobs trickle in and one connection drops, to show progress and resume\n")
		ref = demoRef
		opts = append(opts,
			pullkit.WithHosts(resolve.Hosts(resolve.WithMirrors(demoRegistry, reg.URL()), resolve.WithoutFallback(demoRegistry))),
			// Credentials go to the host that serves the requests, the mirror.
			pullkit.WithKeychain(auth.Static(reg.Host(), auth.Credential{Username: user, Password: pass})))
	} else {
		parsed, err := reference.Parse(ref)
		if err != nil {
			return err
		}
		var hostOpts []resolve.HostOption
		if *hostsDir != "" {
			hostOpts = append(hostOpts, resolve.WithHostsDir(*hostsDir))
		}
		if *plainHTTP {
			hostOpts = append(hostOpts, resolve.WithPlainHTTP(parsed.Registry))
		}
		if *insecure {
			hostOpts = append(hostOpts, resolve.WithInsecureSkipVerify(parsed.Registry))
		}
		opts = append(opts, pullkit.WithHosts(resolve.Hosts(hostOpts...)))
		if *username != "" {
			opts = append(opts, pullkit.WithCredentials(*username, *password))
		} else {
			opts = append(opts, pullkit.WithKeychain(auth.DockerConfig()))
		}
	}

	store, err := local.New(*storeDir)
	if err != nil {
		return err
	}
	p := newProgress(stdout, isTerminal(stdout), ref)
	img, err := pullkit.Pull(ctx, ref, store, store.Images(), append(opts, pullkit.WithObserver(p.observe))...)
	elapsed := p.finish()
	if err != nil {
		return err
	}
	if err := report(ctx, stdout, store, img, elapsed, p.fetched()); err != nil {
		return err
	}
	if *rootfs != "" {
		return unpackTo(ctx, stdout, store, img, *rootfs)
	}
	return nil
}

// unpackTo flattens the pulled image into dir, which must be empty or absent.
func unpackTo(ctx context.Context, w io.Writer, store *local.Store, img pullkit.Image, dir string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("-rootfs %s: the directory is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	if err := unpack.ToDir(ctx, store, img.Manifest, dir); err != nil {
		return fmt.Errorf("-rootfs %s: %w", dir, err)
	}
	files := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  rootfs    %s (%d files, unpacked in %s)\n", dir, files, time.Since(start).Round(time.Millisecond))
	return nil
}

// startDemo starts the demo registry: token auth, a multi-platform image
// whose manifest for this host has 3 layers of 2 MiB, blobs that trickle
// at about 3 MiB/s per connection, and one connection reset halfway
// through a layer.
func startDemo() *registrytest.Registry {
	reg := registrytest.New(registrytest.WithTokenAuth(demoUser, demoPassword))
	host := platforms.DefaultSpec()
	mine := demoImage()
	imgs := []registrytest.Image{mine}
	isHost := platforms.OnlyStrict(host)
	for i, s := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/s390x"} {
		if p := platforms.MustParse(s); !isHost.Match(p) {
			imgs = append(imgs, registrytest.RandomImage(int64(10+i), 2, 64<<10, registrytest.WithPlatform(p), registrytest.WithCompression(handlers.CompressionZstd)))
		}
	}
	reg.PushIndex(demoRepo, "latest", imgs...)
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultTrickle, Path: "/blobs/", Bytes: 32 << 10, Interval: 10 * time.Millisecond})
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultReset, Digest: mine.Layers[1].Descriptor.Digest, Bytes: 1 << 20, Times: 1})
	return reg
}

// demoImage is the demo's image for this host.
func demoImage() registrytest.Image {
	return registrytest.RandomImage(1, 3, 2<<20, registrytest.WithPlatform(platforms.DefaultSpec()), registrytest.WithCompression(handlers.CompressionZstd))
}

// report writes what was pulled.
func report(ctx context.Context, w io.Writer, store *local.Store, img pullkit.Image, elapsed time.Duration, fetched int64) error {
	cfg, _, err := handlers.Config(ctx, store, img.Manifest, platforms.All)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "pulled %s in %s, %s fetched\n", img.Name, elapsed.Round(time.Millisecond), size(fetched))
	fmt.Fprintf(w, "  name      %s\n", img.Name)
	fmt.Fprintf(w, "  id        %s\n", img.ID)
	fmt.Fprintf(w, "  digest    %s (%s)\n", img.Target.Digest, kind(img.Target))
	fmt.Fprintf(w, "  manifest  %s (%s)\n", img.Manifest.Digest, platforms.Format(cfg.Platform))
	fmt.Fprintf(w, "  size      %s\n", size(img.Size))
	fmt.Fprintf(w, "  store     %s\n", store.Root())
	return nil
}

// isTerminal reports whether w is a terminal, which gets a progress bar.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress shows a pull's events: one line per step and, on a terminal, a
// bar redrawn in place on the last line. Its methods are safe for
// concurrent use, as pullkit.WithObserver requires.
type progress struct {
	w     io.Writer
	tty   bool
	ref   string
	start time.Time
	stop  chan struct{}
	done  sync.WaitGroup

	mu      sync.Mutex
	blobs   map[digest.Digest]*blob
	order   []digest.Digest
	barLen  int // length of the bar on screen, 0 when none
	stopped bool
}

// blob is what progress knows about one blob.
type blob struct {
	desc    ocispec.Descriptor
	from    int64 // where this run's download started
	offset  int64 // bytes in the store
	done    bool
	skipped bool
}

// newProgress starts showing the progress of the pull of ref on w, with a
// bar when tty is set.
func newProgress(w io.Writer, tty bool, ref string) *progress {
	p := &progress{w: w, tty: tty, ref: ref, start: time.Now(), stop: make(chan struct{}), blobs: map[digest.Digest]*blob{}}
	if tty {
		p.done.Add(1)
		go func() {
			defer p.done.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-p.stop:
					return
				case <-t.C:
					p.mu.Lock()
					p.drawBar()
					p.mu.Unlock()
				}
			}
		}()
	}
	return p
}

// observe handles one event of the pull.
func (p *progress) observe(e fetch.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	b := p.blobs[e.Desc.Digest]
	if b == nil && e.Kind != fetch.Resolved {
		b = &blob{desc: e.Desc, from: e.Offset, offset: e.Offset}
		p.blobs[e.Desc.Digest] = b
		p.order = append(p.order, e.Desc.Digest)
	}
	what := fmt.Sprintf("%-8s %s", kind(e.Desc), short(e.Desc.Digest))
	switch e.Kind {
	case fetch.Resolved:
		p.step("resolved", fmt.Sprintf("%s to %s %s, %s", p.ref, kind(e.Desc), short(e.Desc.Digest), size(e.Desc.Size)))
	case fetch.Started:
		detail := size(e.Desc.Size)
		if e.Offset > 0 {
			detail += ", " + size(e.Offset) + " already in the store"
		}
		p.step("started", what+" "+detail)
	case fetch.Progress:
		b.offset = e.Offset
	case fetch.Retried:
		p.step("retried", fmt.Sprintf("%s attempt %d: %v", what, e.Attempt, e.Err))
	case fetch.Resumed:
		p.step("resumed", fmt.Sprintf("%s at %s of %s", what, size(e.Offset), size(e.Desc.Size)))
	case fetch.Committed:
		b.offset, b.done = e.Desc.Size, true
		p.step("committed", what+" "+size(e.Desc.Size))
	case fetch.Skipped:
		b.offset, b.done, b.skipped = e.Desc.Size, true, true
		p.step("skipped", what+" already in the store")
	}
}

// step writes one line, above the bar on a terminal.
func (p *progress) step(name, detail string) {
	p.clearBar()
	fmt.Fprintf(p.w, "%6.2fs %-9s %s\n", time.Since(p.start).Seconds(), name, detail)
	p.drawBar()
}

// clearBar blanks the bar's line, on a terminal.
func (p *progress) clearBar() {
	if p.barLen > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.barLen))
		p.barLen = 0
	}
}

// drawBar redraws the bar, on a terminal:
// [##########··········]  50%  3.0 MiB/6.0 MiB  3/6 blobs  5.2 MiB/s
func (p *progress) drawBar() {
	if !p.tty || p.stopped || len(p.order) == 0 {
		return
	}
	var have, total, fetched int64
	done := 0
	for _, d := range p.order {
		b := p.blobs[d]
		have += b.offset
		total += b.desc.Size
		if !b.skipped {
			fetched += b.offset - b.from
		}
		if b.done {
			done++
		}
	}
	const width = 24
	filled := 0
	if total > 0 {
		filled = int(int64(width) * have / total)
	}
	secs := max(time.Since(p.start).Seconds(), 0.001)
	line := fmt.Sprintf("[%s%s] %3d%%  %s/%s  %d/%d blobs  %s/s",
		strings.Repeat("#", filled), strings.Repeat("·", width-filled), percent(have, total),
		size(have), size(total), done, len(p.order), size(int64(float64(fetched)/secs)))
	pad := max(p.barLen-len([]rune(line)), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.barLen = len([]rune(line)) + pad
}

// finish stops the bar, leaving its last state on screen, and returns how
// long the pull took.
func (p *progress) finish() time.Duration {
	elapsed := time.Since(p.start)
	close(p.stop)
	p.done.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.drawBar()
		if p.barLen > 0 {
			fmt.Fprintln(p.w)
			p.barLen = 0
		}
	}
	p.stopped = true
	return elapsed
}

// fetched returns the bytes this pull downloaded.
func (p *progress) fetched() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, b := range p.blobs {
		if !b.skipped {
			n += b.offset - b.from
		}
	}
	return n
}

// kind names what desc is: "index", "manifest", "config", "layer" or
// "blob", as its ingest ref in the store does.
func kind(desc ocispec.Descriptor) string {
	k, _, _ := strings.Cut(fetch.IngestRef(desc), "-")
	return k
}

// short abbreviates a digest for the step lines: "sha256:0123456789ab".
func short(d digest.Digest) string {
	s := d.String()
	if i := strings.IndexByte(s, ':'); i >= 0 && len(s) > i+13 {
		return s[:i+13]
	}
	return s
}

// percent returns have/total in whole percent.
func percent(have, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(100 * have / total)
}

// size formats n bytes as "512 B", "4.0 KiB", "2.5 MiB" or "1.2 GiB".
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if f < unit {
			break
		}
		f, suffix = f/unit, s
	}
	return fmt.Sprintf("%.1f %s", f, suffix)
}
