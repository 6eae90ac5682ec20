package content_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"math"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
)

func descOf(s string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString(s), Size: int64(len(s))}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// endless returns 'x' forever.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// failingReader returns some bytes, then err.
type failingReader struct {
	data string
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReadAll(t *testing.T) {
	errBroken := errors.New("broken pipe")
	sha512 := ocispec.Descriptor{Digest: digest.SHA512.FromString("hello"), Size: 5}
	tests := []struct {
		name    string
		r       io.Reader
		desc    ocispec.Descriptor
		want    string
		wantErr error
	}{
		{"ok", strings.NewReader("hello"), descOf("hello"), "hello", nil},
		{"empty", strings.NewReader(""), descOf(""), "", nil},
		{"sha512", strings.NewReader("hello"), sha512, "hello", nil},
		{"short", strings.NewReader("hell"), descOf("hello"), "", content.ErrDigestMismatch},
		{"long", strings.NewReader("hello!"), descOf("hello"), "", content.ErrDigestMismatch},
		{"endless", endless{}, descOf("hello"), "", content.ErrDigestMismatch},
		{"tampered", strings.NewReader("jello"), descOf("hello"), "", content.ErrDigestMismatch},
		{"tampered sha512", strings.NewReader("jello"), sha512, "", content.ErrDigestMismatch},
		{"empty digest", strings.NewReader("hello"), ocispec.Descriptor{Size: 5}, "", errdefs.ErrInvalidArgument},
		{"invalid digest", strings.NewReader("hello"), ocispec.Descriptor{Digest: "sha256:hello", Size: 5}, "", errdefs.ErrInvalidArgument},
		{"unknown algorithm", strings.NewReader("hello"), ocispec.Descriptor{Digest: "md5:5d41402abc4b2a76b9719d911017c592", Size: 5}, "", errdefs.ErrInvalidArgument},
		{"negative size", strings.NewReader("hello"), ocispec.Descriptor{Digest: digest.FromString("hello"), Size: -1}, "", errdefs.ErrInvalidArgument},
		{"reader error", &failingReader{"hel", errBroken}, descOf("hello"), "", errBroken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := content.ReadAll(tt.r, tt.desc)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadAll() error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && string(got) != tt.want {
				t.Errorf("ReadAll() = %q, want %q", got, tt.want)
			}
			if err != nil && got != nil {
				t.Errorf("ReadAll() returned %q with error %v, want nil", got, err)
			}
			if errors.Is(err, content.ErrDigestMismatch) && !errdefs.IsFailedPrecondition(err) {
				t.Errorf("ReadAll() error %v is not FailedPrecondition", err)
			}
		})
	}
}

func TestReadAllReadsAtMostOnePastSize(t *testing.T) {
	r := &countingReader{r: endless{}}
	_, err := content.ReadAll(r, descOf("hello"))
	var me *content.MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("ReadAll() error = %v, want a *MismatchError", err)
	}
	if r.n != 6 || me.ActualSize != 6 || me.ExpectedSize != 5 {
		t.Errorf("ReadAll() read %d bytes, reported %d of %d; want 6 of 5", r.n, me.ActualSize, me.ExpectedSize)
	}
}

func TestMismatchErrorFields(t *testing.T) {
	_, err := content.ReadAll(strings.NewReader("jello"), descOf("hello"))
	var me *content.MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("ReadAll() error = %v, want a *MismatchError", err)
	}
	if me.Expected != digest.FromString("hello") || me.Actual != digest.FromString("jello") || me.ActualSize != 5 {
		t.Errorf("MismatchError = %+v, want expected hello, actual jello, 5 bytes", me)
	}
	if !strings.Contains(me.Error(), me.Actual.String()) || !strings.Contains(me.Error(), me.Expected.String()) {
		t.Errorf("Error() = %q, want both digests", me.Error())
	}
}

// providerFunc adapts a function to content.Provider.
type providerFunc func(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error)

func (f providerFunc) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	return f(ctx, desc)
}

// bytesReaderAt serves fixed bytes, whatever blob was asked for.
type bytesReaderAt struct{ *bytes.Reader }

func (bytesReaderAt) Close() error { return nil }

