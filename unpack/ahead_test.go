//go:build linux

package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
)

// TestDecompressAhead checks that a layer fetched while the one below it
// still downloads is decompressed ahead, and then applied from what that
// wrote, its large files included: layer 1's download waits until layer 2
// has been read to its end, which only a decompression ahead does, and
// every layer is read once.
func TestDecompressAhead(t *testing.T) {
	for _, mode := range []string{"directory", "snapshotter"} {
		t.Run(mode, func(t *testing.T) {
			img, log := unpackAhead(t, mode, layer1WaitsForLayer2)
			for i, l := range img.layers {
				if n := log.count(l.Digest); n != 1 {
					t.Errorf("layer %d read %d times, want once", i+1, n)
				}
			}
		})
	}
}

// unpackAhead pulls and unpacks, into a directory or a snapshotter (mode),
// an image of three layers whose second holds large files, with its
// downloads ordered by order and the Unpacker's options opts, and checks
// that it unpacks as the layers applied in order. It returns the image and
// the provider order made.
func unpackAhead(t *testing.T, mode string, order func(*pipeline, testImage) *countingProvider, opts ...Option) (testImage, *countingProvider) {
	t.Helper()
	ctx := testContext(t)
	src := memory.New()
	entries := threeLayerEntries()
	entries[1] = append(entries[1], largeEntries()...)
	img := writeImage(t, src, linuxAMD64, threeImageLayers(t, entries)...)
	p := newPipeline(src)
	prov := order(p, img)
	var u *Unpacker
	var sn *Directory
	dir := filepath.Join(t.TempDir(), "rootfs")
	if mode == "directory" {
		u = NewDirUnpacker(dir, prov, opts...)
	} else {
		var err error
		if sn, err = NewDirectory(t.TempDir()); err != nil {
			t.Fatal(err)
		}
		u = NewUnpacker(sn, prov, opts...)
	}
	if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 0, img.manifest); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	res, err := u.Results()
	if err != nil || len(res) != 1 || res[0].ChainID != img.chainIDs[2] {
		t.Fatalf("Results() = %+v, %v, want the image with chainID %s", res, err, img.chainIDs[2])
	}
	var got map[string]treeNode
	if mode == "directory" {
		got = readTree(t, dir)
	} else {
		got = viewTree(t, sn, img.chainIDs[2].String())
	}
	if diffs := diffTrees(got, wantTree(t, entries)); len(diffs) > 0 {
		t.Fatalf("unpacked image differs from the layers applied in order:\n%s", strings.Join(diffs, "\n"))
	}
	return img, prov
}

// TestDecompressAheadFailureFallsBack checks that a layer whose
// decompression ahead fails (here its DiffID lies) is applied from its
// blob, which reports the failure as Apply does, and that nothing of it or
// above it reaches the directory.
func TestDecompressAheadFailureFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name      string
		order     func(*pipeline, testImage) *countingProvider
		wantReads int
		why       string
	}{
		{"from the store", layer1WaitsForLayer2, 2, "ahead, then from its blob"},
		{"from the download", layer1WaitsForLayer2Download, 1, "from its blob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			src := memory.New()
			layers, _ := threeLayers(t)
			diffIDs := []digest.Digest{layers[0].diffID, digest.FromString("not this layer"), layers[2].diffID}
			img := writeImageDiffIDs(t, src, linuxAMD64, diffIDs, layers...)
			p := newPipeline(src)
			log := tc.order(p, img)
			dir := t.TempDir()
			u := NewDirUnpacker(dir, log)
			err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 0, img.manifest)
			var mismatch *DiffIDMismatchError
			if !errors.As(err, &mismatch) || mismatch.Expected != diffIDs[1] || mismatch.Actual != layers[1].diffID {
				t.Fatalf("Dispatch() error = %v, want layer 2's DiffID mismatch", err)
			}
			if n := log.count(img.layers[1].Digest); n != tc.wantReads {
				t.Errorf("layer 2 read %d times from the store, want %d: %s", n, tc.wantReads, tc.why)
			}
			if _, err := os.Lstat(filepath.Join(dir, "app")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("layer 3 reached the directory: %v", err)
			}
			if res, err := u.Results(); err == nil || len(res) != 0 {
				t.Errorf("Results() = %v, %v, want the mismatch", res, err)
			}
		})
	}
}

// layer1WaitsForLayer2Download makes layer 1's download wait until layer
// 2's download has ended, so that layer 2 is fetched before layer 1 is
// applied, and returns the provider to unpack from, which counts the
// blobs opened.
func layer1WaitsForLayer2Download(p *pipeline, img testImage) *countingProvider {
	fetched := make(chan struct{})
	p.after = func(ctx context.Context, desc ocispec.Descriptor) error {
		if desc.Digest == img.layers[1].Digest {
			close(fetched)
		}
		return nil
	}
	p.before = func(ctx context.Context, desc ocispec.Descriptor) error {
		if desc.Digest == img.layers[0].Digest {
			return waitFor(ctx, fetched, "layer 2's download")
		}
		return nil
	}
	return newCountingProvider(p.dst)
}

