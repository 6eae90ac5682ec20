package importer

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content/local"
)

// Sizes of the archive TestImportMemory streams: four layers of 512 MiB.
const (
	bigLayers   = 4
	bigFileSize = 512 << 20
	// bigRSSLimit is the peak resident memory the import may reach.
	bigRSSLimit = 64 << 20
)

// TestImportMemory streams a 2 GiB docker save archive, generated on the
// fly into an io.Pipe (never on disk), into a content/local store, and
// checks that the importing process's peak resident memory (VmHWM) stays
// under 64 MiB. It runs only with PULLKIT_BIG=1, and not under the race
// detector:
//
//	PULLKIT_BIG=1 go test -run TestImportMemory -v ./importer
//
// The import runs in a child process (this test binary, re-executed), so
// that the memory of the parent test process does not count.
func TestImportMemory(t *testing.T) {
	if os.Getenv("PULLKIT_BIG") != "1" {
		t.Skip("set PULLKIT_BIG=1 to stream a 2 GiB archive and measure peak memory")
	}
	if raceEnabled {
		t.Skip("the race detector inflates memory use")
	}
	if os.Getenv("PULLKIT_BIG_CHILD") == "1" {
		bigChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestImportMemory$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "PULLKIT_BIG_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`PULLKIT_BIG_RESULT peak_rss_kib=(\d+) bytes=(\d+) seconds=([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("child printed no result:\n%s", out)
	}
	kib, _ := strconv.ParseInt(string(m[1]), 10, 64)
	n, _ := strconv.ParseInt(string(m[2]), 10, 64)
	secs, _ := strconv.ParseFloat(string(m[3]), 64)
	t.Logf("imported %.2f GiB in %.1fs (%.0f MiB/s); peak RSS %.1f MiB", float64(n)/(1<<30), secs, float64(n)/(1<<20)/secs, float64(kib)/1024)
	if kib*1024 > bigRSSLimit {
		t.Errorf("peak RSS %.1f MiB, want under %d MiB", float64(kib)/1024, bigRSSLimit>>20)
	}
}

// bigChild does the import and prints its figures.
func bigChild(t *testing.T) {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	counted := &countingReader{r: pr}
	go func() { pw.CloseWithError(writeBigArchive(pw)) }()
	start := time.Now()
	imgs, err := Import(context.Background(), store, store.Images(), counted)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Import() error = %v", err)
	}
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/big:1" {
		t.Fatalf("Import() = %v", names(imgs))
	}
	kib, err := peakRSS()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("PULLKIT_BIG_RESULT peak_rss_kib=%d bytes=%d seconds=%.1f\n", kib, counted.n, elapsed.Seconds())
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

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeBigArchive writes a docker save archive of bigLayers layers, each a
// tar of one file of bigFileSize pseudo-random bytes, then the config and
// manifest.json, as docker save orders them.
func writeBigArchive(w io.Writer) error {
	tw := tar.NewWriter(w)
	chunk := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(chunk)
	var (
		counter uint64
		diffIDs []digest.Digest
		paths   []string
	)
	// A layer tar: one header, the data padded to 512 bytes, two zero blocks.
	layerSize := int64(512 + (bigFileSize+511)/512*512 + 1024)
	for i := range bigLayers {
		p := fmt.Sprintf("layer%d/layer.tar", i)
		if err := tw.WriteHeader(&tar.Header{Name: p, Size: layerSize, Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		h := sha256.New()
		cw := &countingWriter{w: io.MultiWriter(tw, h)}
		lw := tar.NewWriter(cw)
		if err := lw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data%d.bin", i), Size: bigFileSize, Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		for left := int64(bigFileSize); left > 0; {
			counter++
			binary.LittleEndian.PutUint64(chunk, counter)
			n := min(left, int64(len(chunk)))
			if _, err := lw.Write(chunk[:n]); err != nil {
				return err
			}
			left -= n
		}
		if err := lw.Close(); err != nil {
			return err
		}
		if cw.n != layerSize {
			return fmt.Errorf("layer %d is %d bytes, want %d", i, cw.n, layerSize)
		}
		diffIDs = append(diffIDs, digest.NewDigest(digest.SHA256, h))
		paths = append(paths, p)
	}
	config, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	if err != nil {
		return err
	}
	cfgName := digest.FromBytes(config).Encoded() + ".json"
	manifest, err := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{"big:1"}, "Layers": paths}})
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		body []byte
	}{{cfgName, config}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Size: int64(len(f.body)), Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	return tw.Close()
}

// peakRSS returns this process's peak resident set size (VmHWM) in KiB.
func peakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
