package local_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/local"
)

func TestRefLockSpansStoresOfOneProcess(t *testing.T) {
	dir := t.TempDir()
	s1, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	w, err := s1.Writer(ctx, content.WithRef("some/ref:with odd chars"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = s2.Writer(ctx, content.WithRef("some/ref:with odd chars"))
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "some/ref:with odd chars") {
		t.Errorf("Writer() from another Store error = %v, want Unavailable naming the ref", err)
	}
	if err := s2.Abort(ctx, "some/ref:with odd chars"); !errdefs.IsUnavailable(err) {
		t.Errorf("Abort() from another Store error = %v, want Unavailable", err)
	}
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := s2.Status(ctx, "some/ref:with odd chars")
	if err != nil || st.Offset != 3 {
		t.Errorf("Status() from another Store = %+v, %v; want offset 3", st, err)
	}
	if err := s2.Abort(ctx, "some/ref:with odd chars"); err != nil {
		t.Errorf("Abort() after Close error = %v", err)
	}
}

func TestCommitMismatchKeepsOnlyResumableIngests(t *testing.T) {
	const data = "0123456789"
	tests := []struct {
		name     string
		size     int64
		dgst     digest.Digest
		wantKept bool
	}{
		{"too few bytes", 20, "", true},
		{"too few bytes for the digest", 20, digest.FromString(data + "more"), true},
		{"too many bytes", 5, "", false},
		{"wrong digest", 0, digest.FromString("other"), false},
		{"right size, wrong digest", 10, digest.FromString("other"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := t.Context()
			w, err := s.Writer(ctx, content.WithRef("ref"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte(data)); err != nil {
				t.Fatal(err)
			}
			err = w.Commit(ctx, tt.size, tt.dgst)
			var me *content.MismatchError
			if !errors.As(err, &me) || !errors.Is(err, content.ErrDigestMismatch) || me.ActualSize != int64(len(data)) {
				t.Fatalf("Commit() error = %v, want a *content.MismatchError of %d bytes", err, len(data))
			}
			st, err := s.Status(ctx, "ref")
			switch {
			case tt.wantKept && (err != nil || st.Offset != int64(len(data))):
				t.Errorf("Status() after Commit = %+v, %v; want the ingest kept", st, err)
			case !tt.wantKept && !errdefs.IsNotFound(err):
				t.Errorf("Status() after Commit = %+v, %v; want NotFound", st, err)
			}
			var n int
			s.Walk(ctx, func(content.Info) error { n++; return nil })
			if n != 0 {
				t.Errorf("Walk() after a failed Commit found %d blobs", n)
			}
		})
	}
}

func TestWriterRestartsIngestOfAnotherBlob(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	descOf := func(data string) ocispec.Descriptor {
		return ocispec.Descriptor{Digest: digest.FromString(data), Size: int64(len(data))}
	}
	old := descOf("the old blob")
	w, err := s.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(old))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("the old"))
	w.Close()

	// The same descriptor, or none, resumes.
	for _, opts := range [][]content.WriterOpt{{content.WithDescriptor(old)}, nil} {
		w, err := s.Writer(ctx, append(opts, content.WithRef("ref"))...)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := w.Status()
		if st.Offset != 7 || st.Expected != old.Digest || st.Total != old.Size {
			t.Errorf("resumed Status() = %+v, want offset 7 of %s", st, old.Digest)
		}
		w.Close()
	}
	// Another descriptor starts over.
	b := "a new blob"
	w, err = s.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(descOf(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if st, _ := w.Status(); st.Offset != 0 || st.Expected != digest.FromString(b) {
		t.Errorf("Status() for another blob = %+v, want offset 0 of %s", st, digest.FromString(b))
	}
	if err := content.Copy(ctx, w, strings.NewReader(b), int64(len(b)), digest.FromString(b)); err != nil {
		t.Fatal(err)
	}
}

func TestWriterBuffersSmallWrites(t *testing.T) {
	dir := t.TempDir()
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	w, err := s.Writer(ctx, content.WithRef("small"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var all strings.Builder
	for i := range 1000 {
		p := fmt.Sprintf("%09d\n", i)
		all.WriteString(p)
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(ingestDir(t, dir), "data")
	if fi, err := os.Stat(data); err != nil || fi.Size() != 0 {
		t.Errorf("data file after 1000 small writes: %v, %v; want them still buffered", fi, err)
	}
	// The store's Status counts buffered bytes of a writer in this process.
	if st, err := s.Status(ctx, "small"); err != nil || st.Offset != 10000 {
		t.Errorf("Store.Status() = %+v, %v; want offset 10000", st, err)
	}
	// Writer.Status writes them out.
	if st, err := w.Status(); err != nil || st.Offset != 10000 {
		t.Errorf("Writer.Status() = %+v, %v; want offset 10000", st, err)
	}
	if fi, err := os.Stat(data); err != nil || fi.Size() != 10000 {
		t.Errorf("data file after Status(): %v, %v; want 10000 bytes", fi, err)
	}
	if err := w.Commit(ctx, 10000, digest.FromString(all.String())); err != nil {
		t.Fatal(err)
	}
}

// ingestDir returns the only ingest directory in the layout at dir.
func ingestDir(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "ingest"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("ingest/ = %v, %v; want one ingest", entries, err)
	}
	return filepath.Join(dir, "ingest", entries[0].Name())
}

func TestIngestFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{Digest: digest.FromString("twelve bytes"), Size: 12}
	w, err := s.Writer(t.Context(), content.WithRef("../../escape?"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("twelve"))
	w.Close()
	in := ingestDir(t, dir)
	for name, want := range map[string]string{"ref": "../../escape?", "total": "12", "expected": desc.Digest.String(), "data": "twelve"} {
		if b, err := os.ReadFile(filepath.Join(in, name)); err != nil || string(b) != want {
			t.Errorf("ingest file %s = %q, %v; want %q", name, b, err, want)
		}
	}
	for _, name := range []string{"startedat", "lock"} {
		if _, err := os.Stat(filepath.Join(in, name)); err != nil {
			t.Errorf("ingest file %s: %v", name, err)
		}
	}
}

func TestTruncateKeepsAPrefix(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w, err := s.Writer(ctx, content.WithRef("ref"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("hello world"))
	if err := w.Truncate(20); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Truncate(past the end) error = %v, want InvalidArgument", err)
	}
	if err := w.Truncate(5); err != nil {
		t.Fatal(err)
	}
	if got, want := w.Digest(), digest.FromString("hello"); got != want {
		t.Errorf("Digest() after Truncate(5) = %s, want %s", got, want)
	}
	w.Write([]byte(", there"))
	if err := w.Commit(ctx, 12, digest.FromString("hello, there")); err != nil {
		t.Fatal(err)
	}
}

func TestCommitOfAnExistingBlobAddsItsLabels(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	desc := putBlob(t, s, "shared", content.WithLabels(map[string]string{"a": "1"}))
	w, err := s.Writer(ctx, content.WithRef("another"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("shared"))
	err = w.Commit(ctx, desc.Size, desc.Digest, content.WithLabels(map[string]string{"b": "2"}))
	if !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Commit() of an existing blob error = %v, want AlreadyExists", err)
	}
	info, err := s.Info(ctx, desc.Digest)
	if err != nil || !maps.Equal(info.Labels, map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("Info() = %+v, %v; want labels a and b", info, err)
	}
	if sts, _ := s.ListStatuses(ctx); len(sts) != 0 {
		t.Errorf("ListStatuses() = %+v, want the ingest removed", sts)
	}
}

func TestConcurrentLabelUpdatesFromTwoStores(t *testing.T) {
	dir := t.TempDir()
	var stores [2]*local.Store
	for i := range stores {
		s, err := local.New(dir, local.WithSync(false))
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	desc := putBlob(t, stores[0], "labelled")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", i)
			_, err := stores[i%2].Update(t.Context(), content.Info{Digest: desc.Digest, Labels: map[string]string{key: "v"}}, "labels."+key)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	info, err := stores[1].Info(t.Context(), desc.Digest)
	if err != nil || len(info.Labels) != 40 {
		t.Errorf("Info() = %d labels, %v; want 40", len(info.Labels), err)
	}
}

func TestReaderAtOfAMissingBlob(t *testing.T) {
	s := newStore(t)
	dgst := digest.FromString("missing")
	_, err := s.ReaderAt(t.Context(), ocispec.Descriptor{Digest: dgst})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), dgst.String()) {
		t.Errorf("ReaderAt(missing) error = %v, want NotFound naming %s", err, dgst)
	}
	for _, bad := range []digest.Digest{"", "sha256:../../etc/passwd", "md5:abc"} {
		if _, err := s.ReaderAt(t.Context(), ocispec.Descriptor{Digest: bad}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ReaderAt(%q) error = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestWriterForACommittedBlobDropsItsStaleIngest(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	desc := ocispec.Descriptor{Digest: digest.FromString("blob"), Size: 4}
	w, err := s.Writer(ctx, content.WithRef("stale"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("blob"))
	w.Close() // as if the process died before its commit
	putBlob(t, s, "blob")
	if _, err := s.Writer(ctx, content.WithRef("stale"), content.WithDescriptor(desc)); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Writer() error = %v, want AlreadyExists", err)
	}
	if _, err := s.Status(ctx, "stale"); !errdefs.IsNotFound(err) {
		t.Errorf("Status(stale) error = %v, want the ingest dropped", err)
	}
}

func TestCommitWithAnotherDigestAlgorithm(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	data := []byte("hashed with sha512")
	want := digest.SHA512.FromBytes(data)
	// Known up front: hashed with sha512 while writing.
	if err := content.WriteBlob(ctx, s, "up-front", bytes.NewReader(data), ocispec.Descriptor{Digest: want, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx, want); err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Info(%s) = %+v, %v", want, info, err)
	}
	if err := s.Delete(ctx, want); err != nil {
		t.Fatal(err)
	}
	// Known only at commit: verified by reading the bytes again.
	w, err := s.Writer(ctx, content.WithRef("at-commit"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(ctx, 0, want); err != nil {
		t.Fatalf("Commit(0, %s) error = %v", want, err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "blobs", "sha512", want.Encoded())); err != nil {
		t.Errorf("blobs/sha512/%s: %v", want.Encoded(), err)
	}
}
