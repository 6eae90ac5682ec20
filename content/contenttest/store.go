package contenttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

var storeGroups = []struct {
	name  string
	cases []storeCase
}{
	{"Write", writeCases},
	{"Verify", verifyCases},
	{"Resume", resumeCases},
	{"Lock", lockCases},
	{"Labels", labelCases},
	{"Walk", walkCases},
	{"Delete", deleteCases},
	{"Ingests", ingestCases},
}

var writeCases = []storeCase{
	{"commit with size and digest makes the blob readable", func(t *testing.T, s content.Store) {
		b, desc := newBlob("hello, world")
		checkAbsent(t, s, desc.Digest)
		w := openWriter(t, s, content.WithRef("ref"), content.WithDescriptor(desc))
		write(t, w, b[:5])
		checkAbsent(t, s, desc.Digest) // not visible before Commit
		write(t, w, b[5:])
		checkAbsent(t, s, desc.Digest)
		if err := w.Commit(t.Context(), desc.Size, desc.Digest); err != nil {
			t.Fatalf("Commit() error = %v", err)
		}
		checkBlob(t, s, desc, b)
	}},
	{"commit with size only computes the digest", func(t *testing.T, s content.Store) {
		b, desc := newBlob("size only")
		w := openWriter(t, s, content.WithRef("ref"))
		write(t, w, b)
		if err := w.Commit(t.Context(), desc.Size, ""); err != nil {
			t.Fatalf("Commit(size, \"\") error = %v", err)
		}
		checkBlob(t, s, desc, b)
	}},
	{"commit with digest only checks the digest", func(t *testing.T, s content.Store) {
		b, desc := newBlob("digest only")
		w := openWriter(t, s, content.WithRef("ref"))
		write(t, w, b)
		if err := w.Commit(t.Context(), 0, desc.Digest); err != nil {
			t.Fatalf("Commit(0, digest) error = %v", err)
		}
		checkBlob(t, s, desc, b)
	}},
	{"commit with neither size nor digest computes both", func(t *testing.T, s content.Store) {
		b, desc := newBlob("neither size nor digest")
		w := openWriter(t, s, content.WithRef("ref"))
		write(t, w, b)
		if err := w.Commit(t.Context(), 0, ""); err != nil {
			t.Fatalf("Commit(0, \"\") error = %v", err)
		}
		checkBlob(t, s, desc, b)
		if got := walkDigests(t, s); !slices.Equal(got, sortedDigests(desc)) {
			t.Errorf("Walk() = %v, want only %s", got, desc.Digest)
		}
	}},
	{"an empty blob commits", func(t *testing.T, s content.Store) {
		b, desc := newBlob("")
		w := openWriter(t, s, content.WithRef("empty"), content.WithDescriptor(desc))
		if err := w.Commit(t.Context(), 0, desc.Digest); err != nil {
			t.Fatalf("Commit(0, %s) error = %v", desc.Digest, err)
		}
		checkBlob(t, s, desc, b)
	}},
	{"Info reports size, digest, times and no labels", func(t *testing.T, s content.Store) {
		desc := commitBlob(t, s, "info")
		info, err := s.Info(t.Context(), desc.Digest)
		if err != nil {
			t.Fatalf("Info() error = %v", err)
		}
		if info.Digest != desc.Digest || info.Size != desc.Size {
			t.Errorf("Info() = %s, %d; want %s, %d", info.Digest, info.Size, desc.Digest, desc.Size)
		}
		if info.CreatedAt.IsZero() || info.UpdatedAt.IsZero() {
			t.Errorf("Info() CreatedAt = %v, UpdatedAt = %v; want both set", info.CreatedAt, info.UpdatedAt)
		}
		if info.UpdatedAt.Before(info.CreatedAt) {
			t.Errorf("Info() UpdatedAt %v is before CreatedAt %v", info.UpdatedAt, info.CreatedAt)
		}
		if len(info.Labels) != 0 {
			t.Errorf("Info().Labels = %v, want none", info.Labels)
		}
	}},
	{"Info of an unknown digest is NotFound", func(t *testing.T, s content.Store) {
		checkAbsent(t, s, digest.FromString("never written"))
	}},
	{"ReaderAt reads at any offset", func(t *testing.T, s content.Store) {
		const data = "0123456789abcdef"
		desc := commitBlob(t, s, data)
		ra, err := s.ReaderAt(t.Context(), desc)
		if err != nil {
			t.Fatalf("ReaderAt() error = %v", err)
		}
		defer ra.Close()
		if ra.Size() != int64(len(data)) {
			t.Fatalf("Size() = %d, want %d", ra.Size(), len(data))
		}
		p := make([]byte, 4)
		for _, off := range []int64{0, 5, 12} {
			n, err := ra.ReadAt(p, off)
			if n != 4 || (err != nil && !errors.Is(err, io.EOF)) || string(p) != data[off:off+4] {
				t.Errorf("ReadAt(4 bytes, %d) = %d, %v, %q; want 4, nil, %q", off, n, err, p[:n], data[off:off+4])
			}
		}
		n, err := ra.ReadAt(p, 14)
		if n != 2 || err == nil || string(p[:n]) != "ef" {
			t.Errorf("ReadAt(4 bytes, 14) = %d, %v, %q; want 2, an error, \"ef\"", n, err, p[:n])
		}
		n, err = ra.ReadAt(p, int64(len(data)))
		if n != 0 || err == nil {
			t.Errorf("ReadAt(4 bytes, size) = %d, %v; want 0, an error", n, err)
		}
		if err := ra.Close(); err != nil {
			t.Errorf("Close() error = %v", err)
		}
	}},
	{"Digest reports the bytes written so far", func(t *testing.T, s content.Store) {
		w := openWriter(t, s, content.WithRef("ref"))
		if got, want := w.Digest(), digest.FromString(""); got != want {
			t.Errorf("Digest() before writing = %s, want %s", got, want)
		}
		write(t, w, []byte("hel"))
		if got, want := w.Digest(), digest.FromString("hel"); got != want {
			t.Errorf("Digest() after \"hel\" = %s, want %s", got, want)
		}
		write(t, w, []byte("lo"))
		if got, want := w.Digest(), digest.FromString("hello"); got != want {
			t.Errorf("Digest() after \"hello\" = %s, want %s", got, want)
		}
	}},
	{"Truncate(0) restarts the ingest", func(t *testing.T, s content.Store) {
		b, desc := newBlob("the real content")
		w := openWriter(t, s, content.WithRef("ref"), content.WithDescriptor(desc))
		write(t, w, []byte("garbage that must go"))
		if err := w.Truncate(0); err != nil {
			t.Fatalf("Truncate(0) error = %v", err)
		}
		st, err := w.Status()
		if err != nil {
			t.Fatalf("Status() error = %v", err)
		}
		if st.Offset != 0 {
			t.Errorf("Status().Offset after Truncate(0) = %d, want 0", st.Offset)
		}
		if got, want := w.Digest(), digest.FromString(""); got != want {
			t.Errorf("Digest() after Truncate(0) = %s, want %s", got, want)
		}
		write(t, w, b)
		if err := w.Commit(t.Context(), desc.Size, desc.Digest); err != nil {
			t.Fatalf("Commit() after Truncate(0) error = %v", err)
		}
		checkBlob(t, s, desc, b)
	}},
	{"a blob of a few MiB streams through Copy", func(t *testing.T, s content.Store) {
		const size = 3<<20 + 12345
		random := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{7}), size) }
		d := digest.Canonical.Digester()
		if _, err := io.Copy(d.Hash(), random()); err != nil {
			t.Fatal(err)
		}
		desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d.Digest(), Size: size}
		w := openWriter(t, s, content.WithRef("large"), content.WithDescriptor(desc))
		if err := content.Copy(t.Context(), w, random(), desc.Size, desc.Digest); err != nil {
			t.Fatalf("Copy() error = %v", err)
		}
		ra, err := s.ReaderAt(t.Context(), desc)
		if err != nil {
			t.Fatalf("ReaderAt() error = %v", err)
		}
		defer ra.Close()
		if ra.Size() != size {
			t.Fatalf("Size() = %d, want %d", ra.Size(), size)
		}
		v := desc.Digest.Verifier()
		if n, err := io.Copy(v, io.NewSectionReader(ra, 0, size)); err != nil || n != size {
			t.Fatalf("reading back: %d bytes, %v; want %d bytes", n, err, size)
		}
		if !v.Verified() {
			t.Error("the bytes read back do not match the digest")
		}
	}},
	{"Writer without a ref is InvalidArgument", func(t *testing.T, s content.Store) {
		_, desc := newBlob("no ref")
		for _, opts := range [][]content.WriterOpt{nil, {content.WithDescriptor(desc)}, {content.WithRef("")}} {
			w, err := s.Writer(t.Context(), opts...)
			if err == nil {
				w.Close()
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Writer(%d options, no ref) error = %v, want InvalidArgument", len(opts), err)
			}
		}
	}},
	{"Writer for a committed descriptor is AlreadyExists", func(t *testing.T, s content.Store) {
		desc := commitBlob(t, s, "committed")
		w, err := s.Writer(t.Context(), content.WithRef("another ref"), content.WithDescriptor(desc))
		if err == nil {
			w.Close()
		}
		if !errdefs.IsAlreadyExists(err) {
			t.Errorf("Writer(WithDescriptor(committed)) error = %v, want AlreadyExists", err)
		}
	}},
	{"Commit labels are recorded", func(t *testing.T, s content.Store) {
		want := map[string]string{"a": "1", "containerd.io/gc.ref.content.l.0": "sha256:x"}
		desc := commitBlob(t, s, "labelled", content.WithLabels(map[string]string{"a": "1"}),
			content.WithLabels(map[string]string{"containerd.io/gc.ref.content.l.0": "sha256:x"}))
		checkLabels(t, s, desc.Digest, want)
	}},
	{"the ref is free again after Commit", func(t *testing.T, s content.Store) {
		b, desc := newBlob("first")
		w := openWriter(t, s, content.WithRef("ref"))
		write(t, w, b)
		if err := w.Commit(t.Context(), desc.Size, desc.Digest); err != nil {
			t.Fatalf("Commit() error = %v", err)
		}
		if _, err := s.Status(t.Context(), "ref"); !errdefs.IsNotFound(err) {
			t.Errorf("Status(ref) after Commit error = %v, want NotFound", err)
		}
		w2 := openWriter(t, s, content.WithRef("ref"))
		st, err := w2.Status()
		if err != nil || st.Offset != 0 {
			t.Errorf("Status() of a new writer for a committed ref = offset %d, %v; want 0, nil", st.Offset, err)
		}
	}},
	{"Close after Commit keeps the blob", func(t *testing.T, s content.Store) {
		b, desc := newBlob("close after commit")
		w := openWriter(t, s, content.WithRef("ref"))
		write(t, w, b)
		if err := w.Commit(t.Context(), desc.Size, desc.Digest); err != nil {
			t.Fatalf("Commit() error = %v", err)
		}
		_ = w.Close() // a store may report that the writer is already released
		checkBlob(t, s, desc, b)
	}},
}

