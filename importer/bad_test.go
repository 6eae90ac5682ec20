package importer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/internal/compresstest"
)

func TestImportBadArchives(t *testing.T) {
	l := newLayer(t, plain, "f")
	gz := newLayer(t, gzipped, "g")
	img := newSaved([]string{"bad:1"}, "linux/amd64", l)
	cfgName := img.configDigest().Encoded() + ".json"
	good := dockerSave(img)
	// withManifest replaces manifest.json (good's last file).
	withManifest := func(entries ...map[string]any) []file {
		return append(append([]file{}, good[:len(good)-1]...), jsonFile("manifest.json", entries))
	}
	entry := func(config string, layers ...string) map[string]any {
		return map[string]any{"Config": config, "RepoTags": []string{"bad:1"}, "Layers": layers}
	}
	layerPath := l.digest().Encoded() + "/layer.tar"

	wrongBlob := []byte("not what the name says")
	wrongDigest := digest.FromString("something else")

	badDiff := newSaved([]string{"bad:1"}, "linux/amd64", l)
	badDiff.config = newConfig("linux/amd64", newLayer(t, plain, "other"))

	corruptGz := gz
	corruptGz.blob = append(append([]byte{}, gz.blob[:len(gz.blob)-12]...), bytes.Repeat([]byte{0xff}, 12)...)

	oci := newLayout()
	m := oci.image("linux/amd64", l)
	ociMissingLayer := newLayout()
	cfg := ociMissingLayer.blob(ocispec.MediaTypeImageConfig, newConfig("linux/amd64", gz))
	mm := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg,
		Layers: []ocispec.Descriptor{descOf(ocispec.MediaTypeImageLayerGzip, gz.blob)}}
	mm.SchemaVersion = 2
	missingLayerManifest := ociMissingLayer.blob(ocispec.MediaTypeImageManifest, mustJSON(mm))

	tooManyLayers := make([]string, handlers.MaxLayers+1)
	for i := range tooManyLayers {
		tooManyLayers[i] = layerPath
	}

	tests := []struct {
		name    string
		files   []file
		raw     []byte // used instead of files when set
		opts    []Option
		wantErr error
	}{
		{"entry with ..", append([]file{reg("../evil", []byte("x"))}, good...), nil, nil, ErrUnsafePath},
		{"entry with inner ..", append([]file{reg("a/../../evil", []byte("x"))}, good...), nil, nil, ErrUnsafePath},
		{"absolute entry", append([]file{reg("/etc/evil", []byte("x"))}, good...), nil, nil, ErrUnsafePath},
		{"symlink leaving the archive", append([]file{symlink("x/layer.tar", "../../etc/passwd")}, good...), nil, nil, ErrUnsafePath},
		{"absolute symlink", append([]file{symlink("x/layer.tar", "/etc/passwd")}, good...), nil, nil, ErrUnsafePath},
		{"hard link leaving the archive", append([]file{hardlink("x/layer.tar", "../etc/passwd")}, good...), nil, nil, ErrUnsafePath},
		{"manifest.json layer with ..", withManifest(entry(cfgName, "../"+layerPath)), nil, nil, ErrUnsafePath},
		{"manifest.json absolute config", withManifest(entry("/"+cfgName, layerPath)), nil, nil, ErrUnsafePath},
		{"missing layer", withManifest(entry(cfgName, "nope/layer.tar")), nil, nil, ErrMissing},
		{"missing config", withManifest(entry("nope.json", layerPath)), nil, nil, ErrMissing},
		{"symlink to nothing", append(withManifest(entry(cfgName, "x/layer.tar")), symlink("x/layer.tar", "../y/layer.tar")), nil, nil, ErrMissing},
		{"symlink loop", append(withManifest(entry(cfgName, "x/layer.tar")), symlink("x/layer.tar", "../y/layer.tar"), symlink("y/layer.tar", "../x/layer.tar")), nil, nil, ErrInvalidArchive},
		{"oversized config", append([]file{reg("big.json", make([]byte, MaxJSONSize+1))}, good...), nil, nil, content.ErrTooLarge},
		{"oversized manifest.json", append(good[:len(good)-1:len(good)-1], reg("manifest.json", make([]byte, MaxJSONSize+1))), nil, nil, content.ErrTooLarge},
		{"too many layers", withManifest(entry(cfgName, tooManyLayers...)), nil, nil, content.ErrTooLarge},
		{"duplicate tag", dockerSave(img, newSaved([]string{"docker.io/library/bad:1"}, "linux/amd64", gz)), nil, nil, ErrDuplicateName},
		{"invalid manifest.json", append(good[:len(good)-1:len(good)-1], reg("manifest.json", []byte(`[{"Config": 1`))), nil, nil, ErrInvalidArchive},
		{"invalid config", append(withManifest(entry("bad.json")), reg("bad.json", []byte("{"))), nil, nil, ErrInvalidArchive},
		{"invalid RepoTag", withManifest(map[string]any{"Config": cfgName, "RepoTags": []string{"UPPER:1"}, "Layers": []string{layerPath}}), nil, nil, errdefs.ErrInvalidArgument},
		{"empty manifest.json", withManifest(), nil, nil, ErrInvalidArchive},
		{"entry twice", append(good, reg("manifest.json", []byte("[]"))), nil, nil, ErrInvalidArchive},
		{"blob digest mismatch", append([]file{reg(blobPath(wrongDigest), wrongBlob)}, good...), nil, nil, content.ErrDigestMismatch},
		{"diffID mismatch", dockerSave(badDiff), nil, nil, content.ErrDigestMismatch},
		{"corrupt gzip layer", dockerSave(newSaved([]string{"bad:1"}, "linux/amd64", corruptGz)), nil, nil, ErrInvalidArchive},
		{"no manifest", []file{reg("hello.txt", []byte("hi"))}, nil, nil, ErrInvalidArchive},
		{"pre-1.10 docker save", []file{jsonFile("repositories", map[string]any{"a": map[string]string{"1": "x"}})}, nil, nil, ErrUnsupported},
		{"oci-layout version", append([]file{jsonFile("oci-layout", map[string]string{"imageLayoutVersion": "9.9.9"})}, oci.files(m)[1:]...), nil, nil, ErrUnsupported},
		{"OCI without index.json", oci.files(m)[:2], nil, nil, ErrMissing},
		{"OCI index.json names a missing manifest", oci.files(descOf(ocispec.MediaTypeImageManifest, []byte("{}"))), nil, nil, ErrMissing},
		{"OCI manifest names a missing layer", ociMissingLayer.files(missingLayerManifest), nil, nil, ErrMissing},
		{"OCI invalid index.json", append(oci.files(m)[:2], reg("index.json", []byte("{]"))), nil, nil, ErrInvalidArchive},
		{"OCI duplicate ref names", oci.files(withName(m, annotationImageName, "a:1"), withName(oci.indexOf(m), annotationImageName, "a:1")), nil, nil, ErrDuplicateName},
		{"no image for the platform", good, nil, []Option{WithPlatforms(platforms.Only(platforms.MustParse("linux/riscv64")))}, errdefs.ErrNotFound},
		{"not a tar", nil, bytes.Repeat([]byte("garbage!"), 200), nil, ErrInvalidArchive},
		{"empty input", nil, []byte{}, nil, ErrInvalidArchive},
		{"truncated archive", nil, tarball(t, good...)[:1000], nil, ErrInvalidArchive},
		{"truncated gzip archive", nil, func() []byte { b := compresstest.Gzip(tarball(t, good...)); return b[:len(b)-20] }(), nil, ErrInvalidArchive},
		{"xz archive", nil, append([]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, make([]byte, 100)...), nil, ErrUnsupported},
		{"trailing garbage", nil, append(tarball(t, good...), bytes.Repeat([]byte{1}, maxTrailing+1)...), nil, ErrInvalidArchive},
		{"bad name prefix", good, nil, []Option{WithNamePrefix("app:1")}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archive := tt.raw
			if archive == nil {
				archive = tarball(t, tt.files...)
			}
			store := memory.New()
			_, err := importPiped(t, store, store.Images(), archive, tt.opts...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Import() error = %v, want %v", err, tt.wantErr)
			}
			if !classified(err) {
				t.Errorf("Import() error = %v is not classified", err)
			}
			t.Logf("Import() error: %v", err)
			checkClean(t, store)
			if tt.name == "blob digest mismatch" {
				if _, err := store.Info(context.Background(), wrongDigest); !errdefs.IsNotFound(err) {
					t.Errorf("blob under the wrong digest: Info() error = %v, want NotFound", err)
				}
			}
		})
	}
}

