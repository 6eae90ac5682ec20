package contenttest

import (
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

var imageGroups = []struct {
	name  string
	cases []imageCase
}{
	{"Create", imageCreateCases},
	{"Get", imageGetCases},
	{"List", imageListCases},
	{"Update", imageUpdateCases},
	{"Delete", imageDeleteCases},
}

// longAgo is a time no store should record for a record it creates now.
var longAgo = time.Date(2000, 1, 2, 3, 4, 5, 0, time.UTC)

// newImage returns a valid record for name whose target is derived from seed.
func newImage(name, seed string, labels map[string]string) content.Image {
	return content.Image{
		Name: name,
		Target: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    digest.FromString(seed),
			Size:      int64(len(seed)) + 100,
		},
		Labels: labels,
	}
}

// sameTarget reports whether two descriptors are equal, treating nil and
// empty maps and slices alike.
func sameTarget(a, b ocispec.Descriptor) bool {
	return a.MediaType == b.MediaType && a.Digest == b.Digest && a.Size == b.Size &&
		a.ArtifactType == b.ArtifactType && slices.Equal(a.URLs, b.URLs) &&
		maps.Equal(a.Annotations, b.Annotations) && string(a.Data) == string(b.Data) &&
		reflect.DeepEqual(a.Platform, b.Platform)
}

// createImage creates img or fails t.
func createImage(t *testing.T, is content.Images, img content.Image) content.Image {
	t.Helper()
	got, err := is.Create(t.Context(), img)
	if err != nil {
		t.Fatalf("Create(%q) error = %v", img.Name, err)
	}
	return got
}

// checkImage fails t unless Get(want.Name) returns want's target, labels
// and times.
func checkImage(t *testing.T, is content.Images, want content.Image) content.Image {
	t.Helper()
	got, err := is.Get(t.Context(), want.Name)
	if err != nil {
		t.Fatalf("Get(%q) error = %v", want.Name, err)
	}
	if got.Name != want.Name || !sameTarget(got.Target, want.Target) || !maps.Equal(got.Labels, want.Labels) {
		t.Errorf("Get(%q) = %+v, want %+v", want.Name, got, want)
	}
	if !want.CreatedAt.IsZero() && !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("Get(%q).CreatedAt = %v, want %v", want.Name, got.CreatedAt, want.CreatedAt)
	}
	if !want.UpdatedAt.IsZero() && !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("Get(%q).UpdatedAt = %v, want %v", want.Name, got.UpdatedAt, want.UpdatedAt)
	}
	return got
}

// listNames returns the names List returns, in its order.
func listNames(t *testing.T, is content.Images) []string {
	t.Helper()
	imgs, err := is.List(t.Context())
	if err != nil {
		t.Fatalf("List() error = %v", err)
	}
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name)
	}
	return names
}