var verifyCases = func() []storeCase {
	const data = "verified content"
	good := digest.FromString(data)
	other := digest.FromString("other content")
	tests := []struct {
		name string
		size int64
		dgst digest.Digest
	}{
		{"size too small commits nothing", int64(len(data)) - 1, ""},
		{"size too large commits nothing", int64(len(data)) + 1, ""},
		{"wrong digest commits nothing", 0, other},
		{"right size and wrong digest commits nothing", int64(len(data)), other},
		{"wrong size and right digest commits nothing", int64(len(data)) + 1, good},
	}
	var cases []storeCase
	for _, tt := range tests {
		cases = append(cases, storeCase{tt.name, func(t *testing.T, s content.Store) {
			w := openWriter(t, s, content.WithRef("ref"))
			write(t, w, []byte(data))
			err := w.Commit(t.Context(), tt.size, tt.dgst)
			var me *content.MismatchError
			if !errors.Is(err, content.ErrDigestMismatch) || !errdefs.IsFailedPrecondition(err) || !errors.As(err, &me) {
				t.Fatalf("Commit(%d, %q) error = %v, want a *content.MismatchError (ErrDigestMismatch, FailedPrecondition)", tt.size, tt.dgst, err)
			}
			if me.ActualSize != int64(len(data)) {
				t.Errorf("MismatchError.ActualSize = %d, want %d", me.ActualSize, len(data))
			}
			checkAbsent(t, s, good)
			checkAbsent(t, s, other)
			if got := walkDigests(t, s); len(got) != 0 {
				t.Errorf("Walk() after a failed Commit = %v, want nothing", got)
			}
			// Commit released the writer: the ref can be opened or aborted.
			w2, err := s.Writer(t.Context(), content.WithRef("ref"))
			if err != nil {
				t.Fatalf("Writer(ref) after a failed Commit error = %v, want the ref released", err)
			}
			w2.Close()
			if err := s.Abort(t.Context(), "ref"); err != nil && !errdefs.IsNotFound(err) {
				t.Errorf("Abort(ref) after a failed Commit error = %v, want nil or NotFound", err)
			}
		}})
	}
	return cases
}()