func TestReadBlob(t *testing.T) {
	ctx := t.Context()
	store := memory.New()
	small := descOf("small blob")
	if err := content.WriteBlob(ctx, store, "small", strings.NewReader("small blob"), small); err != nil {
		t.Fatal(err)
	}
	tampering := providerFunc(func(context.Context, ocispec.Descriptor) (content.ReaderAt, error) {
		return bytesReaderAt{bytes.NewReader([]byte("small blub"))}, nil
	})
	tests := []struct {
		name      string
		p         content.Provider
		desc      ocispec.Descriptor
		limit     int64
		want      string
		wantErr   error
		wantLimit int64
	}{
		{"ok", store, small, 0, "small blob", nil, 0},
		{"ok at the limit", store, small, small.Size, "small blob", nil, 0},
		{"over the limit", store, small, small.Size - 1, "", content.ErrTooLarge, small.Size - 1},
		{"over the default limit", store, ocispec.Descriptor{Digest: small.Digest, Size: content.DefaultReadLimit + 1}, 0, "", content.ErrTooLarge, content.DefaultReadLimit},
		{"negative limit means the default", store, ocispec.Descriptor{Digest: small.Digest, Size: content.DefaultReadLimit + 1}, -1, "", content.ErrTooLarge, content.DefaultReadLimit},
		{"missing", store, descOf("missing"), 0, "", errdefs.ErrNotFound, 0},
		{"tampered", tampering, small, 0, "", content.ErrDigestMismatch, 0},
		{"wrong size in descriptor", store, ocispec.Descriptor{Digest: small.Digest, Size: small.Size + 1}, 0, "", content.ErrDigestMismatch, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := content.ReadBlob(ctx, tt.p, tt.desc, tt.limit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadBlob() error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && string(got) != tt.want {
				t.Errorf("ReadBlob() = %q, want %q", got, tt.want)
			}
			if tt.wantLimit != 0 {
				var le *content.LimitError
				if !errors.As(err, &le) || le.Limit != tt.wantLimit || le.Got != tt.desc.Size {
					t.Errorf("ReadBlob() error = %#v, want a *LimitError with limit %d, got %d", err, tt.wantLimit, tt.desc.Size)
				}
				if !errdefs.IsResourceExhausted(err) {
					t.Errorf("ReadBlob() error %v is not ResourceExhausted", err)
				}
			}
		})
	}
}

func TestReadBlobChecksLimitBeforeOpening(t *testing.T) {
	opened := false
	p := providerFunc(func(context.Context, ocispec.Descriptor) (content.ReaderAt, error) {
		opened = true
		return nil, errdefs.ErrNotFound
	})
	_, err := content.ReadBlob(t.Context(), p, ocispec.Descriptor{Digest: digest.FromString("x"), Size: 100}, 10)
	if !errors.Is(err, content.ErrTooLarge) || opened {
		t.Errorf("ReadBlob() = %v, opened %v; want ErrTooLarge without opening", err, opened)
	}
}

// seekOnly records Seek calls and has no ReadAt.
type seekOnly struct {
	r     *strings.Reader
	seeks int
}

func (s *seekOnly) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *seekOnly) Seek(off int64, whence int) (int64, error) {
	s.seeks++
	return s.r.Seek(off, whence)
}

// readAtOnly fails on Read, so only ReadAt can serve a resumed copy.
type readAtOnly struct{ r *strings.Reader }

func (readAtOnly) Read([]byte) (int, error)                  { return 0, errors.New("Read called") }
func (r readAtOnly) ReadAt(p []byte, off int64) (int, error) { return r.r.ReadAt(p, off) }