var imageCreateCases = []imageCase{
	{"Create stores the record and sets its times", func(t *testing.T, is content.Images) {
		img := newImage("docker.io/library/alpine:3.20", "alpine", map[string]string{"a": "1"})
		img.Target.Annotations = map[string]string{"org.example.note": "kept"}
		img.Target.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
		img.CreatedAt, img.UpdatedAt = longAgo, longAgo
		got := createImage(t, is, img)
		if got.Name != img.Name || !sameTarget(got.Target, img.Target) || !maps.Equal(got.Labels, img.Labels) {
			t.Errorf("Create() = %+v, want %+v", got, img)
		}
		if got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() {
			t.Errorf("Create() CreatedAt = %v, UpdatedAt = %v; want both set", got.CreatedAt, got.UpdatedAt)
		}
		if !got.CreatedAt.After(longAgo) || !got.UpdatedAt.After(longAgo) {
			t.Errorf("Create() kept the caller's times %v, %v; want the store's", got.CreatedAt, got.UpdatedAt)
		}
		if got.UpdatedAt.Before(got.CreatedAt) {
			t.Errorf("Create() UpdatedAt %v is before CreatedAt %v", got.UpdatedAt, got.CreatedAt)
		}
		want := img
		want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.UpdatedAt
		checkImage(t, is, want)
	}},
	{"Create of a taken name is AlreadyExists and keeps the record", func(t *testing.T, is content.Images) {
		first := createImage(t, is, newImage("app:1", "first", map[string]string{"v": "1"}))
		_, err := is.Create(t.Context(), newImage("app:1", "second", map[string]string{"v": "2"}))
		if !errdefs.IsAlreadyExists(err) {
			t.Fatalf("Create(taken name) error = %v, want AlreadyExists", err)
		}
		checkImage(t, is, first)
	}},
	{"Create of an invalid record is InvalidArgument", func(t *testing.T, is content.Images) {
		valid := newImage("app:1", "target", nil)
		tests := []struct {
			name   string
			change func(*content.Image)
		}{
			{"empty name", func(img *content.Image) { img.Name = "" }},
			{"no digest", func(img *content.Image) { img.Target.Digest = "" }},
			{"malformed digest", func(img *content.Image) { img.Target.Digest = "sha256:nothex" }},
			{"no media type", func(img *content.Image) { img.Target.MediaType = "" }},
			{"negative size", func(img *content.Image) { img.Target.Size = -1 }},
		}
		for _, tt := range tests {
			img := valid
			tt.change(&img)
			if _, err := is.Create(t.Context(), img); !errdefs.IsInvalidArgument(err) {
				t.Errorf("Create(%s) error = %v, want InvalidArgument", tt.name, err)
			}
		}
		if names := listNames(t, is); len(names) != 0 {
			t.Errorf("List() after invalid Creates = %q, want nothing", names)
		}
	}},
}

var imageGetCases = []imageCase{
	{"Get of an unknown name is NotFound", func(t *testing.T, is content.Images) {
		createImage(t, is, newImage("app:1", "target", nil))
		for _, name := range []string{"app:2", "app", "app:1 "} {
			if _, err := is.Get(t.Context(), name); !errdefs.IsNotFound(err) {
				t.Errorf("Get(%q) error = %v, want NotFound", name, err)
			}
		}
	}},
	{"returned records are copies", func(t *testing.T, is content.Images) {
		img := newImage("app:1", "target", map[string]string{"a": "1"})
		img.Target.Annotations = map[string]string{"n": "1"}
		created := createImage(t, is, img)
		img.Labels["a"] = "changed by the caller"
		img.Target.Annotations["n"] = "changed by the caller"
		created.Labels["a"] = "changed by the caller"
		created.Target.Annotations["n"] = "changed by the caller"
		got, err := is.Get(t.Context(), "app:1")
		if err != nil {
			t.Fatalf("Get() error = %v", err)
		}
		if got.Labels["a"] != "1" || got.Target.Annotations["n"] != "1" {
			t.Fatalf("Get() = labels %v, annotations %v; the caller's changes leaked into the store", got.Labels, got.Target.Annotations)
		}
		got.Labels["a"] = "changed by the caller"
		got.Target.Annotations["n"] = "changed by the caller"
		imgs, err := is.List(t.Context())
		if err != nil || len(imgs) != 1 {
			t.Fatalf("List() = %d records, %v; want 1", len(imgs), err)
		}
		if imgs[0].Labels["a"] != "1" || imgs[0].Target.Annotations["n"] != "1" {
			t.Errorf("List() = labels %v, annotations %v; the caller's changes leaked into the store", imgs[0].Labels, imgs[0].Target.Annotations)
		}
	}},
}