// TestImportEntryLimit lowers the entry limit, as a test hook, rather
// than build an archive of MaxEntries entries.
func TestImportEntryLimit(t *testing.T) {
	defer func(n int) { entryLimit = n }(entryLimit)
	entryLimit = 10
	var fs []file
	for i := range 11 {
		fs = append(fs, dir(fmt.Sprintf("d%d/", i)))
	}
	store := memory.New()
	_, err := importPiped(t, store, store.Images(), tarball(t, fs...))
	var le *content.LimitError
	if !errors.As(err, &le) || le.What != "tar entries" || !errdefs.IsResourceExhausted(err) {
		t.Fatalf("Import() error = %v, want a tar entries *content.LimitError", err)
	}
	checkClean(t, store)
}

// TestImportMetadataLimit checks the cap on JSON held in memory, lowered
// to 2 MiB as a test hook.
func TestImportMetadataLimit(t *testing.T) {
	defer func(n int64) { metadataLimit = n }(metadataLimit)
	metadataLimit = 2 << 20
	var fs []file
	big := make([]byte, 1<<20)
	for i := range 3 {
		fs = append(fs, reg(fmt.Sprintf("%d.json", i), big))
	}
	store := memory.New()
	_, err := importPiped(t, store, store.Images(), tarball(t, fs...))
	var le *content.LimitError
	if !errors.As(err, &le) || !strings.Contains(le.What, "memory") {
		t.Fatalf("Import() error = %v, want a *content.LimitError on memory", err)
	}
}

