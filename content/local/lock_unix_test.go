//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/pullkit/pullkit/content"
)

func TestLockWaitsHonourTheContext(t *testing.T) {
	s := newStore(t)
	desc := putBlob(t, s, "locked", content.WithLabels(map[string]string{"k": "v"}))
	img := content.Image{Name: "example.com/locked:1", Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: desc.Digest, Size: desc.Size}}
	// Another process's locks, as far as flock can tell.
	hold := func(path string) *os.File {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		return f
	}
	index := hold(filepath.Join(s.Root(), "index.json.lock"))
	labels := hold(filepath.Join(s.Root(), "labels", "sha256", desc.Digest.Encoded()+".lock"))

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Images().Create(ctx, img); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Create() while index.json is locked error = %v, want DeadlineExceeded", err)
	}
	if _, err := s.Update(ctx, content.Info{Digest: desc.Digest}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Update() while the labels are locked error = %v, want DeadlineExceeded", err)
	}
	index.Close()
	labels.Close()
	// The abandoned waits let go of what they got.
	if _, err := s.Images().Create(t.Context(), img); err != nil {
		t.Errorf("Create() after the lock is released error = %v", err)
	}
	if _, err := s.Update(t.Context(), content.Info{Digest: desc.Digest, Labels: map[string]string{"a": "1"}}); err != nil {
		t.Errorf("Update() after the lock is released error = %v", err)
	}
}
