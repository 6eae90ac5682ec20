package importer

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
)

// skopeo returns a function that runs skopeo with args and returns its
// output. Without skopeo on PATH the test is skipped, or fails when the
// CI environment variable is set (CI installs it).
func skopeo(t *testing.T) func(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("skopeo is not on PATH, and CI is set: %v", err)
		}
		t.Skip("skopeo is not on PATH")
	}
	return func(t *testing.T, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
}

// writeLayout writes an OCI layout's files into a new directory.
func writeLayout(t *testing.T, files []file) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// importFile imports the archive file at p, read as a plain file.
func importFile(t *testing.T, store *memory.Store, p string) ocispec.Descriptor {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imgs, err := Import(context.Background(), store, store.Images(), f)
	if err != nil {
		t.Fatalf("Import(%s) error = %v", filepath.Base(p), err)
	}
	if len(imgs) != 1 || imgs[0].Name != "example.com/test/app:1.0" {
		t.Fatalf("Import(%s) names = %q, want example.com/test/app:1.0", filepath.Base(p), names(imgs))
	}
	checkImage(t, store, imgs[0].Target)
	return imgs[0].Target
}

// TestSkopeoArchives imports archives that skopeo writes from an OCI
// layout built here, and compares what was imported with what skopeo
// reports about the same archives.
func TestSkopeoArchives(t *testing.T) {
	run := skopeo(t)
	// Docker images cannot have zstd layers: skopeo refuses to convert them.
	o := newLayout()
	m := o.image("linux/amd64", newLayer(t, gzipped, "etc/hostname"), newLayer(t, plain, "usr/bin/app"), newLayer(t, gzipped, "var/data"))
	src := "oci:" + writeLayout(t, o.files(withName(m, ocispec.AnnotationRefName, "src"))) + ":src"
	oz := newLayout()
	mz := oz.image("linux/arm64", newLayer(t, zstded, "etc/hostname"), newLayer(t, plain, "usr/bin/app"), newLayer(t, gzipped, "var/data"))
	srcZstd := "oci:" + writeLayout(t, oz.files(withName(mz, ocispec.AnnotationRefName, "src"))) + ":src"
	tmp := t.TempDir()

	t.Run("docker-archive", func(t *testing.T) {
		archive := filepath.Join(tmp, "docker.tar")
		run(t, "copy", "--insecure-policy", src, "docker-archive:"+archive+":example.com/test/app:1.0")
		store := memory.New()
		target := importFile(t, store, archive)

		// docker-archive has no manifest of its own: skopeo makes one up
		// from manifest.json, as the importer does. Their config and
		// layers must agree.
		var theirs ocispec.Manifest
		if err := json.Unmarshal(run(t, "inspect", "--raw", "docker-archive:"+archive), &theirs); err != nil {
			t.Fatal(err)
		}
		ours, err := handlers.Manifest(context.Background(), store, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ours.Config.Digest != theirs.Config.Digest || ours.Config.Size != theirs.Config.Size {
			t.Errorf("config %s (%d bytes), skopeo says %s (%d bytes)", ours.Config.Digest, ours.Config.Size, theirs.Config.Digest, theirs.Config.Size)
		}
		if len(ours.Layers) != len(theirs.Layers) {
			t.Fatalf("%d layers, skopeo says %d", len(ours.Layers), len(theirs.Layers))
		}
		for i := range ours.Layers {
			if ours.Layers[i].Digest != theirs.Layers[i].Digest || ours.Layers[i].Size != theirs.Layers[i].Size {
				t.Errorf("layer %d: %s (%d bytes), skopeo says %s (%d bytes)", i,
					ours.Layers[i].Digest, ours.Layers[i].Size, theirs.Layers[i].Digest, theirs.Layers[i].Size)
			}
		}
	})

	t.Run("oci-archive", func(t *testing.T) {
		archive := filepath.Join(tmp, "oci.tar")
		run(t, "copy", "--insecure-policy", srcZstd, "oci-archive:"+archive+":example.com/test/app:1.0")
		store := memory.New()
		target := importFile(t, store, archive)
		raw := run(t, "inspect", "--raw", "oci-archive:"+archive)
		if want := digest.FromBytes(raw); target.Digest != want {
			t.Errorf("imported manifest %s, skopeo says %s", target.Digest, want)
		}
	})
}
