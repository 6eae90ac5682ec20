package local_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
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

// writeTestImage writes a one-layer image into s, whose file says hello
// to who, and returns the manifest's descriptor and its blobs by digest.
func writeTestImage(t *testing.T, s content.Ingester, who string) (ocispec.Descriptor, map[digest.Digest][]byte) {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	body := []byte("hello from " + who + "\n")
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
	manifest, blobs := writeTestImage(t, s, "pullkit")
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

	// skopeo adding an image and its name to our layout keeps ours, and we
	// read its.
	other, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherManifest, otherBlobs := writeTestImage(t, other, "another image")
	if _, err := other.Images().Create(t.Context(), content.Image{Name: "other:1", Target: otherManifest}); err != nil {
		t.Fatal(err)
	}
	runSkopeo(t, bin, "--insecure-policy", "copy", "oci:"+other.Root()+":other:1", "oci:"+dir+":example.com/copied:2")
	imgs, err := s.Images().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || imgs[0].Name != name || imgs[1].Name != "example.com/copied:2" {
		t.Fatalf("List() after skopeo copy = %+v, want %s and example.com/copied:2", imgs, name)
	}
	// skopeo writes the manifest its own way, and gzips the layer; the
	// config and the layer's content are the other image's.
	mb, err := content.ReadBlob(t.Context(), s, imgs[1].Target, 1<<20)
	if err != nil {
		t.Fatalf("the manifest skopeo wrote: %v", err)
	}
	var m, om ocispec.Manifest
	if err := json.Unmarshal(mb, &m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("the manifest skopeo wrote: %v, %d layers; want one\n%s", err, len(m.Layers), mb)
	}
	if err := json.Unmarshal(otherBlobs[otherManifest.Digest], &om); err != nil {
		t.Fatal(err)
	}
	if got, err := content.ReadBlob(t.Context(), s, m.Config, m.Config.Size); err != nil || !bytes.Equal(got, otherBlobs[om.Config.Digest]) {
		t.Errorf("the config skopeo copied in: %s, %v; want the other image's", got, err)
	}
	layer, err := content.ReadBlob(t.Context(), s, m.Layers[0], m.Layers[0].Size)
	if err != nil {
		t.Fatalf("the layer skopeo copied in: %v", err)
	}
	if m.Layers[0].MediaType == ocispec.MediaTypeImageLayerGzip {
		zr, err := gzip.NewReader(bytes.NewReader(layer))
		if err != nil {
			t.Fatalf("the layer skopeo copied in: %v", err)
		}
		if layer, err = io.ReadAll(zr); err != nil {
			t.Fatalf("the layer skopeo copied in: %v", err)
		}
	}
	if !bytes.Equal(layer, otherBlobs[om.Layers[0].Digest]) {
		t.Errorf("the layer skopeo copied in (%s) holds %d bytes, want the other image's %d", m.Layers[0].MediaType, len(layer), len(otherBlobs[om.Layers[0].Digest]))
	}
	if imgs[0].Labels["a"] != "b" || imgs[0].CreatedAt.IsZero() {
		t.Errorf("our record after skopeo rewrote index.json = %+v, want its labels and times", imgs[0])
	}
	readIndex(t, dir)
}