// abandon writes data[:n] under ref with a writer that it then closes.
func abandon(t *testing.T, s content.Store, ref string, data []byte, desc ocispec.Descriptor, n int) {
	t.Helper()
	w := openWriter(t, s, content.WithRef(ref), content.WithDescriptor(desc))
	write(t, w, data[:n])
	if err := w.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
}

// resumeWriter opens a writer for ref and checks that it resumes at offset.
func resumeWriter(t *testing.T, s content.Store, ref string, desc ocispec.Descriptor, offset int64) content.Writer {
	t.Helper()
	w := openWriter(t, s, content.WithRef(ref), content.WithDescriptor(desc))
	st, err := w.Status()
	if err != nil {
		t.Fatalf("Status() error = %v", err)
	}
	if st.Offset != offset || st.Ref != ref {
		t.Fatalf("Status() of the resumed writer = ref %q, offset %d; want %q, %d", st.Ref, st.Offset, ref, offset)
	}
	return w
}

var resumeCases = []storeCase{
	{"a new writer resumes an abandoned ingest", func(t *testing.T, s content.Store) {
		b, desc := newBlob("the first half|and the second half")
		half := 15
		abandon(t, s, "ref", b, desc, half)
		w := resumeWriter(t, s, "ref", desc, int64(half))
		if got, want := w.Digest(), digest.FromBytes(b[:half]); got != want {
			t.Errorf("Digest() of the resumed writer = %s, want %s (the digest of the first half)", got, want)
		}
		write(t, w, b[half:])
		if err := w.Commit(t.Context(), desc.Size, desc.Digest); err != nil {
			t.Fatalf("Commit() error = %v", err)
		}
		checkBlob(t, s, desc, b)
	}},
	{"WriteBlob resumes an abandoned ingest", func(t *testing.T, s content.Store) {
		b, desc := newBlob("written in two goes")
		abandon(t, s, "ref", b, desc, 7)
		r := &countingReader{r: bytes.NewReader(b)}
		if err := content.WriteBlob(t.Context(), s, "ref", r, desc); err != nil {
			t.Fatalf("WriteBlob() error = %v", err)
		}
		checkBlob(t, s, desc, b)
		if err := content.WriteBlob(t.Context(), s, "ref", bytes.NewReader(b), desc); err != nil {
			t.Errorf("WriteBlob() of a committed blob error = %v, want nil", err)
		}
	}},
	{"Copy resumes by seeking an io.Seeker", func(t *testing.T, s content.Store) {
		b, desc := newBlob("0123456789|resumed by Seek")
		abandon(t, s, "ref", b, desc, 11)
		w := resumeWriter(t, s, "ref", desc, 11)
		r := &seekOnly{r: bytes.NewReader(b)}
		if err := content.Copy(t.Context(), w, r, desc.Size, desc.Digest); err != nil {
			t.Fatalf("Copy() error = %v", err)
		}
		if !slices.Equal(r.seeks, []int64{11}) {
			t.Errorf("Copy() sought %v, want [11]", r.seeks)
		}
		checkBlob(t, s, desc, b)
	}},
	{"Copy resumes through io.ReaderAt", func(t *testing.T, s content.Store) {
		b, desc := newBlob("0123456789|resumed by ReadAt")
		abandon(t, s, "ref", b, desc, 11)
		w := resumeWriter(t, s, "ref", desc, 11)
		if err := content.Copy(t.Context(), w, readAtOnly{bytes.NewReader(b)}, desc.Size, desc.Digest); err != nil {
			t.Fatalf("Copy() error = %v", err)
		}
		checkBlob(t, s, desc, b)
	}},
	{"Copy resumes a plain reader by discarding", func(t *testing.T, s content.Store) {
		b, desc := newBlob("0123456789|resumed by discarding")
		abandon(t, s, "ref", b, desc, 11)
		w := resumeWriter(t, s, "ref", desc, 11)
		r := &countingReader{r: bytes.NewReader(b)}
		if err := content.Copy(t.Context(), w, r, desc.Size, desc.Digest); err != nil {
			t.Fatalf("Copy() error = %v", err)
		}
		if r.n != desc.Size {
			t.Errorf("Copy() read %d bytes, want %d (skipped ones included)", r.n, desc.Size)
		}
		checkBlob(t, s, desc, b)
	}},
	{"Copy with a canceled context commits nothing", func(t *testing.T, s content.Store) {
		b, desc := newBlob("never copied")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		w := openWriter(t, s, content.WithRef("ref"), content.WithDescriptor(desc))
		if err := content.Copy(ctx, w, bytes.NewReader(b), desc.Size, desc.Digest); !errors.Is(err, context.Canceled) {
			t.Errorf("Copy(canceled context) error = %v, want context.Canceled", err)
		}
		checkAbsent(t, s, desc.Digest)
	}},
	{"Copy stops when the context is canceled and a later Copy resumes", func(t *testing.T, s content.Store) {
		b, desc := newBlob("canceled after the first ten bytes")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		w := openWriter(t, s, content.WithRef("ref"), content.WithDescriptor(desc))
		r := &chunkReader{r: bytes.NewReader(b), size: 10, after: cancel}
		if err := content.Copy(ctx, w, r, desc.Size, desc.Digest); !errors.Is(err, context.Canceled) {
			t.Fatalf("Copy() canceled midway error = %v, want context.Canceled", err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close() error = %v", err)
		}
		checkAbsent(t, s, desc.Digest)
		st, err := s.Status(t.Context(), "ref")
		if err != nil || st.Offset != 10 {
			t.Fatalf("Status(ref) after a canceled Copy = offset %d, %v; want 10, nil", st.Offset, err)
		}
		w2 := resumeWriter(t, s, "ref", desc, 10)
		if err := content.Copy(t.Context(), w2, bytes.NewReader(b), desc.Size, desc.Digest); err != nil {
			t.Fatalf("Copy() resuming error = %v", err)
		}
		checkBlob(t, s, desc, b)
	}},
}

var lockCases = []storeCase{
	{"a second writer for a held ref is Unavailable", func(t *testing.T, s content.Store) {
		w := openWriter(t, s, content.WithRef("ref"))
		write(t, w, []byte("held"))
		w2, err := s.Writer(t.Context(), content.WithRef("ref"))
		if err == nil {
			w2.Close()
		}
		if !errdefs.IsUnavailable(err) {
			t.Fatalf("second Writer(ref) error = %v, want Unavailable", err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close() error = %v", err)
		}
		resumeWriter(t, s, "ref", ocispec.Descriptor{}, 4)
	}},
	{"OpenWriter waits until the holder closes", func(t *testing.T, s content.Store) {
		w := openWriter(t, s, content.WithRef("ref"))
		write(t, w, []byte("holder's bytes"))
		probe := newProbe(s)
		res := make(chan writerResult, 1)
		go func() {
			w2, err := content.OpenWriter(t.Context(), probe, content.WithRef("ref"))
			res <- writerResult{w2, err}
		}()
		waitBlocked(t, probe, res)
		if err := w.Close(); err != nil {
			t.Fatalf("Close() error = %v", err)
		}
		r := <-res
		if r.err != nil {
			t.Fatalf("OpenWriter() after Close error = %v", r.err)
		}
		defer r.w.Close()
		st, err := r.w.Status()
		if err != nil || st.Offset != int64(len("holder's bytes")) {
			t.Errorf("Status() of the waiting writer = offset %d, %v; want %d, nil", st.Offset, err, len("holder's bytes"))
		}
	}},
	{"OpenWriter is AlreadyExists once the holder commits", func(t *testing.T, s content.Store) {
		b, desc := newBlob("committed by the holder")
		w := openWriter(t, s, content.WithRef("ref"), content.WithDescriptor(desc))
		write(t, w, b)
		probe := newProbe(s)
		res := make(chan writerResult, 1)
		go func() {
			w2, err := content.OpenWriter(t.Context(), probe, content.WithRef("ref"), content.WithDescriptor(desc))
			res <- writerResult{w2, err}
		}()
		waitBlocked(t, probe, res)
		if err := w.Commit(t.Context(), desc.Size, desc.Digest); err != nil {
			t.Fatalf("Commit() error = %v", err)
		}
		r := <-res
		if r.w != nil {
			r.w.Close()
		}
		if !errdefs.IsAlreadyExists(r.err) {
			t.Errorf("OpenWriter() after the holder committed error = %v, want AlreadyExists", r.err)
		}
		checkBlob(t, s, desc, b)
	}},
	{"OpenWriter stops waiting when the context is canceled", func(t *testing.T, s content.Store) {
		openWriter(t, s, content.WithRef("ref"))
		probe := newProbe(s)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		res := make(chan writerResult, 1)
		go func() {
			w2, err := content.OpenWriter(ctx, probe, content.WithRef("ref"))
			res <- writerResult{w2, err}
		}()
		waitBlocked(t, probe, res)
		cancel()
		r := <-res
		if r.w != nil {
			r.w.Close()
		}
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("OpenWriter() canceled error = %v, want context.Canceled", r.err)
		}
	}},
	{"Abort of a held ref is Unavailable", func(t *testing.T, s content.Store) {
		w := openWriter(t, s, content.WithRef("ref"))
		write(t, w, []byte("held"))
		if err := s.Abort(t.Context(), "ref"); !errdefs.IsUnavailable(err) {
			t.Errorf("Abort(held ref) error = %v, want Unavailable", err)
		}
		st, err := w.Status()
		if err != nil || st.Offset != 4 {
			t.Errorf("Status() after a refused Abort = offset %d, %v; want 4, nil", st.Offset, err)
		}
	}},
	{"writers of one blob under two refs leave one verified copy", func(t *testing.T, s content.Store) {
		b, desc := newBlob("written twice")
		w1 := openWriter(t, s, content.WithRef("ref-1"), content.WithDescriptor(desc))
		w2 := openWriter(t, s, content.WithRef("ref-2"), content.WithDescriptor(desc))
		write(t, w1, b)
		write(t, w2, b)
		if err := w1.Commit(t.Context(), desc.Size, desc.Digest); err != nil {
			t.Fatalf("first Commit() error = %v", err)
		}
		if err := w2.Commit(t.Context(), desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
			t.Fatalf("second Commit() error = %v, want nil or AlreadyExists", err)
		}
		if got := walkDigests(t, s); !slices.Equal(got, sortedDigests(desc)) {
			t.Errorf("Walk() = %v, want exactly one %s", got, desc.Digest)
		}
		checkBlob(t, s, desc, b)
	}},
	{"concurrent WriteBlobs of different blobs all commit", func(t *testing.T, s content.Store) {
		const n = 8
		descs := make([]ocispec.Descriptor, n)
		datas := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			datas[i], descs[i] = newBlob(fmt.Sprintf("blob number %d", i))
			wg.Go(func() {
				errs[i] = content.WriteBlob(t.Context(), s, fmt.Sprintf("ref-%d", i), bytes.NewReader(datas[i]), descs[i])
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("WriteBlob(%d) error = %v", i, errs[i])
			}
			checkBlob(t, s, descs[i], datas[i])
		}
		if got := walkDigests(t, s); !slices.Equal(got, sortedDigests(descs...)) {
			t.Errorf("Walk() = %v, want %v", got, sortedDigests(descs...))
		}
	}},
	{"concurrent WriteBlobs of one blob under one ref all succeed", func(t *testing.T, s content.Store) {
		b, desc := newBlob("everyone writes this")
		const n = 4
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = content.WriteBlob(t.Context(), s, "shared", bytes.NewReader(b), desc) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("WriteBlob() #%d error = %v", i, err)
			}
		}
		if got := walkDigests(t, s); !slices.Equal(got, sortedDigests(desc)) {
			t.Errorf("Walk() = %v, want exactly one %s", got, desc.Digest)
		}
		checkBlob(t, s, desc, b)
	}},
}

