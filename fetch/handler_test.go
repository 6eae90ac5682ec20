package fetch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/local"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
)

// stores lists the content stores the handler tests run against.
func stores(t *testing.T) map[string]func() content.Store {
	return map[string]func() content.Store{
		"memory": func() content.Store { return memory.New() },
		"local": func() content.Store {
			s, err := local.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func TestHandlerCopiesAndSkips(t *testing.T) {
	blob, desc := newBlob(4<<20+5, 30)
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			reg := newRegistry(t, blob, desc)
			cs := newStore()
			ev := &events{t: t}
			h := fetch.Handler(cs, reg.repo(), fetch.WithProgress(ev.observe))
			children, err := h.Handle(t.Context(), desc)
			if err != nil || len(children) != 0 {
				t.Fatalf("Handle = %v, %v; want no children, nil", children, err)
			}
			got, err := content.ReadBlob(t.Context(), cs, desc, desc.Size)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, blob)
			if s := ev.of(fetch.Started); len(s) != 1 || s[0].Offset != 0 || s[0].Total != desc.Size {
				t.Errorf("Started events = %+v, want one at 0", s)
			}
			if c := ev.of(fetch.Committed); len(c) != 1 || c[0].Offset != desc.Size || c[0].Desc.Digest != desc.Digest {
				t.Errorf("Committed events = %+v, want one for the blob", c)
			}
			progress := ev.of(fetch.Progress)
			if len(progress) < 2 {
				// One per MiB written, and a write is at most 1 MiB.
				t.Errorf("%d Progress events for 4 MiB, want at least 2", len(progress))
			}
			for i := 1; i < len(progress); i++ {
				if progress[i].Offset <= progress[i-1].Offset || progress[i].Offset > desc.Size {
					t.Errorf("Progress offsets %d then %d: want increasing, within the blob", progress[i-1].Offset, progress[i].Offset)
				}
			}

			// Again: the store has it, nothing is fetched.
			before := len(reg.requests())
			if _, err := h.Handle(t.Context(), desc); err != nil {
				t.Fatal(err)
			}
			if n := len(reg.requests()) - before; n != 0 {
				t.Errorf("%d requests for a blob the store has, want 0", n)
			}
			if s := ev.of(fetch.Skipped); len(s) != 1 {
				t.Errorf("%d Skipped events, want 1", len(s))
			}
		})
	}
}

// TestHandlerResumesIngest leaves half a blob in an ingest, as a crashed
// pull would, and checks that the handler's first request asks for the
// other half only.
func TestHandlerResumesIngest(t *testing.T) {
	blob, desc := newBlob(256<<10, 31)
	half := int64(len(blob) / 2)
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			cs := newStore()
			w, err := cs.Writer(t.Context(), content.WithRef(fetch.IngestRef(desc)), content.WithDescriptor(desc))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(blob[:half]); err != nil {
				t.Fatal(err)
			}
			w.Close()

			reg := newRegistry(t, blob, desc)
			ev := &events{t: t}
			if _, err := fetch.Handler(cs, reg.repo(), fetch.WithProgress(ev.observe)).Handle(t.Context(), desc); err != nil {
				t.Fatal(err)
			}
			got, err := content.ReadBlob(t.Context(), cs, desc, desc.Size)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, blob)
			if reqs := reg.requests(); len(reqs) != 1 || reqs[0].Range != fmt.Sprintf("bytes=%d-", half) {
				t.Errorf("requests = %+v, want one, from byte %d", reqs, half)
			}
			if sent := reg.sentTotal(); sent != int64(len(blob))-half {
				t.Errorf("registry sent %d bytes, want %d", sent, int64(len(blob))-half)
			}
			if r := ev.of(fetch.Resumed); len(r) != 1 || r[0].Offset != half {
				t.Errorf("Resumed events = %+v, want one at %d", r, half)
			}
		})
	}
}

// TestHandlerResumesThroughSeek uses a Fetcher without FetchFrom: the
// handler resumes by seeking the reader, which asks for the rest with Range.
func TestHandlerResumesThroughSeek(t *testing.T) {
	blob, desc := newBlob(100<<10, 32)
	half := int64(len(blob) / 2)
	cs := memory.New()
	w, err := cs.Writer(t.Context(), content.WithRef(fetch.IngestRef(desc)), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(blob[:half])
	w.Close()
	reg := newRegistry(t, blob, desc)
	repo := reg.repo()
	plain := fetch.FetcherFunc(repo.Fetch)
	if _, err := fetch.Handler(cs, plain).Handle(t.Context(), desc); err != nil {
		t.Fatal(err)
	}
	got, err := content.ReadBlob(t.Context(), cs, desc, desc.Size)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, blob)
	if reqs := reg.requests(); reqs[len(reqs)-1].Range != fmt.Sprintf("bytes=%d-", half) {
		t.Errorf("requests = %+v, want the last from byte %d", reqs, half)
	}
}