var imageListCases = []imageCase{
	{"List of an empty store is empty", func(t *testing.T, is content.Images) {
		if names := listNames(t, is); len(names) != 0 {
			t.Errorf("List() = %q, want nothing", names)
		}
	}},
	{"List is sorted by name", func(t *testing.T, is content.Images) {
		for _, name := range []string{"docker.io/library/b:1", "a:2", "docker.io/library/b:0", "a:10", "ghcr.io/c@sha256:" + digest.FromString("c").Encoded()} {
			createImage(t, is, newImage(name, name, map[string]string{"name": name}))
		}
		want := []string{"a:10", "a:2", "docker.io/library/b:0", "docker.io/library/b:1", "ghcr.io/c@sha256:" + digest.FromString("c").Encoded()}
		if names := listNames(t, is); !slices.Equal(names, want) {
			t.Errorf("List() = %q, want %q", names, want)
		}
		imgs, err := is.List(t.Context())
		if err != nil {
			t.Fatalf("List() error = %v", err)
		}
		for _, img := range imgs {
			if want := newImage(img.Name, img.Name, nil); !sameTarget(img.Target, want.Target) || img.Labels["name"] != img.Name || img.CreatedAt.IsZero() {
				t.Errorf("List() record %q = %+v, want its target, labels and CreatedAt", img.Name, img)
			}
		}
	}},
}

var imageUpdateCases = []imageCase{
	{"Update without fieldpaths replaces target and labels", func(t *testing.T, is content.Images) {
		created := createImage(t, is, newImage("app:1", "old", map[string]string{"a": "1", "b": "2"}))
		update := newImage("app:1", "new", map[string]string{"c": "3"})
		got, err := is.Update(t.Context(), update)
		if err != nil {
			t.Fatalf("Update() error = %v", err)
		}
		if !sameTarget(got.Target, update.Target) || !maps.Equal(got.Labels, update.Labels) {
			t.Errorf("Update() = %+v, want target %v, labels %v", got, update.Target, update.Labels)
		}
		if !got.CreatedAt.Equal(created.CreatedAt) {
			t.Errorf("Update() CreatedAt = %v, want %v kept", got.CreatedAt, created.CreatedAt)
		}
		if got.UpdatedAt.Before(created.UpdatedAt) {
			t.Errorf("Update() UpdatedAt = %v, before the previous %v", got.UpdatedAt, created.UpdatedAt)
		}
		update.CreatedAt, update.UpdatedAt = got.CreatedAt, got.UpdatedAt
		checkImage(t, is, update)
	}},
	{"Update of target keeps the labels", func(t *testing.T, is content.Images) {
		created := createImage(t, is, newImage("app:1", "old", map[string]string{"a": "1"}))
		update := newImage("app:1", "new", map[string]string{"ignored": "x"})
		got, err := is.Update(t.Context(), update, "target")
		if err != nil {
			t.Fatalf("Update(target) error = %v", err)
		}
		want := created
		want.Target, want.UpdatedAt = update.Target, got.UpdatedAt
		checkImage(t, is, want)
		if got.UpdatedAt.Before(created.UpdatedAt) {
			t.Errorf("Update() UpdatedAt = %v, before the previous %v", got.UpdatedAt, created.UpdatedAt)
		}
	}},
	{"Update of labels keeps the target", func(t *testing.T, is content.Images) {
		created := createImage(t, is, newImage("app:1", "old", map[string]string{"a": "1", "b": "2"}))
		update := newImage("app:1", "ignored", map[string]string{"b": "x", "c": "3"})
		got, err := is.Update(t.Context(), update, "labels")
		if err != nil {
			t.Fatalf("Update(labels) error = %v", err)
		}
		want := created
		want.Labels, want.UpdatedAt = update.Labels, got.UpdatedAt
		checkImage(t, is, want)
	}},
	{"Update of labels.KEY sets or removes one label", func(t *testing.T, is content.Images) {
		created := createImage(t, is, newImage("app:1", "old", map[string]string{"a": "1", "b": "2"}))
		update := newImage("app:1", "ignored", map[string]string{"a": "new", "b": "ignored", "c": "3"})
		got, err := is.Update(t.Context(), update, "labels.a", "labels.c")
		if err != nil {
			t.Fatalf("Update(labels.a, labels.c) error = %v", err)
		}
		want := created
		want.Labels, want.UpdatedAt = map[string]string{"a": "new", "b": "2", "c": "3"}, got.UpdatedAt
		checkImage(t, is, want)
		got2, err := is.Update(t.Context(), content.Image{Name: "app:1", Labels: map[string]string{"b": ""}}, "labels.a", "labels.b")
		if err != nil {
			t.Fatalf("Update(labels.a, labels.b) error = %v", err)
		}
		if got2.UpdatedAt.Before(got.UpdatedAt) {
			t.Errorf("UpdatedAt went back from %v to %v", got.UpdatedAt, got2.UpdatedAt)
		}
		want.Labels, want.UpdatedAt = map[string]string{"c": "3"}, got2.UpdatedAt
		checkImage(t, is, want)
	}},
	{"Update of an unknown name is NotFound", func(t *testing.T, is content.Images) {
		if _, err := is.Update(t.Context(), newImage("app:1", "target", nil)); !errdefs.IsNotFound(err) {
			t.Errorf("Update(unknown) error = %v, want NotFound", err)
		}
		if names := listNames(t, is); len(names) != 0 {
			t.Errorf("List() after Update(unknown) = %q, want nothing (Update must not create)", names)
		}
	}},
	{"Update of another field is InvalidArgument and changes nothing", func(t *testing.T, is content.Images) {
		created := createImage(t, is, newImage("app:1", "old", map[string]string{"a": "1"}))
		for _, fp := range []string{"name", "createdat", "labels.", "target.digest", ""} {
			_, err := is.Update(t.Context(), newImage("app:1", "new", map[string]string{"a": "2"}), "target", "labels.a", fp)
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Update(%q) error = %v, want InvalidArgument", fp, err)
			}
		}
		checkImage(t, is, created)
	}},
	{"Update to an invalid target is InvalidArgument and changes nothing", func(t *testing.T, is content.Images) {
		created := createImage(t, is, newImage("app:1", "old", nil))
		bad := newImage("app:1", "new", nil)
		bad.Target.MediaType = ""
		if _, err := is.Update(t.Context(), bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Update(no media type) error = %v, want InvalidArgument", err)
		}
		bad = newImage("app:1", "new", nil)
		bad.Target.Digest = "not a digest"
		if _, err := is.Update(t.Context(), bad, "target"); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Update(target with a bad digest) error = %v, want InvalidArgument", err)
		}
		checkImage(t, is, created)
	}},
}