var labelCases = []storeCase{
	{"Update without fieldpaths replaces all labels", func(t *testing.T, s content.Store) {
		desc := commitBlob(t, s, "blob", content.WithLabels(map[string]string{"a": "1", "b": "2"}))
		info, err := s.Update(t.Context(), content.Info{Digest: desc.Digest, Labels: map[string]string{"c": "3"}})
		if err != nil {
			t.Fatalf("Update() error = %v", err)
		}
		if want := map[string]string{"c": "3"}; !maps.Equal(info.Labels, want) {
			t.Errorf("Update() returned labels %v, want %v", info.Labels, want)
		}
		checkLabels(t, s, desc.Digest, map[string]string{"c": "3"})
	}},
	{"Update of labels replaces all labels", func(t *testing.T, s content.Store) {
		desc := commitBlob(t, s, "blob", content.WithLabels(map[string]string{"a": "1", "b": "2"}))
		if _, err := s.Update(t.Context(), content.Info{Digest: desc.Digest, Labels: map[string]string{"b": "x"}}, "labels"); err != nil {
			t.Fatalf("Update(labels) error = %v", err)
		}
		checkLabels(t, s, desc.Digest, map[string]string{"b": "x"})
		if _, err := s.Update(t.Context(), content.Info{Digest: desc.Digest}, "labels"); err != nil {
			t.Fatalf("Update(labels, none) error = %v", err)
		}
		checkLabels(t, s, desc.Digest, nil)
	}},
	{"Update of labels.KEY sets one label and keeps the others", func(t *testing.T, s content.Store) {
		desc := commitBlob(t, s, "blob", content.WithLabels(map[string]string{"a": "1", "b": "2"}))
		before := checkLabels(t, s, desc.Digest, map[string]string{"a": "1", "b": "2"})
		info, err := s.Update(t.Context(), content.Info{Digest: desc.Digest, Labels: map[string]string{"a": "new", "b": "ignored", "c": "3"}}, "labels.a", "labels.c")
		if err != nil {
			t.Fatalf("Update(labels.a, labels.c) error = %v", err)
		}
		want := map[string]string{"a": "new", "b": "2", "c": "3"}
		if !maps.Equal(info.Labels, want) {
			t.Errorf("Update() returned labels %v, want %v", info.Labels, want)
		}
		after := checkLabels(t, s, desc.Digest, want)
		if after.UpdatedAt.Before(before.UpdatedAt) {
			t.Errorf("UpdatedAt went back from %v to %v", before.UpdatedAt, after.UpdatedAt)
		}
		if !after.CreatedAt.Equal(before.CreatedAt) {
			t.Errorf("CreatedAt changed from %v to %v", before.CreatedAt, after.CreatedAt)
		}
		if after.Size != desc.Size || after.Digest != desc.Digest {
			t.Errorf("Update changed the blob to %s, %d", after.Digest, after.Size)
		}
	}},
	{"Update of labels.KEY with no value removes it", func(t *testing.T, s content.Store) {
		desc := commitBlob(t, s, "blob", content.WithLabels(map[string]string{"a": "1", "b": "2", "c": "3"}))
		if _, err := s.Update(t.Context(), content.Info{Digest: desc.Digest, Labels: map[string]string{"a": ""}}, "labels.a", "labels.b"); err != nil {
			t.Fatalf("Update(labels.a, labels.b) error = %v", err)
		}
		checkLabels(t, s, desc.Digest, map[string]string{"c": "3"})
		if _, err := s.Update(t.Context(), content.Info{Digest: desc.Digest}, "labels.c"); err != nil {
			t.Fatalf("Update(labels.c) error = %v", err)
		}
		checkLabels(t, s, desc.Digest, nil)
	}},
	{"Update of another field is InvalidArgument and changes nothing", func(t *testing.T, s content.Store) {
		desc := commitBlob(t, s, "blob", content.WithLabels(map[string]string{"a": "1"}))
		for _, fp := range []string{"size", "digest", "labels.", "label.a", ""} {
			_, err := s.Update(t.Context(), content.Info{Digest: desc.Digest, Size: 1, Labels: map[string]string{"a": "2"}}, "labels.a", fp)
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Update(%q) error = %v, want InvalidArgument", fp, err)
			}
		}
		checkLabels(t, s, desc.Digest, map[string]string{"a": "1"})
		checkBlob(t, s, desc, []byte("blob"))
	}},
	{"Update of an unknown blob is NotFound", func(t *testing.T, s content.Store) {
		dgst := digest.FromString("unknown")
		if _, err := s.Update(t.Context(), content.Info{Digest: dgst, Labels: map[string]string{"a": "1"}}); !errdefs.IsNotFound(err) {
			t.Errorf("Update(unknown) error = %v, want NotFound", err)
		}
		checkAbsent(t, s, dgst)
	}},
	{"returned labels are copies", func(t *testing.T, s content.Store) {
		labels := map[string]string{"a": "1"}
		desc := commitBlob(t, s, "blob", content.WithLabels(labels))
		labels["a"] = "changed by the caller"
		info := checkLabels(t, s, desc.Digest, map[string]string{"a": "1"})
		info.Labels["a"] = "changed by the caller"
		checkLabels(t, s, desc.Digest, map[string]string{"a": "1"})
		update := map[string]string{"b": "2"}
		info, err := s.Update(t.Context(), content.Info{Digest: desc.Digest, Labels: update})
		if err != nil {
			t.Fatalf("Update() error = %v", err)
		}
		update["b"] = "changed by the caller"
		info.Labels["b"] = "changed by the caller"
		checkLabels(t, s, desc.Digest, map[string]string{"b": "2"})
	}},
}