// TestDecompressAheadFromDownload checks that the layers above the one
// applied decompress from their downloads, not from the store: they are
// never read back, and the image unpacks as the layers applied in order.
func TestDecompressAheadFromDownload(t *testing.T) {
	for _, mode := range []string{"directory", "snapshotter"} {
		t.Run(mode, func(t *testing.T) {
			img, prov := unpackAhead(t, mode, layer1WaitsForLayer2Download)
			if n := prov.count(img.layers[0].Digest); n != 1 {
				t.Errorf("layer 1 read %d times from the store, want once", n)
			}
			for i := 1; i < 3; i++ {
				if n := prov.count(img.layers[i].Digest); n != 0 {
					t.Errorf("layer %d read %d times from the store, want none: decompressed from its download", i+1, n)
				}
			}
		})
	}
}

// TestFetchWindowBesideTee checks that a layer whose download feeds its
// decompression ahead does not hold the fetch window: with a window of one
// byte, layer 3's download starts while layer 2's, teed, is still under
// way, once layer 1 is applied.
func TestFetchWindowBesideTee(t *testing.T) {
	for _, mode := range []string{"directory", "snapshotter"} {
		t.Run(mode, func(t *testing.T) {
			img, prov := unpackAhead(t, mode, layer2DownloadBesideLayer3, WithFetchWindow(1))
			for i := 1; i < 3; i++ {
				if n := prov.count(img.layers[i].Digest); n != 0 {
					t.Errorf("layer %d read %d times from the store, want none: decompressed from its download", i+1, n)
				}
			}
		})
	}
}

// layer2DownloadBesideLayer3 makes layer 2's download wait until layer 3's
// has started, and layer 1's apply wait until layer 2's download has
// started (so that it is teed to its decompression by then), and returns
// the provider to unpack from, which counts the blobs opened. With a fetch
// window that holds one layer, only a window that leaves teed downloads
// out lets layer 3 start before layer 2 is fetched.
func layer2DownloadBesideLayer3(p *pipeline, img testImage) *countingProvider {
	started2, started3 := make(chan struct{}), make(chan struct{})
	p.before = func(ctx context.Context, desc ocispec.Descriptor) error {
		switch desc.Digest {
		case img.layers[1].Digest:
			close(started2)
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return waitFor(ctx, started3, "layer 3's download, beside layer 2's")
		case img.layers[2].Digest:
			close(started3)
		}
		return nil
	}
	prov := newCountingProvider(p.dst)
	prov.before = func(ctx context.Context, desc ocispec.Descriptor) {
		if desc.Digest == img.layers[0].Digest {
			waitFor(ctx, started2, "layer 2's download")
		}
	}
	return prov
}

// TestDecompressAheadStoreHasBlob checks that a layer whose blob the store
// already has, so that its download gives nothing, decompresses from the
// store.
func TestDecompressAheadStoreHasBlob(t *testing.T) {
	ctx := testContext(t)
	src := memory.New()
	layers, entries := threeLayers(t)
	img := writeImage(t, src, linuxAMD64, layers...)
	p := newPipeline(src)
	prov := layer1WaitsForLayer2Download(p, img)
	ra, err := src.ReaderAt(ctx, img.layers[1])
	if err != nil {
		t.Fatal(err)
	}
	err = content.WriteBlob(ctx, p.dst, "present", content.NewReader(ra), img.layers[1])
	ra.Close()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	u := NewDirUnpacker(dir, prov)
	if err := handlers.Dispatch(ctx, u.Wrap(p.handler()), 0, img.manifest); err != nil {
		t.Fatalf("Dispatch() error = %v", err)
	}
	res, err := u.Results()
	checkApplied(t, res, err, img)
	if n := prov.count(img.layers[1].Digest); n != 1 {
		t.Errorf("layer 2 read %d times from the store, want once", n)
	}
	if diffs := diffTrees(readTree(t, dir), wantTree(t, entries)); len(diffs) > 0 {
		t.Fatalf("unpacked directory differs from the layers applied in order:\n%s", strings.Join(diffs, "\n"))
	}
}

