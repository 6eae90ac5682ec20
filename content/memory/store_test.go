package memory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/contenttest"
	"github.com/pullkit/pullkit/content/memory"
)

func TestStore(t *testing.T) {
	contenttest.Run(t, func(*testing.T) content.Store { return memory.New() })
}

func TestZeroStore(t *testing.T) {
	contenttest.Run(t, func(*testing.T) content.Store { return new(memory.Store) })
}

func TestImages(t *testing.T) {
	contenttest.RunImages(t, func(*testing.T) content.Images { return memory.New().Images() })
}

func TestZeroImages(t *testing.T) {
	contenttest.RunImages(t, func(*testing.T) content.Images { return new(memory.Images) })
}

func TestImagesIsPerStore(t *testing.T) {
	s := memory.New()
	if s.Images() != s.Images() {
		t.Error("Images() returned different name stores for one Store")
	}
	if s.Images() == memory.New().Images() {
		t.Error("two Stores share one name store")
	}
}

func TestTruncateKeepsPrefix(t *testing.T) {
	ctx := t.Context()
	s := memory.New()
	w, err := s.Writer(ctx, content.WithRef("ref"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("hello, garbage")); err != nil {
		t.Fatal(err)
	}
	if err := w.Truncate(5); err != nil {
		t.Fatalf("Truncate(5) error = %v", err)
	}
	if got, want := w.Digest(), digest.FromString("hello"); got != want {
		t.Errorf("Digest() after Truncate(5) = %s, want %s", got, want)
	}
	for _, size := range []int64{-1, 6} {
		if err := w.Truncate(size); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Truncate(%d) with offset 5 error = %v, want InvalidArgument", size, err)
		}
	}
	if _, err := w.Write([]byte(", world")); err != nil {
		t.Fatal(err)
	}
	want := digest.FromString("hello, world")
	if err := w.Commit(ctx, 12, want); err != nil {
		t.Fatalf("Commit() error = %v", err)
	}
	if _, err := s.Info(ctx, want); err != nil {
		t.Errorf("Info() error = %v", err)
	}
}

func TestSHA512(t *testing.T) {
	ctx := t.Context()
	s := memory.New()
	data := []byte("hashed with sha512")
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.SHA512.FromBytes(data), Size: int64(len(data))}
	w, err := s.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if w.Digest() != desc.Digest {
		t.Errorf("Digest() = %s, want %s", w.Digest(), desc.Digest)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatalf("Commit() error = %v", err)
	}
	got, err := content.ReadBlob(ctx, s, desc, 0)
	if err != nil || string(got) != string(data) {
		t.Errorf("ReadBlob() = %q, %v; want %q", got, err, data)
	}
}