var walkCases = []storeCase{
	{"Walk of an empty store visits nothing", func(t *testing.T, s content.Store) {
		if got := walkDigests(t, s); len(got) != 0 {
			t.Errorf("Walk() = %v, want nothing", got)
		}
	}},
	{"Walk filters by label", func(t *testing.T, s content.Store) {
		plain := commitBlob(t, s, "plain")
		red := commitBlob(t, s, "red", content.WithLabels(map[string]string{"color": "red", "size": "s"}))
		blue := commitBlob(t, s, "blue", content.WithLabels(map[string]string{"color": "blue", "size": "s"}))
		tests := []struct {
			name    string
			filters []content.Filter
			want    []digest.Digest
		}{
			{"no filter", nil, sortedDigests(plain, red, blue)},
			{"HasLabel", []content.Filter{content.HasLabel("color")}, sortedDigests(red, blue)},
			{"HasLabel missing", []content.Filter{content.HasLabel("shape")}, nil},
			{"LabelEquals", []content.Filter{content.LabelEquals("color", "red")}, sortedDigests(red)},
			{"all filters must pass", []content.Filter{content.HasLabel("size"), content.LabelEquals("color", "blue")}, sortedDigests(blue)},
			{"no blob passes both", []content.Filter{content.LabelEquals("color", "red"), content.LabelEquals("color", "blue")}, nil},
		}
		for _, tt := range tests {
			if got := walkDigests(t, s, tt.filters...); !slices.Equal(got, tt.want) {
				t.Errorf("Walk(%s) = %v, want %v", tt.name, got, tt.want)
			}
		}
	}},
	{"Walk passes full Info", func(t *testing.T, s content.Store) {
		desc := commitBlob(t, s, "walked", content.WithLabels(map[string]string{"k": "v"}))
		n := 0
		err := s.Walk(t.Context(), func(info content.Info) error {
			n++
			if info.Digest != desc.Digest || info.Size != desc.Size || info.CreatedAt.IsZero() || !maps.Equal(info.Labels, map[string]string{"k": "v"}) {
				t.Errorf("Walk() visited %+v, want digest %s, size %d, CreatedAt set, labels k=v", info, desc.Digest, desc.Size)
			}
			return nil
		})
		if err != nil || n != 1 {
			t.Errorf("Walk() = %d visits, %v; want 1, nil", n, err)
		}
	}},
	{"Walk stops at the first error from fn", func(t *testing.T, s content.Store) {
		for i := range 3 {
			commitBlob(t, s, fmt.Sprintf("blob %d", i))
		}
		stop := errors.New("stop here")
		n := 0
		err := s.Walk(t.Context(), func(content.Info) error { n++; return stop })
		if !errors.Is(err, stop) {
			t.Errorf("Walk() error = %v, want the error fn returned", err)
		}
		if n != 1 {
			t.Errorf("Walk() called fn %d times after it failed, want 1", n)
		}
	}},
	{"Walk does not show ingests", func(t *testing.T, s content.Store) {
		w := openWriter(t, s, content.WithRef("ref"))
		write(t, w, []byte("in progress"))
		if got := walkDigests(t, s); len(got) != 0 {
			t.Errorf("Walk() = %v, want nothing", got)
		}
	}},
}