// layer1WaitsForLayer2 makes layer 1's download wait until layer 2's blob
// has been read from the store and closed, which only a decompression
// ahead does before layer 1 is applied, and returns the provider to unpack
// from, which counts the blobs opened. Downloads are not copied to the
// decompressions ahead, which read the store.
func layer1WaitsForLayer2(p *pipeline, img testImage) *countingProvider {
	p.noTee = true
	read := make(chan struct{})
	var once sync.Once
	log := &readLog{Provider: p.dst, onClose: func(d digest.Digest) {
		if d == img.layers[1].Digest {
			once.Do(func() { close(read) })
		}
	}}
	p.before = func(ctx context.Context, desc ocispec.Descriptor) error {
		if desc.Digest == img.layers[0].Digest {
			return waitFor(ctx, read, "layer 2's decompression ahead")
		}
		return nil
	}
	return newCountingProvider(log)
}

// largeEntries are entries of a layer whose content, decompressed ahead,
// gets files of its own (aheadFileMin bytes and more), beside smaller ones:
// with an owner, setuid, a time and an xattr, a hardlink to one, and one
// replaced within the layer.
func largeEntries() []tarEntry {
	body := func(seed, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(seed + i*i/7)
		}
		return string(b)
	}
	return []tarEntry{
		tarDir("usr/bin", 0o755),
		tarFile("usr/bin/tool", body(1, aheadFileMin+1000), 0o4755, tarOwner(1, 2),
			tarMtime(time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)), tarXattr("user.origin", "ahead")),
		tarHardlink("usr/bin/tool-link", "usr/bin/tool"),
		tarFile("etc/small", "small", 0o640),
		tarFile("data/exact", body(2, aheadFileMin), 0o600),
		tarFile("data/replaced", body(3, 2*aheadFileMin), 0o644),
		tarFile("data/replaced", body(4, aheadFileMin+512), 0o640),
		tarFile("data/under", body(5, aheadFileMin-1), 0o644),
	}
}

// largeEntriesOwnFiles are the entries of largeEntries, numbered from 1,
// whose content gets a file of its own.
var largeEntriesOwnFiles = []int64{2, 5, 6, 7}