// abandonIngest leaves n bytes of data under ref with a closed writer.
func abandonIngest(t *testing.T, s content.Store, ref, data string, desc ocispec.Descriptor) {
	t.Helper()
	w, err := s.Writer(t.Context(), content.WithRef(ref), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCopy(t *testing.T) {
	const blob = "0123456789abcdefghijklmnopqrstuvwxyz"
	desc := descOf(blob)
	tests := []struct {
		name     string
		ingested string // left in the ingest before Copy
		r        func() io.Reader
		size     int64
		dgst     digest.Digest
		wantErr  error
		check    func(t *testing.T, r io.Reader)
	}{
		{"fresh", "", func() io.Reader { return strings.NewReader(blob) }, desc.Size, desc.Digest, nil, nil},
		{"unknown size and digest", "", func() io.Reader { return strings.NewReader(blob) }, 0, "", nil, nil},
		{"resume by seeking", blob[:10], func() io.Reader { return &seekOnly{r: strings.NewReader(blob)} }, desc.Size, desc.Digest, nil,
			func(t *testing.T, r io.Reader) {
				if r.(*seekOnly).seeks != 1 {
					t.Errorf("Copy() sought %d times, want 1", r.(*seekOnly).seeks)
				}
			}},
		{"resume by ReadAt", blob[:10], func() io.Reader { return readAtOnly{strings.NewReader(blob)} }, desc.Size, desc.Digest, nil, nil},
		{"resume by discarding", blob[:10], func() io.Reader { return &countingReader{r: strings.NewReader(blob)} }, desc.Size, desc.Digest, nil,
			func(t *testing.T, r io.Reader) {
				if n := r.(*countingReader).n; n != desc.Size {
					t.Errorf("Copy() read %d bytes, want %d", n, desc.Size)
				}
			}},
		{"resume with unknown size discards", blob[:10], func() io.Reader { return &countingReader{r: strings.NewReader(blob)} }, 0, desc.Digest, nil, nil},
		{"resume at the end", blob, func() io.Reader { return strings.NewReader(blob) }, desc.Size, desc.Digest, nil, nil},
		{"ingest longer than the blob restarts", blob + "garbage", func() io.Reader { return strings.NewReader(blob) }, desc.Size, desc.Digest, nil, nil},
		{"source shorter than the ingest", blob[:10], func() io.Reader { return &countingReader{r: strings.NewReader(blob[:5])} }, desc.Size, desc.Digest, io.ErrUnexpectedEOF, nil},
		{"over-long source is read one byte past size", "", func() io.Reader { return &countingReader{r: endless{}} }, desc.Size, desc.Digest, content.ErrDigestMismatch,
			func(t *testing.T, r io.Reader) {
				if n := r.(*countingReader).n; n != desc.Size+1 {
					t.Errorf("Copy() read %d bytes, want %d", n, desc.Size+1)
				}
			}},
		{"tampered source", "", func() io.Reader { return strings.NewReader(strings.ToUpper(blob)) }, desc.Size, desc.Digest, content.ErrDigestMismatch, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := memory.New()
			if tt.ingested != "" {
				abandonIngest(t, s, "ref", tt.ingested, desc)
			}
			w, err := s.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(ocispec.Descriptor{Digest: tt.dgst, Size: tt.size}))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			r := tt.r()
			err = content.Copy(ctx, w, r, tt.size, tt.dgst)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Copy() error = %v, want %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
			_, infoErr := s.Info(ctx, desc.Digest)
			if tt.wantErr == nil && infoErr != nil {
				t.Errorf("Info() after Copy error = %v, want the blob committed", infoErr)
			}
			if tt.wantErr != nil && !errdefs.IsNotFound(infoErr) {
				t.Errorf("Info() after a failed Copy error = %v, want NotFound", infoErr)
			}
		})
	}
}