var deleteCases = []storeCase{
	{"Delete removes the blob and keeps the others", func(t *testing.T, s content.Store) {
		gone := commitBlob(t, s, "deleted", content.WithLabels(map[string]string{"a": "1"}))
		kept := commitBlob(t, s, "kept")
		if err := s.Delete(t.Context(), gone.Digest); err != nil {
			t.Fatalf("Delete() error = %v", err)
		}
		checkAbsent(t, s, gone.Digest)
		checkBlob(t, s, kept, []byte("kept"))
		if got := walkDigests(t, s); !slices.Equal(got, sortedDigests(kept)) {
			t.Errorf("Walk() after Delete = %v, want %v", got, sortedDigests(kept))
		}
	}},
	{"Delete of an unknown blob is NotFound", func(t *testing.T, s content.Store) {
		desc := commitBlob(t, s, "deleted twice")
		if err := s.Delete(t.Context(), desc.Digest); err != nil {
			t.Fatalf("first Delete() error = %v", err)
		}
		if err := s.Delete(t.Context(), desc.Digest); !errdefs.IsNotFound(err) {
			t.Errorf("second Delete() error = %v, want NotFound", err)
		}
		if err := s.Delete(t.Context(), digest.FromString("never written")); !errdefs.IsNotFound(err) {
			t.Errorf("Delete(never written) error = %v, want NotFound", err)
		}
	}},
	{"a deleted blob can be written again without its labels", func(t *testing.T, s content.Store) {
		desc := commitBlob(t, s, "again", content.WithLabels(map[string]string{"a": "1"}))
		if err := s.Delete(t.Context(), desc.Digest); err != nil {
			t.Fatalf("Delete() error = %v", err)
		}
		if err := content.WriteBlob(t.Context(), s, "again", bytes.NewReader([]byte("again")), desc); err != nil {
			t.Fatalf("WriteBlob() after Delete error = %v", err)
		}
		checkBlob(t, s, desc, []byte("again"))
		checkLabels(t, s, desc.Digest, nil)
	}},
}

