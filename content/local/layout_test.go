package local_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/local"
)

// putBlob writes data into s and returns its descriptor.
func putBlob(t *testing.T, s content.Ingester, data string, opts ...content.CommitOpt) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString(data), Size: int64(len(data))}
	if err := content.WriteBlob(t.Context(), s, "put-"+data, strings.NewReader(data), desc, opts...); err != nil {
		t.Fatalf("WriteBlob(%q) error = %v", data, err)
	}
	return desc
}

// readIndex decodes dir/index.json and checks the fields every OCI tool
// needs.
func readIndex(t *testing.T, dir string) ocispec.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("index.json is not valid JSON: %v\n%s", err, b)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("index.json schemaVersion %d, mediaType %q; want 2, %q", idx.SchemaVersion, idx.MediaType, ocispec.MediaTypeImageIndex)
	}
	return idx
}

func TestNewCreatesLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "layout")
	if _, err := local.New(dir); err != nil {
		t.Fatalf("New() error = %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil {
		t.Fatal(err)
	}
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(b, &layout); err != nil || layout.Version != "1.0.0" {
		t.Errorf("oci-layout = %s (%v), want imageLayoutVersion 1.0.0", b, err)
	}
	if idx := readIndex(t, dir); len(idx.Manifests) != 0 {
		t.Errorf("index.json of a new layout has %d manifests, want 0", len(idx.Manifests))
	}
	if fi, err := os.Stat(filepath.Join(dir, "blobs")); err != nil || !fi.IsDir() {
		t.Errorf("blobs/ = %v, %v; want a directory", fi, err)
	}
	// Opening again changes nothing.
	before, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if _, err := local.New(dir); err != nil {
		t.Fatalf("second New() error = %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "index.json")); !bytes.Equal(before, after) {
		t.Errorf("second New() rewrote index.json:\n%s\nto\n%s", before, after)
	}
}

func TestNewChecksExistingLayout(t *testing.T) {
	tests := []struct {
		name, layout, index string
		wantErr             error
	}{
		{"version 1.0.0", `{"imageLayoutVersion":"1.0.0"}`, "", nil},
		{"a later 1.x", `{"imageLayoutVersion":"1.1.0"}`, "", nil},
		{"version 2", `{"imageLayoutVersion":"2.0.0"}`, "", errdefs.ErrFailedPrecondition},
		{"no version", `{}`, "", errdefs.ErrFailedPrecondition},
		{"not JSON", `imageLayoutVersion: 1.0.0`, "", errdefs.ErrFailedPrecondition},
		{"index.json not JSON", `{"imageLayoutVersion":"1.0.0"}`, `{"manifests":`, errdefs.ErrDataLoss},
		{"index.json manifests not a list", `{"imageLayoutVersion":"1.0.0"}`, `{"manifests":{}}`, errdefs.ErrDataLoss},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(tt.layout), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.index != "" {
				if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(tt.index), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := local.New(dir)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("New() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestBlobsAreReadOnlyFilesNamedByDigest(t *testing.T) {
	dir := t.TempDir()
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	desc := putBlob(t, s, "a blob", content.WithLabels(map[string]string{"k": "v"}))
	path := filepath.Join(dir, "blobs", "sha256", desc.Digest.Encoded())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("blob file: %v", err)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Errorf("blob mode = %v, want 0444", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != "a blob" {
		t.Errorf("blob file holds %q, want %q", b, "a blob")
	}
	b, err := os.ReadFile(filepath.Join(dir, "labels", "sha256", desc.Digest.Encoded()))
	if err != nil || string(b) != `{"k":"v"}` {
		t.Errorf("labels file = %s, %v; want {\"k\":\"v\"}", b, err)
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "ingest")); err != nil || len(entries) != 0 {
		t.Errorf("ingest/ after commit = %v, %v; want empty", entries, err)
	}
	if err := s.Delete(t.Context(), desc.Digest); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, filepath.Join(dir, "labels", "sha256", desc.Digest.Encoded())} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Delete: %v, want it gone", p, err)
		}
	}
}

func TestWalkSkipsFilesThatAreNotBlobs(t *testing.T) {
	dir := t.TempDir()
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	desc := putBlob(t, s, "real")
	for _, p := range []string{"blobs/sha256/not-a-digest", "blobs/README", "blobs/md5/0123"} {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []digest.Digest
	if err := s.Walk(t.Context(), func(info content.Info) error { got = append(got, info.Digest); return nil }); err != nil {
		t.Fatalf("Walk() error = %v", err)
	}
	if len(got) != 1 || got[0] != desc.Digest {
		t.Errorf("Walk() = %v, want only %s", got, desc.Digest)
	}
}

// foreignIndex is an index.json as another tool might leave it: an
// unnamed entry with fields we do not know, a named one, and top-level
// fields of its own.
const foreignIndex = `{
  "schemaVersion": 2,
  "annotations": {"org.example.owner": "someone else"},
  "x-other-tool": {"keep": [1, 2, 3]},
  "manifests": [
    {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111", "size": 10, "x-unknown": true,
     "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222", "size": 20,
     "annotations": {"org.opencontainers.image.ref.name": "latest", "org.example.note": "tagged elsewhere"}}
  ]
}`

func TestImagesKeepForeignIndexEntries(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(foreignIndex), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	im := s.Images()
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}
	for _, name := range []string{"example.com/a:1", "example.com/b:1", "example.com/c:1"} {
		if _, err := im.Create(ctx, content.Image{Name: name, Target: target, Labels: map[string]string{"n": name}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := im.Update(ctx, content.Image{Name: "example.com/b:1", Labels: map[string]string{"x": "y"}}, "labels.x"); err != nil {
		t.Fatal(err)
	}
	if err := im.Delete(ctx, "example.com/a:1"); err != nil {
		t.Fatal(err)
	}

	// What the other tool wrote is there, field for field.
	var before, after struct {
		Annotations json.RawMessage   `json:"annotations"`
		Other       json.RawMessage   `json:"x-other-tool"`
		Manifests   []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(foreignIndex), &before); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &after); err != nil {
		t.Fatalf("index.json: %v\n%s", err, b)
	}
	if compact(t, after.Annotations) != compact(t, before.Annotations) || compact(t, after.Other) != compact(t, before.Other) {
		t.Errorf("top-level fields changed: annotations %s, x-other-tool %s", after.Annotations, after.Other)
	}
	if len(after.Manifests) != 4 {
		t.Fatalf("index.json has %d manifests, want 2 foreign + 2 ours:\n%s", len(after.Manifests), b)
	}
	for i := range 2 {
		if got, want := compact(t, after.Manifests[i]), compact(t, before.Manifests[i]); got != want {
			t.Errorf("foreign manifests[%d] = %s, want %s", i, got, want)
		}
	}
	idx := readIndex(t, dir)
	if got := idx.Manifests[3].Annotations; got[ocispec.AnnotationRefName] != "example.com/c:1" ||
		got[local.AnnotationLabelPrefix+"n"] != "example.com/c:1" || got[local.AnnotationCreated] == "" {
		t.Errorf("our entry's annotations = %v", got)
	}

	// The other tool's name is a name.
	imgs, err := im.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name)
	}
	if want := []string{"example.com/b:1", "example.com/c:1", "latest"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("List() = %q, want %q", names, want)
	}
	latest, err := im.Get(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(latest.Target.Annotations, map[string]string{"org.example.note": "tagged elsewhere"}) || !latest.CreatedAt.IsZero() {
		t.Errorf("Get(latest) = %+v, want the foreign note as target annotation and no times", latest)
	}
	// Updating it keeps its foreign annotation.
	if _, err := im.Update(ctx, content.Image{Name: "latest", Labels: map[string]string{"mine": "1"}}, "labels"); err != nil {
		t.Fatal(err)
	}
	idx = readIndex(t, dir)
	if got := idx.Manifests[1].Annotations; got["org.example.note"] != "tagged elsewhere" || got[local.AnnotationLabelPrefix+"mine"] != "1" {
		t.Errorf("updated foreign entry annotations = %v", got)
	}
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact %s: %v", b, err)
	}
	return buf.String()
}

func TestImagesRecordFieldsAsAnnotations(t *testing.T) {
	dir := t.TempDir()
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	target := ocispec.Descriptor{
		MediaType:   ocispec.MediaTypeImageIndex,
		Digest:      digest.FromString("index"),
		Size:        5,
		Annotations: map[string]string{"org.opencontainers.image.ref.name": "overridden", "org.example": "kept"},
	}
	created, err := s.Images().Create(ctx, content.Image{Name: "registry.example:5000/team/app:v1", Target: target, Labels: map[string]string{"a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	idx := readIndex(t, dir)
	if len(idx.Manifests) != 1 {
		t.Fatalf("index.json has %d manifests, want 1", len(idx.Manifests))
	}
	e := idx.Manifests[0]
	want := map[string]string{
		ocispec.AnnotationRefName:         "registry.example:5000/team/app:v1",
		"org.example":                     "kept",
		local.AnnotationLabelPrefix + "a": "1",
		local.AnnotationCreated:           created.CreatedAt.Format(time.RFC3339Nano),
		local.AnnotationUpdated:           created.UpdatedAt.Format(time.RFC3339Nano),
	}
	if e.Digest != target.Digest || e.MediaType != target.MediaType || e.Size != 5 || !maps.Equal(e.Annotations, want) {
		t.Errorf("entry = %+v, want target with annotations %v", e, want)
	}
	// Another Store on the same directory sees it.
	other, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := other.Images().Get(ctx, created.Name)
	if err != nil || !got.CreatedAt.Equal(created.CreatedAt) || !maps.Equal(got.Target.Annotations, map[string]string{"org.example": "kept"}) {
		t.Errorf("Get() from another Store = %+v, %v; want %+v", got, err, created)
	}

	reserved := target
	reserved.Annotations = map[string]string{local.AnnotationCreated: "2000-01-01T00:00:00Z"}
	if _, err := s.Images().Create(ctx, content.Image{Name: "reserved", Target: reserved}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Create(target with a reserved annotation) error = %v, want InvalidArgument", err)
	}
	if _, err := s.Images().Update(ctx, content.Image{Name: created.Name, Target: reserved}, "target"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Update(target with a reserved annotation) error = %v, want InvalidArgument", err)
	}
}