// splitLayer decompresses the layer tarball "ahead" into unnamed files in
// dir, as an Unpacker does.
func splitLayer(t *testing.T, dir string, tarball []byte) *aheadLayer {
	t.Helper()
	f, err := unnamedFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := &aheadLayer{stream: f, files: map[int64]*os.File{}}
	t.Cleanup(l.close)
	if err := l.split(bytes.NewReader(tarball), dir, make([]byte, applyBufferSize)); err != nil {
		t.Fatalf("split() error = %v", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestAheadLayerSplit checks what a layer decompressed ahead holds: each
// large file's content in a file of its own, and the rest of the stream,
// trailing padding included, at its offsets, with holes where that
// content was.
func TestAheadLayerSplit(t *testing.T) {
	entries := largeEntries()
	tarball := append(tarLayer(t, entries...), make([]byte, 7000)...) // padding after the end marker
	dir := t.TempDir()
	l := splitLayer(t, dir, tarball)

	if got := slices.Sorted(maps.Keys(l.files)); !slices.Equal(got, largeEntriesOwnFiles) {
		t.Fatalf("entries with files of their own = %v, want %v", got, largeEntriesOwnFiles)
	}
	want := bytes.Clone(tarball)
	var held int64
	for _, n := range largeEntriesOwnFiles {
		body := entries[n-1].body
		got, err := io.ReadAll(io.NewSectionReader(l.files[n], 0, 1<<40))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != body {
			t.Errorf("entry %d: file holds %d bytes, want its %d bytes of content", n, len(got), len(body))
		}
		at := bytes.Index(tarball, []byte(body))
		clear(want[at : at+len(body)])
		held += int64(len(body))
	}
	stream, err := io.ReadAll(l.stream)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stream, want) {
		t.Errorf("stream (%d bytes) is not the layer (%d bytes) with zeros where the files' content was", len(stream), len(tarball))
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(l.stream.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if used, most := st.Blocks*512, int64(len(tarball))-held+64<<10; used > most {
		t.Errorf("stream uses %d bytes of disk, want at most %d: the files' content is in it", used, most)
	}
}

// TestApplyAheadLayer checks that a layer decompressed ahead applies as
// its stream does: its large files linked into place, or copied where
// their files cannot be linked.
func TestApplyAheadLayer(t *testing.T) {
	ctx := testContext(t)
	tarball := tarLayer(t, largeEntries()...)
	wantRoot := t.TempDir()
	if _, err := Apply(ctx, wantRoot, bytes.NewReader(tarball)); err != nil {
		t.Fatal(err)
	}
	want := readTreeStates(t, wantRoot)
	for _, mode := range []string{"linked", "copied"} {
		t.Run(mode, func(t *testing.T) {
			root := t.TempDir()
			l := splitLayer(t, root, tarball)
			inodes := map[int64]uint64{}
			for n, f := range l.files {
				if mode == "copied" {
					f = unlinkable(t, root, f)
					l.files[n] = f
				}
				var st unix.Stat_t
				if err := unix.Fstat(int(f.Fd()), &st); err != nil {
					t.Fatal(err)
				}
				inodes[n] = st.Ino
			}
			diffID := digest.FromBytes(tarball)
			res, err := Apply(ctx, root, l.stream, WithDiffID(diffID), withAhead(l))
			if err != nil {
				t.Fatalf("Apply() error = %v", err)
			}
			if res.DiffID != diffID || res.Size != int64(len(tarball)) {
				t.Errorf("Apply() = %s, %d bytes, want %s, %d bytes", res.DiffID, res.Size, diffID, len(tarball))
			}
			if len(l.files) != 0 {
				t.Errorf("%d files left untaken", len(l.files))
			}
			got := readTreeStates(t, root)
			for p, w := range want {
				g, ok := got[p]
				switch {
				case !ok:
					t.Errorf("%s: missing", p)
				case g.treeNode.String() != w.treeNode.String() || g.Nlink != w.Nlink ||
					(w.Type == "file" && !g.Mtime.Equal(w.Mtime)): // directories made for their content get the time of day
					t.Errorf("%s: %v mtime %v nlink %d, want %v mtime %v nlink %d", p, g.treeNode, g.Mtime, g.Nlink, w.treeNode, w.Mtime, w.Nlink)
				}
			}
			if len(got) != len(want) {
				t.Errorf("tree has %d entries, want %d", len(got), len(want))
			}
			// Entry 2 is usr/bin/tool: the very file decompressed ahead when
			// linked, another when copied.
			if linked := got["usr/bin/tool"].Ino == inodes[2]; linked != (mode == "linked") {
				t.Errorf("usr/bin/tool is the file decompressed ahead: %v, want %v", linked, mode == "linked")
			}
		})
	}
}

// unlinkable returns a copy of f in an unnamed file that no linkat(2) can
// name (O_TMPFILE with O_EXCL), and closes f.
func unlinkable(t *testing.T, dir string, f *os.File) *os.File {
	t.Helper()
	defer f.Close()
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c := os.NewFile(uintptr(fd), "unlinkable")
	if _, err := io.Copy(c, io.NewSectionReader(f, 0, 1<<40)); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// TestVerifiedStreamSkips checks that the stream of a layer decompressed
// ahead lets archive/tar seek over the content it does not read, the holes
// of files linked into place, rather than read it, and still counts it.
func TestVerifiedStreamSkips(t *testing.T) {
	big := strings.Repeat("x", 4<<20)
	tarball := tarLayer(t, tarFile("big", big, 0o644), tarFile("small", "small", 0o644))
	src := &countingReadSeeker{ReadSeeker: bytes.NewReader(tarball)}
	s := newVerifiedStream(src)
	defer s.Close()
	tr := tar.NewReader(s)
	for {
		if _, err := tr.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.drain(); err != nil {
		t.Fatal(err)
	}
	if src.read >= int64(len(big)) {
		t.Errorf("read %d bytes of a %d-byte layer, want the 4 MiB file skipped", src.read, len(tarball))
	}
	if s.size() != int64(len(tarball)) {
		t.Errorf("size() = %d, want %d", s.size(), len(tarball))
	}
}

// countingReadSeeker counts the bytes read through it.
type countingReadSeeker struct {
	io.ReadSeeker
	read int64
}

func (c *countingReadSeeker) Read(p []byte) (int, error) {
	n, err := c.ReadSeeker.Read(p)
	c.read += int64(n)
	return n, err
}

// TestAheadLayerSplitFewDescriptors checks that under a low open-file
// limit a layer decompressed ahead keeps fewer files of its own, and that
// the content of the others stays in the stream.
func TestAheadLayerSplitFewDescriptors(t *testing.T) {
	lowerOpenFileLimit(t, 512)
	most := aheadFilesMax()
	if most != 32 {
		t.Fatalf("aheadFilesMax() = %d with a limit of 512, want 32", most)
	}
	var entries []tarEntry
	for i := range most + 2 {
		body := fmt.Sprintf("<%02d>", i) + strings.Repeat("x", aheadFileMin)
		entries = append(entries, tarFile(fmt.Sprintf("f%02d", i), body, 0o644))
	}
	tarball := tarLayer(t, entries...)
	l := splitLayer(t, t.TempDir(), tarball)
	if len(l.files) != most {
		t.Fatalf("%d files of their own, want %d", len(l.files), most)
	}
	stream, err := io.ReadAll(l.stream)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		n := int64(i + 1)
		inStream := bytes.Contains(stream, []byte(e.body))
		if _, own := l.files[n]; own == inStream {
			t.Errorf("entry %d: a file of its own %v, its content in the stream %v; want one or the other", n, own, inStream)
		}
	}
}