var ingestCases = []storeCase{
	{"Status of an unknown ref is NotFound", func(t *testing.T, s content.Store) {
		if _, err := s.Status(t.Context(), "unknown"); !errdefs.IsNotFound(err) {
			t.Errorf("Status(unknown) error = %v, want NotFound", err)
		}
	}},
	{"Status reports ref, offset, total, expected and start", func(t *testing.T, s content.Store) {
		b, desc := newBlob("status of this")
		w := openWriter(t, s, content.WithRef("ref"), content.WithDescriptor(desc))
		write(t, w, b[:6])
		ws, err := w.Status()
		if err != nil {
			t.Fatalf("Writer.Status() error = %v", err)
		}
		ss, err := s.Status(t.Context(), "ref")
		if err != nil {
			t.Fatalf("Store.Status() error = %v", err)
		}
		for name, st := range map[string]content.Status{"Writer.Status()": ws, "Store.Status()": ss} {
			if st.Ref != "ref" || st.Offset != 6 || st.Total != desc.Size || st.Expected != desc.Digest {
				t.Errorf("%s = ref %q, offset %d, total %d, expected %s; want %q, 6, %d, %s",
					name, st.Ref, st.Offset, st.Total, st.Expected, "ref", desc.Size, desc.Digest)
			}
			if st.StartedAt.IsZero() || st.UpdatedAt.IsZero() {
				t.Errorf("%s StartedAt = %v, UpdatedAt = %v; want both set", name, st.StartedAt, st.UpdatedAt)
			}
		}
	}},
	{"an ingest outlives its writer", func(t *testing.T, s content.Store) {
		w := openWriter(t, s, content.WithRef("ref"))
		write(t, w, []byte("kept after Close"))
		if err := w.Close(); err != nil {
			t.Fatalf("Close() error = %v", err)
		}
		st, err := s.Status(t.Context(), "ref")
		if err != nil || st.Offset != int64(len("kept after Close")) {
			t.Errorf("Status(ref) after Close = offset %d, %v; want %d, nil", st.Offset, err, len("kept after Close"))
		}
	}},
	{"ListStatuses filters by prefix", func(t *testing.T, s content.Store) {
		for _, ref := range []string{"a/1", "a/2", "b/1", "ab"} {
			w := openWriter(t, s, content.WithRef(ref))
			write(t, w, []byte(ref))
		}
		tests := []struct {
			prefixes []string
			want     []string
		}{
			{nil, []string{"a/1", "a/2", "ab", "b/1"}},
			{[]string{"a/"}, []string{"a/1", "a/2"}},
			{[]string{"a"}, []string{"a/1", "a/2", "ab"}},
			{[]string{"a/", "b/"}, []string{"a/1", "a/2", "b/1"}},
			{[]string{"b/1"}, []string{"b/1"}},
			{[]string{"c"}, nil},
		}
		for _, tt := range tests {
			sts, err := s.ListStatuses(t.Context(), tt.prefixes...)
			if err != nil {
				t.Fatalf("ListStatuses(%q) error = %v", tt.prefixes, err)
			}
			var got []string
			for _, st := range sts {
				got = append(got, st.Ref)
				if st.Offset != int64(len(st.Ref)) {
					t.Errorf("ListStatuses(%q): %q has offset %d, want %d", tt.prefixes, st.Ref, st.Offset, len(st.Ref))
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListStatuses(%q) = %q, want %q", tt.prefixes, got, tt.want)
			}
		}
	}},
	{"ListStatuses forgets committed ingests", func(t *testing.T, s content.Store) {
		commitBlob(t, s, "committed")
		w := openWriter(t, s, content.WithRef("open"))
		write(t, w, []byte("x"))
		sts, err := s.ListStatuses(t.Context())
		if err != nil {
			t.Fatalf("ListStatuses() error = %v", err)
		}
		if len(sts) != 1 || sts[0].Ref != "open" {
			t.Errorf("ListStatuses() = %+v, want only the ref \"open\"", sts)
		}
	}},
	{"Abort discards the ingest", func(t *testing.T, s content.Store) {
		b, desc := newBlob("aborted")
		abandon(t, s, "ref", b, desc, 4)
		if err := s.Abort(t.Context(), "ref"); err != nil {
			t.Fatalf("Abort() error = %v", err)
		}
		if _, err := s.Status(t.Context(), "ref"); !errdefs.IsNotFound(err) {
			t.Errorf("Status(ref) after Abort error = %v, want NotFound", err)
		}
		if sts, err := s.ListStatuses(t.Context()); err != nil || len(sts) != 0 {
			t.Errorf("ListStatuses() after Abort = %+v, %v; want none", sts, err)
		}
		checkAbsent(t, s, desc.Digest)
		resumeWriter(t, s, "ref", desc, 0)
	}},
	{"Abort of an unknown ref is NotFound", func(t *testing.T, s content.Store) {
		if err := s.Abort(t.Context(), "unknown"); !errdefs.IsNotFound(err) {
			t.Errorf("Abort(unknown) error = %v, want NotFound", err)
		}
		b, desc := newBlob("aborted twice")
		abandon(t, s, "ref", b, desc, 3)
		if err := s.Abort(t.Context(), "ref"); err != nil {
			t.Fatalf("first Abort() error = %v", err)
		}
		if err := s.Abort(t.Context(), "ref"); !errdefs.IsNotFound(err) {
			t.Errorf("second Abort() error = %v, want NotFound", err)
		}
	}},
}