func TestCopyAlreadyExistsIsSuccess(t *testing.T) {
	ctx := t.Context()
	s := memory.New()
	desc := descOf("committed meanwhile")
	late, err := s.Writer(ctx, content.WithRef("late"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if err := content.WriteBlob(ctx, s, "early", strings.NewReader("committed meanwhile"), desc); err != nil {
		t.Fatal(err)
	}
	if err := content.Copy(ctx, late, strings.NewReader("committed meanwhile"), desc.Size, desc.Digest); err != nil {
		t.Errorf("Copy() of a blob committed meanwhile error = %v, want nil", err)
	}
	if err := content.WriteBlob(ctx, s, "again", strings.NewReader("not read"), desc); err != nil {
		t.Errorf("WriteBlob() of a present blob error = %v, want nil", err)
	}
}

func TestCopyCanceled(t *testing.T) {
	s := memory.New()
	desc := descOf("canceled")
	w, err := s.Writer(t.Context(), content.WithRef("ref"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := content.Copy(ctx, w, strings.NewReader("canceled"), desc.Size, desc.Digest); !errors.Is(err, context.Canceled) {
		t.Errorf("Copy(canceled) error = %v, want context.Canceled", err)
	}
}

func TestApplyUpdate(t *testing.T) {
	have := map[string]string{"a": "1", "b": "2"}
	tests := []struct {
		name       string
		labels     map[string]string
		fieldpaths []string
		want       map[string]string
		wantErr    error
	}{
		{"no fieldpaths replaces all", map[string]string{"c": "3"}, nil, map[string]string{"c": "3"}, nil},
		{"no fieldpaths and no labels clears", nil, nil, nil, nil},
		{"labels replaces all", map[string]string{"b": "x"}, []string{"labels"}, map[string]string{"b": "x"}, nil},
		{"labels.KEY sets one", map[string]string{"a": "new", "b": "ignored"}, []string{"labels.a"}, map[string]string{"a": "new", "b": "2"}, nil},
		{"labels.KEY adds one", map[string]string{"c": "3"}, []string{"labels.c"}, map[string]string{"a": "1", "b": "2", "c": "3"}, nil},
		{"labels.KEY with empty value removes", map[string]string{"a": ""}, []string{"labels.a"}, map[string]string{"b": "2"}, nil},
		{"labels.KEY absent removes", nil, []string{"labels.a", "labels.b"}, nil, nil},
		{"labels.KEY with dots", map[string]string{"containerd.io/gc.ref": "x"}, []string{"labels.containerd.io/gc.ref"}, map[string]string{"a": "1", "b": "2", "containerd.io/gc.ref": "x"}, nil},
		{"labels then labels.KEY", map[string]string{"c": "3", "d": "4"}, []string{"labels", "labels.c"}, map[string]string{"c": "3", "d": "4"}, nil},
		{"empty key", nil, []string{"labels."}, nil, errdefs.ErrInvalidArgument},
		{"other field", nil, []string{"size"}, nil, errdefs.ErrInvalidArgument},
		{"empty fieldpath", nil, []string{""}, nil, errdefs.ErrInvalidArgument},
		{"bad field after a good one", map[string]string{"a": "x"}, []string{"labels.a", "digest"}, nil, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(have)
			got, err := content.ApplyUpdate(have, content.Info{Digest: digest.FromString("x"), Labels: tt.labels}, tt.fieldpaths...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ApplyUpdate() error = %v, want %v", err, tt.wantErr)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("ApplyUpdate() = %v, want %v", got, tt.want)
			}
			if !maps.Equal(have, before) {
				t.Errorf("ApplyUpdate() changed its input to %v", have)
			}
			if got != nil && tt.labels != nil {
				got["mutated"] = "yes"
				if _, ok := tt.labels["mutated"]; ok {
					t.Error("ApplyUpdate() returned the caller's labels map, want a copy")
				}
			}
		})
	}
}

func TestApplyImageUpdate(t *testing.T) {
	oldTarget := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("old"), Size: 3}
	newTarget := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("new"), Size: 4}
	have := content.Image{Name: "app:1", Target: oldTarget, Labels: map[string]string{"a": "1", "b": "2"}}
	tests := []struct {
		name       string
		update     content.Image
		fieldpaths []string
		wantTarget ocispec.Descriptor
		wantLabels map[string]string
		wantErr    error
	}{
		{"no fieldpaths replaces target and labels", content.Image{Target: newTarget, Labels: map[string]string{"c": "3"}}, nil, newTarget, map[string]string{"c": "3"}, nil},
		{"target", content.Image{Target: newTarget, Labels: map[string]string{"c": "3"}}, []string{"target"}, newTarget, have.Labels, nil},
		{"labels", content.Image{Target: newTarget, Labels: map[string]string{"c": "3"}}, []string{"labels"}, oldTarget, map[string]string{"c": "3"}, nil},
		{"labels.KEY", content.Image{Labels: map[string]string{"a": "x", "b": "ignored"}}, []string{"labels.a"}, oldTarget, map[string]string{"a": "x", "b": "2"}, nil},
		{"labels.KEY removes", content.Image{}, []string{"labels.a"}, oldTarget, map[string]string{"b": "2"}, nil},
		{"other field", content.Image{Name: "renamed"}, []string{"name"}, ocispec.Descriptor{}, nil, errdefs.ErrInvalidArgument},
		{"invalid target", content.Image{Target: ocispec.Descriptor{Digest: "bad", MediaType: "x"}}, []string{"target"}, ocispec.Descriptor{}, nil, errdefs.ErrInvalidArgument},
		{"target without media type", content.Image{Target: ocispec.Descriptor{Digest: digest.FromString("x")}}, nil, ocispec.Descriptor{}, nil, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := content.ApplyImageUpdate(have, tt.update, tt.fieldpaths...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ApplyImageUpdate() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.Name != have.Name || got.Target.Digest != tt.wantTarget.Digest || got.Target.MediaType != tt.wantTarget.MediaType || !maps.Equal(got.Labels, tt.wantLabels) {
				t.Errorf("ApplyImageUpdate() = %+v, want name %q, target %v, labels %v", got, have.Name, tt.wantTarget, tt.wantLabels)
			}
			if len(got.Labels) > 0 {
				for k := range got.Labels {
					got.Labels[k] = "mutated"
				}
				if have.Labels["a"] != "1" || have.Labels["b"] != "2" {
					t.Errorf("ApplyImageUpdate() result shares its labels map with have: %v", have.Labels)
				}
			}
		})
	}
}

func TestValidateImage(t *testing.T) {
	valid := content.Image{Name: "app:1", Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}}
	tests := []struct {
		name    string
		change  func(*content.Image)
		wantErr error
	}{
		{"valid", func(*content.Image) {}, nil},
		{"zero size", func(img *content.Image) { img.Target.Size = 0 }, nil},
		{"empty name", func(img *content.Image) { img.Name = "" }, errdefs.ErrInvalidArgument},
		{"no digest", func(img *content.Image) { img.Target.Digest = "" }, errdefs.ErrInvalidArgument},
		{"bad digest", func(img *content.Image) { img.Target.Digest = "sha256:zz" }, errdefs.ErrInvalidArgument},
		{"no media type", func(img *content.Image) { img.Target.MediaType = "" }, errdefs.ErrInvalidArgument},
		{"negative size", func(img *content.Image) { img.Target.Size = -1 }, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := valid
			tt.change(&img)
			if err := content.ValidateImage(img); !errors.Is(err, tt.wantErr) {
				t.Errorf("ValidateImage() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestApplyOpts(t *testing.T) {
	desc := descOf("x")
	wo, err := content.ApplyWriterOpts(content.WithRef("first"), content.WithDescriptor(desc), content.WithRef("last"))
	if err != nil || wo.Ref != "last" || wo.Desc.Digest != desc.Digest {
		t.Errorf("ApplyWriterOpts() = %+v, %v; want ref last and the descriptor", wo, err)
	}
	errOpt := errors.New("bad option")
	if _, err := content.ApplyWriterOpts(content.WithRef("r"), func(*content.WriterOpts) error { return errOpt }); !errors.Is(err, errOpt) {
		t.Errorf("ApplyWriterOpts(failing option) error = %v, want %v", err, errOpt)
	}

	start := map[string]string{"keep": "1", "over": "old"}
	info, err := content.ApplyCommitOpts(content.Info{Labels: start},
		content.WithLabels(map[string]string{"over": "new", "add": "2"}), content.WithLabels(nil))
	want := map[string]string{"keep": "1", "over": "new", "add": "2"}
	if err != nil || !maps.Equal(info.Labels, want) {
		t.Errorf("ApplyCommitOpts() labels = %v, %v; want %v", info.Labels, err, want)
	}
	if start["over"] != "old" || len(start) != 2 {
		t.Errorf("ApplyCommitOpts() changed the caller's labels to %v", start)
	}
	if _, err := content.ApplyCommitOpts(content.Info{}, func(*content.Info) error { return errOpt }); !errors.Is(err, errOpt) {
		t.Errorf("ApplyCommitOpts(failing option) error = %v, want %v", err, errOpt)
	}
}

func TestFilters(t *testing.T) {
	info := content.Info{Labels: map[string]string{"k": "v", "empty": ""}}
	tests := []struct {
		name   string
		filter content.Filter
		info   content.Info
		want   bool
	}{
		{"HasLabel present", content.HasLabel("k"), info, true},
		{"HasLabel empty value", content.HasLabel("empty"), info, true},
		{"HasLabel absent", content.HasLabel("x"), info, false},
		{"HasLabel no labels", content.HasLabel("k"), content.Info{}, false},
		{"LabelEquals match", content.LabelEquals("k", "v"), info, true},
		{"LabelEquals other value", content.LabelEquals("k", "w"), info, false},
		{"LabelEquals empty value", content.LabelEquals("empty", ""), info, true},
		{"LabelEquals absent with empty value", content.LabelEquals("x", ""), info, false},
	}
	for _, tt := range tests {
		if got := tt.filter(tt.info); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	me := &content.MismatchError{Expected: digest.FromString("a"), Actual: digest.FromString("b"), ExpectedSize: 1, ActualSize: 1}
	le := &content.LimitError{What: "manifest", Limit: 10, Got: 11}
	tests := []struct {
		name  string
		err   error
		is    []error
		isnt  []error
		words []string
	}{
		{"MismatchError", me, []error{content.ErrDigestMismatch, errdefs.ErrFailedPrecondition}, []error{content.ErrTooLarge}, []string{"digest mismatch"}},
		{"size MismatchError", &content.MismatchError{Expected: digest.FromString("a"), ExpectedSize: 2, ActualSize: 1}, []error{content.ErrDigestMismatch}, nil, []string{"size mismatch", "1 bytes", "want 2"}},
		{"LimitError", le, []error{content.ErrTooLarge, errdefs.ErrResourceExhausted}, []error{content.ErrDigestMismatch}, []string{"manifest", "11", "10"}},
	}
	for _, tt := range tests {
		wrapped := errors.Join(errors.New("context"), tt.err)
		for _, target := range tt.is {
			if !errors.Is(wrapped, target) {
				t.Errorf("%s: errors.Is(err, %v) = false, want true", tt.name, target)
			}
		}
		for _, target := range tt.isnt {
			if errors.Is(wrapped, target) {
				t.Errorf("%s: errors.Is(err, %v) = true, want false", tt.name, target)
			}
		}
		for _, w := range tt.words {
			if !strings.Contains(tt.err.Error(), w) {
				t.Errorf("%s: Error() = %q, want it to contain %q", tt.name, tt.err.Error(), w)
			}
		}
	}
}

func TestReadAllHugeSizeDoesNotPanic(t *testing.T) {
	desc := ocispec.Descriptor{Digest: digest.FromString("x"), Size: math.MaxInt64}
	if _, err := content.ReadAll(strings.NewReader("x"), desc); !errors.Is(err, content.ErrDigestMismatch) {
		t.Fatalf("ReadAll() error = %v, want ErrDigestMismatch", err)
	}
}

func TestWriteBlobLabelsExistingBlob(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString("hello"), Size: 5}
	if err := content.WriteBlob(ctx, s, "a", strings.NewReader("hello"), desc); err != nil {
		t.Fatal(err)
	}
	if err := content.WriteBlob(ctx, s, "b", strings.NewReader("hello"), desc, content.WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatalf("WriteBlob() of an existing blob: %v", err)
	}
	info, err := s.Info(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Labels["k"] != "v" {
		t.Fatalf("labels = %v, want k=v added to the existing blob", info.Labels)
	}
}

// teeRecorder records what a tee is given, and fails the writes after the
// first failAfter bytes when failAfter > 0.
type teeRecorder struct {
	got       bytes.Buffer
	failAfter int
}

func (r *teeRecorder) Write(p []byte) (int, error) {
	if r.failAfter > 0 && r.got.Len()+len(p) > r.failAfter {
		return 0, errors.New("tee is full")
	}
	return r.got.Write(p)
}

func TestCopyTee(t *testing.T) {
	const blob = "0123456789abcdefghijklmnopqrstuvwxyz"
	desc := descOf(blob)
	tests := []struct {
		name     string
		ingested string // left in the ingest before Copy
		tee      *teeRecorder
		off      bool // a nil tee over the recorder
		want     string
	}{
		{"fresh", "", &teeRecorder{}, false, blob},
		{"resumed ingest is not teed", blob[:10], &teeRecorder{}, false, ""},
		{"longer ingest restarts, teed", blob + "garbage", &teeRecorder{}, false, blob},
		{"failing tee ends, Copy goes on", "", &teeRecorder{failAfter: 1}, false, blob[:1]},
		{"nil tee turns it off", "", &teeRecorder{}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := content.WithTee(t.Context(), tt.tee)
			if tt.off {
				ctx = content.WithTee(ctx, nil)
			}
			s := memory.New()
			if tt.ingested != "" {
				abandonIngest(t, s, "ref", tt.ingested, desc)
			}
			w, err := s.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(desc))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			// One byte per read, so that a failing tee fails after the first.
			if err := content.Copy(ctx, w, iotest.OneByteReader(strings.NewReader(blob)), desc.Size, desc.Digest); err != nil {
				t.Fatalf("Copy() error = %v", err)
			}
			if got := tt.tee.got.String(); got != tt.want {
				t.Errorf("tee got %q, want %q", got, tt.want)
			}
			if _, err := s.Info(ctx, desc.Digest); err != nil {
				t.Errorf("Info() after Copy error = %v, want the blob committed", err)
			}
		})
	}
}
