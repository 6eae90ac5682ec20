// Command import imports a docker save or OCI layout archive into a
// pullkit store on disk, and lists the images it imported: name, ID (the
// digest of the image config, as docker shows it) and size.
//
// Usage:
//
//	go run ./examples/import [flags] FILE
//	docker save ubuntu:24.04 | go run ./examples/import -
//
// FILE may be a plain, gzip- or zstd-compressed tar; "-" reads standard
// input. The archive is read once, as a stream.
//
// Flags:
//
//	-store DIR     the store, an OCI image layout (default ./pullkit-store)
//	-platform P    import only images for platform P, os/arch[/variant] (default: all)
//	-prefix NAME   the repository for images the archive leaves unnamed (default import-<date>)
//	-digests       also name every image NAME@<manifest digest>
//	-snapshots DIR also unpack each image into a directory snapshotter at DIR
//
// Errors are printed on stderr and the exit status is 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"text/tabwriter"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/local"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/importer"
	"github.com/pullkit/pullkit/unpack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "import:", err)
		os.Exit(1)
	}
}

// stdin is what "-" reads; tests replace it.
var stdin io.Reader = os.Stdin

// run parses args, imports the archive they name and prints what it imported.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	storeDir := fs.String("store", "./pullkit-store", "the store, an OCI image layout")
	platform := fs.String("platform", "", "import only images for this platform, os/arch[/variant] (default: all)")
	prefix := fs.String("prefix", "", "the repository for images the archive leaves unnamed (default import-<date>)")
	digests := fs.Bool("digests", false, "also name every image NAME@<manifest digest>")
	snapshots := fs.String("snapshots", "", "also unpack each image into a directory snapshotter rooted at this `directory`")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: import [flags] FILE|-")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want one archive, got %d arguments: %w", fs.NArg(), errdefs.ErrInvalidArgument)
	}

	opts := []importer.Option{importer.WithNamePrefix(*prefix)}
	if *platform != "" {
		p, err := platforms.Parse(*platform)
		if err != nil {
			return err
		}
		opts = append(opts, importer.WithPlatforms(platforms.Only(p)))
	}
	if *digests {
		opts = append(opts, importer.WithDigestNames())
	}

	var sn *unpack.Directory
	if *snapshots != "" {
		var err error
		if sn, err = unpack.NewDirectory(*snapshots); err != nil {
			return err
		}
	}

	var r io.Reader = stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	store, err := local.New(*storeDir)
	if err != nil {
		return err
	}

	chainIDs := map[digest.Digest]digest.Digest{} // image root → top snapshot
	if sn != nil {
		// The importer unpacks each image before it names it, so a name
		// never points at an image that failed to unpack.
		opts = append(opts, importer.WithUnpack(importer.UnpackerFunc(func(ctx context.Context, target ocispec.Descriptor) error {
			chainID, err := unpack.Unpack(ctx, sn, store, target)
			chainIDs[target.Digest] = chainID
			return err
		})))
	}

	counted := &countingReader{r: r}
	start := time.Now()
	imgs, err := importer.Import(ctx, store, store.Images(), counted, opts...)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSIZE")
	for _, img := range imgs {
		id, size, err := describe(ctx, store, img.Target)
		if err != nil {
			return fmt.Errorf("%s: %w", img.Name, err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", img.Name, id, humanSize(size))
	}
	if sn != nil {
		for _, img := range imgs {
			fmt.Fprintf(tw, "%s\tsnapshot %s\t\n", img.Name, chainIDs[img.Target.Digest])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "imported %d name(s) from %s in %s into %s\n",
		len(imgs), humanSize(counted.n), elapsed.Round(time.Millisecond), store.Root())
	return err
}

// describe returns the short ID (config digest) and the size (manifest,
// config and layers, and the index above them if any) of the image under
// target, for this host's platform when target is an index that has it,
// else for the first platform it lists.
func describe(ctx context.Context, store content.Provider, target ocispec.Descriptor) (string, int64, error) {
	desc, err := handlers.ManifestDescriptor(ctx, store, target, platforms.Default())
	var nomatch *handlers.NoMatchError
	if errors.As(err, &nomatch) {
		desc, err = handlers.ManifestDescriptor(ctx, store, target, platforms.All)
	}
	if err != nil {
		return "", 0, err
	}
	m, err := handlers.Manifest(ctx, store, desc, platforms.All)
	if err != nil {
		return "", 0, err
	}
	size := desc.Size + m.Config.Size
	if desc.Digest != target.Digest {
		size += target.Size
	}
	for _, l := range m.Layers {
		size += l.Size
	}
	id := m.Config.Digest.Encoded()
	return id[:min(12, len(id))], size, nil
}

// humanSize formats n bytes as docker does: 1000-based units.
func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f, i := float64(n), 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.3g%cB", f, " kMGT"[i])
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