// failingImages fails Create for one name.
type failingImages struct {
	*memory.Images
	fail string
}

func (f failingImages) Create(ctx context.Context, img content.Image) (content.Image, error) {
	if img.Name == f.fail {
		return content.Image{}, fmt.Errorf("create %q: %w", img.Name, errdefs.ErrUnavailable)
	}
	return f.Images.Create(ctx, img)
}

// TestImportRollback fails the last of three names: the first, created,
// is deleted; the second, which existed, points back at its old target.
func TestImportRollback(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	old := content.Image{Name: "docker.io/library/r:2", Target: descOf(ocispec.MediaTypeImageManifest, []byte("old")), Labels: map[string]string{"keep": "me"}}
	if _, err := store.Images().Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	archive := tarball(t, dockerSave(newSaved([]string{"r:1", "r:2", "r:3"}, "linux/amd64", newLayer(t, plain, "r")))...)
	images := failingImages{Images: store.Images(), fail: "docker.io/library/r:3"}
	_, err := importPiped(t, store, images, archive)
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("Import() error = %v, want the Create failure", err)
	}
	listed, err := store.Images().List(ctx)
	if err != nil || len(listed) != 1 {
		t.Fatalf("names after rollback = %v (err %v), want only %s", names(listed), err, old.Name)
	}
	if got := listed[0]; got.Target.Digest != old.Target.Digest || got.Labels["keep"] != "me" {
		t.Errorf("restored record = %+v, want target %s and its labels", got, old.Target.Digest)
	}
}

// TestImportSourceError checks that a failing reader's error comes back
// as it is, not classified as a bad archive, and that the import stops.
func TestImportSourceError(t *testing.T) {
	boom := errors.New("disk on fire")
	archive := tarball(t, dockerSave(newSaved([]string{"s:1"}, "linux/amd64", newLayer(t, plain, "s")))...)
	store := memory.New()
	r := io.MultiReader(bytes.NewReader(archive[:3000]), &errReader{boom})
	_, err := Import(context.Background(), store, store.Images(), r)
	if !errors.Is(err, boom) || errors.Is(err, ErrInvalidArchive) {
		t.Fatalf("Import() error = %v, want %v unclassified", err, boom)
	}
	checkClean(t, store)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Import(ctx, store, store.Images(), bytes.NewReader(archive)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Import() with a canceled context: error = %v", err)
	}
	checkClean(t, store)
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// paxSparse returns the tar entries (no end marker) of a GNU sparse file,
// format 1.0, named name, that is size bytes of holes: a few hundred bytes
// of archive for any size.
func paxSparse(t *testing.T, name string, size int64) []byte {
	t.Helper()
	record := func(k, v string) string {
		n := len(k) + len(v) + 3
		for len(fmt.Sprint(n+len(fmt.Sprint(n)))) != len(fmt.Sprint(n)) {
			n++
		}
		n += len(fmt.Sprint(n))
		return fmt.Sprintf("%d %s=%s\n", n, k, v)
	}
	records := record("GNU.sparse.major", "1") + record("GNU.sparse.minor", "0") +
		record("GNU.sparse.name", name) + record("GNU.sparse.realsize", fmt.Sprint(size))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// The PAX header, written as a regular file and retyped below.
	tw.WriteHeader(&tar.Header{Name: "PaxHeaders/" + name, Typeflag: tar.TypeReg, Size: int64(len(records)), Format: tar.FormatUSTAR})
	tw.Write([]byte(records))
	// The file's data: its sparse map, "no data blocks".
	tw.WriteHeader(&tar.Header{Name: "GNUSparseFile.0/" + name, Typeflag: tar.TypeReg, Size: 512, Format: tar.FormatUSTAR})
	tw.Write(append([]byte("0\n"), make([]byte, 510)...))
	tw.Flush()
	b := buf.Bytes()
	b[156] = tar.TypeXHeader
	copy(b[148:156], "        ")
	var sum int
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func TestImportSparseEntry(t *testing.T) {
	sparse := paxSparse(t, "huge/layer.tar", 1<<40)
	// The reader does see a terabyte file: the archive is well-formed.
	tr := tar.NewReader(bytes.NewReader(append(sparse, make([]byte, 1024)...)))
	if hdr, err := tr.Next(); err != nil || hdr.Size != 1<<40 || hdr.Name != "huge/layer.tar" {
		t.Fatalf("crafted sparse entry reads as %+v, %v", hdr, err)
	}
	img := newSaved([]string{"s:1"}, "linux/amd64", newLayer(t, plain, "s"))
	archive := append(sparse, tarball(t, dockerSave(img)...)...)
	store := memory.New()
	_, err := importPiped(t, store, store.Images(), archive)
	if !errors.Is(err, ErrInvalidArchive) {
		t.Fatalf("Import() error = %v, want ErrInvalidArchive", err)
	}
	checkClean(t, store)
}