var imageDeleteCases = []imageCase{
	{"Delete removes only that record", func(t *testing.T, is content.Images) {
		createImage(t, is, newImage("app:1", "one", nil))
		kept := createImage(t, is, newImage("app:2", "two", map[string]string{"k": "v"}))
		if err := is.Delete(t.Context(), "app:1"); err != nil {
			t.Fatalf("Delete() error = %v", err)
		}
		if _, err := is.Get(t.Context(), "app:1"); !errdefs.IsNotFound(err) {
			t.Errorf("Get() after Delete error = %v, want NotFound", err)
		}
		checkImage(t, is, kept)
		if names := listNames(t, is); !slices.Equal(names, []string{"app:2"}) {
			t.Errorf("List() after Delete = %q, want [app:2]", names)
		}
	}},
	{"Delete of an unknown name is NotFound", func(t *testing.T, is content.Images) {
		createImage(t, is, newImage("app:1", "one", nil))
		if err := is.Delete(t.Context(), "app:1"); err != nil {
			t.Fatalf("first Delete() error = %v", err)
		}
		if err := is.Delete(t.Context(), "app:1"); !errdefs.IsNotFound(err) {
			t.Errorf("second Delete() error = %v, want NotFound", err)
		}
		if err := is.Delete(t.Context(), "never:created"); !errdefs.IsNotFound(err) {
			t.Errorf("Delete(never created) error = %v, want NotFound", err)
		}
	}},
	{"a deleted name can be created again", func(t *testing.T, is content.Images) {
		createImage(t, is, newImage("app:1", "one", map[string]string{"old": "1"}))
		if err := is.Delete(t.Context(), "app:1"); err != nil {
			t.Fatalf("Delete() error = %v", err)
		}
		again := createImage(t, is, newImage("app:1", "two", nil))
		checkImage(t, is, again)
	}},
}