func TestCommitChecksOtherAlgorithm(t *testing.T) {
	ctx := t.Context()
	s := memory.New()
	data := []byte("written without a descriptor")
	w, err := s.Writer(ctx, content.WithRef("ref"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	want := digest.SHA512.FromBytes(data)
	if err := w.Commit(ctx, 0, want); err != nil {
		t.Fatalf("Commit(sha512) of a sha256 writer error = %v", err)
	}
	if _, err := s.Info(ctx, want); err != nil {
		t.Errorf("Info(%s) error = %v", want, err)
	}
}

func TestWriterValidatesDescriptor(t *testing.T) {
	s := memory.New()
	tests := []struct {
		name string
		desc ocispec.Descriptor
	}{
		{"malformed digest", ocispec.Descriptor{Digest: "sha256:xyz", Size: 1}},
		{"negative size", ocispec.Descriptor{Digest: digest.FromString("x"), Size: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := s.Writer(t.Context(), content.WithRef("ref"), content.WithDescriptor(tt.desc))
			if err == nil {
				w.Close()
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Writer() error = %v, want InvalidArgument", err)
			}
		})
	}
}

func TestCommitInvalidDigest(t *testing.T) {
	s := memory.New()
	w, err := s.Writer(t.Context(), content.WithRef("ref"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(t.Context(), 0, "sha256:short"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Commit(malformed digest) error = %v, want InvalidArgument", err)
	}
}

func TestResumeForAnotherDigestRestarts(t *testing.T) {
	ctx := t.Context()
	s := memory.New()
	first := []byte("first blob")
	w, err := s.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(ocispec.Descriptor{Digest: digest.FromBytes(first), Size: int64(len(first))}))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(first[:5])
	w.Close()

	second := []byte("second blob")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(second), Size: int64(len(second))}
	w, err = s.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	st, err := w.Status()
	if err != nil || st.Offset != 0 || st.Expected != desc.Digest {
		t.Fatalf("Status() = offset %d, expected %s, %v; want 0, %s", st.Offset, st.Expected, err, desc.Digest)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); !errors.Is(err, content.ErrDigestMismatch) {
		t.Errorf("Commit() of nothing error = %v, want ErrDigestMismatch", err)
	}
}

func TestClosedWriter(t *testing.T) {
	ctx := t.Context()
	s := memory.New()
	w, err := s.Writer(ctx, content.WithRef("ref"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close() error = %v, want nil", err)
	}
	if _, err := w.Write([]byte("x")); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Write() after Close error = %v, want FailedPrecondition", err)
	}
	if err := w.Commit(ctx, 0, ""); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Commit() after Close error = %v, want FailedPrecondition", err)
	}
	if _, err := w.Status(); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Status() after Close error = %v, want FailedPrecondition", err)
	}
	if err := w.Truncate(0); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Truncate() after Close error = %v, want FailedPrecondition", err)
	}
}

func TestReaderAtSurvivesDelete(t *testing.T) {
	ctx := t.Context()
	s := memory.New()
	data := []byte("still readable")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(ctx, s, "ref", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}
	ra, err := s.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if err := s.Delete(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	got, err := content.ReadAll(content.NewReader(ra), desc)
	if err != nil || string(got) != string(data) {
		t.Errorf("reading after Delete = %q, %v; want %q", got, err, data)
	}
	if _, err := ra.ReadAt(make([]byte, 1), -1); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReadAt(-1) error = %v, want InvalidArgument", err)
	}
}

func TestWalkContext(t *testing.T) {
	s := memory.New()
	data := []byte("x")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: 1}
	if err := content.WriteBlob(t.Context(), s, "ref", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	err := s.Walk(ctx, func(content.Info) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("Walk(canceled) = %v, called fn %v; want context.Canceled, false", err, called)
	}
}

// TestConcurrentUse runs writers, label updates, walks, reads and name
// records side by side, for the race detector to check the locking.
func TestConcurrentUse(t *testing.T) {
	ctx := t.Context()
	s := memory.New()
	images := s.Images()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		data := []byte(fmt.Sprintf("blob %d", i))
		desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
		wg.Go(func() {
			if err := content.WriteBlob(ctx, s, fmt.Sprintf("ref-%d", i), bytes.NewReader(data), desc); err != nil {
				errs <- err
				return
			}
			if _, err := s.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{"i": fmt.Sprint(i)}}, "labels.i"); err != nil {
				errs <- err
			}
			if _, err := content.ReadBlob(ctx, s, desc, 0); err != nil {
				errs <- err
			}
			if _, err := images.Create(ctx, content.Image{Name: fmt.Sprintf("img:%d", i), Target: desc}); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			if err := s.Walk(ctx, func(info content.Info) error { _ = info.Labels["i"]; return nil }); err != nil {
				errs <- err
			}
			if _, err := s.ListStatuses(ctx); err != nil {
				errs <- err
			}
			if _, err := images.List(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var labelled int
	if err := s.Walk(ctx, func(content.Info) error { labelled++; return nil }, content.HasLabel("i")); err != nil || labelled != n {
		t.Errorf("Walk(HasLabel(i)) = %d blobs, %v; want %d", labelled, err, n)
	}
	if imgs, err := images.List(ctx); err != nil || len(imgs) != n {
		t.Errorf("List() = %d records, %v; want %d", len(imgs), err, n)
	}
}