func TestHandlerDigestMismatch(t *testing.T) {
	blob, desc := newBlob(50<<10, 33)
	tampered := append([]byte(nil), blob...)
	tampered[1000] ^= 0xff
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			cs := newStore()
			reg := newRegistry(t, tampered, desc)
			_, err := fetch.Handler(cs, reg.repo()).Handle(t.Context(), desc)
			var me *content.MismatchError
			if !errors.Is(err, content.ErrDigestMismatch) || !errors.As(err, &me) || me.Expected != desc.Digest {
				t.Fatalf("Handle() error = %v, want a *content.MismatchError for %s", err, desc.Digest)
			}
			if _, err := cs.Info(t.Context(), desc.Digest); !errdefs.IsNotFound(err) {
				t.Errorf("Info() error = %v, want NotFound: nothing committed", err)
			}
			if _, err := cs.Status(t.Context(), fetch.IngestRef(desc)); !errdefs.IsNotFound(err) {
				t.Errorf("Status() error = %v, want NotFound: the ingest is aborted", err)
			}
		})
	}
}

func TestHandlerSameBlobConcurrently(t *testing.T) {
	blob, desc := newBlob(200<<10, 34)
	reg := newRegistry(t, blob, desc)
	cs := memory.New()
	h := fetch.Handler(cs, reg.repo())
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = h.Handle(t.Context(), desc)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Handle #%d: %v", i, err)
		}
	}
	if n := len(reg.requests()); n != 1 {
		t.Errorf("%d requests for one blob pulled 4 times at once, want 1", n)
	}
}

func TestHandlerErrors(t *testing.T) {
	blob, desc := newBlob(100, 35)
	reg := newRegistry(t, blob, desc)
	missing := ocispec.Descriptor{MediaType: desc.MediaType, Digest: digest.FromString("missing"), Size: 7}
	tests := []struct {
		name    string
		desc    ocispec.Descriptor
		wantErr error
	}{
		{"ok", desc, nil},
		{"missing", missing, errdefs.ErrNotFound},
		{"bad digest", ocispec.Descriptor{Digest: "md5:x", Size: 1}, errdefs.ErrInvalidArgument},
		{"negative size", ocispec.Descriptor{Digest: desc.Digest, Size: -1}, errdefs.ErrInvalidArgument},
	}
	h := fetch.Handler(memory.New(), reg.repo())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := h.Handle(t.Context(), tt.desc); !errors.Is(err, tt.wantErr) {
				t.Errorf("Handle() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestHandlerWithChildren(t *testing.T) {
	layer, ldesc := newBlob(1000, 36)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cdesc := ocispec.Descriptor{MediaType: handlers.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	man := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		handlers.MediaTypeImageManifest, cdesc.MediaType, cdesc.Digest, cdesc.Size, ldesc.MediaType, ldesc.Digest, ldesc.Size))
	mdesc := ocispec.Descriptor{MediaType: handlers.MediaTypeImageManifest, Digest: digest.FromBytes(man), Size: int64(len(man))}
	blobs := map[string][]byte{
		"/v2/demo/app/manifests/" + mdesc.Digest.String(): man,
		"/v2/demo/app/blobs/" + cdesc.Digest.String():     cfg,
		"/v2/demo/app/blobs/" + ldesc.Digest.String():     layer,
	}
	reg := newRegistry(t, nil, mdesc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		b, ok := blobs[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		serveRange(w, r, b, false)
		return true
	}
	cs := memory.New()
	h := handlers.Sequence(fetch.Handler(cs, reg.repo()), handlers.Children(cs))
	if err := handlers.Dispatch(t.Context(), h, 2, mdesc); err != nil {
		t.Fatal(err)
	}
	for _, d := range []ocispec.Descriptor{mdesc, cdesc, ldesc} {
		if _, err := cs.Info(t.Context(), d.Digest); err != nil {
			t.Errorf("Info(%s): %v", d.MediaType, err)
		}
	}
}

func TestIngestRef(t *testing.T) {
	d := digest.FromString("x")
	tests := []struct{ mt, want string }{
		{handlers.MediaTypeImageIndex, "index-"},
		{handlers.MediaTypeDockerSchema2Manifest, "manifest-"},
		{handlers.MediaTypeImageConfig, "config-"},
		{handlers.MediaTypeDockerSchema2Layer, "layer-"},
		{"application/octet-stream", "blob-"},
	}
	for _, tt := range tests {
		if got := fetch.IngestRef(ocispec.Descriptor{MediaType: tt.mt, Digest: d}); got != tt.want+d.String() {
			t.Errorf("IngestRef(%s) = %q, want %q", tt.mt, got, tt.want+d.String())
		}
	}
}

// closeCounter records whether a reader was closed.
type closeCounter struct {
	io.Reader
	closed bool
}

func (c *closeCounter) Close() error { c.closed = true; return nil }

func TestHandlerClosesReader(t *testing.T) {
	blob, desc := newBlob(100, 37)
	rc := &closeCounter{Reader: bytesReader(blob)}
	f := fetch.FetcherFunc(func(context.Context, ocispec.Descriptor) (io.ReadCloser, error) { return rc, nil })
	if _, err := fetch.Handler(memory.New(), f).Handle(t.Context(), desc); err != nil {
		t.Fatal(err)
	}
	if !rc.closed {
		t.Error("the fetched reader was not closed")
	}
}
