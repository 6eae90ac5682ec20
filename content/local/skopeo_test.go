package local_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/local"
)

// skopeo returns the path of the skopeo binary. Without one it skips the
// test, or fails it when CI is set (CI installs skopeo).
func skopeo(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("skopeo is required in CI: %v", err)
		}
		t.Skipf("skopeo not found: %v", err)
	}
	return path
}

// runSkopeo runs skopeo with args and returns its stdout.
func runSkopeo(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	// Keep skopeo away from the user's configuration.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_RUNTIME_DIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %q: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// writeTestImage writes a one-layer image into s and returns the
// manifest's descriptor and its blobs by digest.
func writeTestImage(t *testing.T, s content.Ingester) (ocispec.Descriptor, map[digest.Digest][]byte) {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	body := []byte("hello from pullkit\n")
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	blobs := map[digest.Digest][]byte{}
	put := func(mediaType string, b []byte) ocispec.Descriptor {
		desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
		if err := content.WriteBlob(t.Context(), s, desc.Digest.String(), bytes.NewReader(b), desc); err != nil {
			t.Fatalf("WriteBlob(%s) error = %v", mediaType, err)
		}
		blobs[desc.Digest] = b
		return desc
	}
	layerDesc := put(ocispec.MediaTypeImageLayer, layer.Bytes())
	config, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
	})
	if err != nil {
		t.Fatal(err)
	}
	configDesc := put(ocispec.MediaTypeImageConfig, config)
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		t.Fatal(err)
	}
	return put(ocispec.MediaTypeImageManifest, manifest), blobs
}

func TestSkopeoReadsTheLayout(t *testing.T) {
	bin := skopeo(t)
	dir := t.TempDir()
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	manifest, blobs := writeTestImage(t, s)
	const name = "docker.io/library/demo:1.0"
	if _, err := s.Images().Create(t.Context(), content.Image{Name: name, Target: manifest, Labels: map[string]string{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	// oci:DIR:NAME splits at the first colon, so DIR must have none; the
	// name may have any number.
	ref := "oci:" + dir + ":" + name

	var inspect struct {
		Digest       digest.Digest
		Layers       []digest.Digest
		Architecture string
		Os           string
	}
	out := runSkopeo(t, bin, "inspect", ref)
	if err := json.Unmarshal(out, &inspect); err != nil {
		t.Fatalf("skopeo inspect output: %v\n%s", err, out)
	}
	if inspect.Digest != manifest.Digest || len(inspect.Layers) != 1 || inspect.Architecture != "amd64" || inspect.Os != "linux" {
		t.Errorf("skopeo inspect = %+v, want digest %s, one layer, linux/amd64", inspect, manifest.Digest)
	}

	copied := t.TempDir()
	runSkopeo(t, bin, "--insecure-policy", "copy", ref, "dir:"+copied)
	got, err := os.ReadFile(filepath.Join(copied, "manifest.json"))
	if err != nil || !bytes.Equal(got, blobs[manifest.Digest]) {
		t.Fatalf("dir:OUT/manifest.json = %s (%v), want the manifest unchanged", got, err)
	}
	for dgst, want := range blobs {
		if dgst == manifest.Digest {
			continue
		}
		if got, err := os.ReadFile(filepath.Join(copied, dgst.Encoded())); err != nil || !bytes.Equal(got, want) {
			t.Errorf("dir:OUT/%s: %d bytes (%v), want the %d of the blob", dgst.Encoded(), len(got), err, len(want))
		}
	}

	// skopeo adding a name to our layout keeps ours, and we read its.
	runSkopeo(t, bin, "--insecure-policy", "copy", ref, "oci:"+dir+":example.com/copied:2")
	imgs, err := s.Images().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || imgs[0].Name != name || imgs[1].Name != "example.com/copied:2" || imgs[1].Target.Digest != manifest.Digest {
		t.Fatalf("List() after skopeo copy = %+v, want %s and example.com/copied:2 -> %s", imgs, name, manifest.Digest)
	}
	if imgs[0].Labels["a"] != "b" || imgs[0].CreatedAt.IsZero() {
		t.Errorf("our record after skopeo rewrote index.json = %+v, want its labels and times", imgs[0])
	}
	readIndex(t, dir)
}
