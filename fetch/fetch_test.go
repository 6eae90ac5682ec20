package fetch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
)

// readAll fetches desc with f and returns what the reader gives.
func readAll(t *testing.T, ctx context.Context, f fetch.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	t.Helper()
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func mustEqual(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes (digest %s), want %d bytes (digest %s)", len(got), digest.FromBytes(got), len(want), digest.FromBytes(want))
	}
}

func TestFetchBlob(t *testing.T) {
	blob, desc := newBlob(100<<10, 1)
	reg := newRegistry(t, blob, desc)
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithHeader(http.Header{"User-Agent": {"pullkit-test"}})), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	mustEqual(t, got, blob)
	reqs := reg.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/v2/demo/app/blobs/"+desc.Digest.String() || r.Range != "" || r.AcceptEncoding != "identity" || r.UserAgent != "pullkit-test" {
		t.Errorf("request = %+v, want the blob path, no Range, Accept-Encoding identity, our User-Agent", r)
	}
}

func TestFetchManifestURLAndAccept(t *testing.T) {
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	desc := ocispec.Descriptor{MediaType: handlers.MediaTypeImageIndex, Digest: digest.FromBytes(body), Size: int64(len(body))}
	reg := newRegistry(t, body, desc)
	got, err := readAll(t, t.Context(), reg.repo(), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	mustEqual(t, got, body)
	r := reg.requests()[0]
	if r.Path != "/v2/demo/app/manifests/"+desc.Digest.String() || r.Accept != handlers.MediaTypeImageIndex {
		t.Errorf("request = %+v, want the manifests path and Accept %s", r, handlers.MediaTypeImageIndex)
	}
}

func TestFetchPathPrefix(t *testing.T) {
	blob, desc := newBlob(1000, 2)
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		serveRange(w, r, blob, false)
	}))
	t.Cleanup(srv.Close)
	f := fetch.New(strings.TrimPrefix(srv.URL, "http://"), "lib/x", fetch.WithClient(srv.Client()), fetch.WithPlainHTTP(), fetch.WithPathPrefix("mirror/v2/"))
	if _, err := readAll(t, t.Context(), f, desc); err != nil {
		t.Fatal(err)
	}
	if want := "/mirror/v2/lib/x/blobs/" + desc.Digest.String(); path != want {
		t.Errorf("path = %q, want %q", path, want)
	}
}

func TestFetchEmptyBlobSendsNothing(t *testing.T) {
	desc := ocispec.Descriptor{MediaType: handlers.MediaTypeImageLayer, Digest: digest.FromBytes(nil), Size: 0}
	reg := newRegistry(t, nil, desc)
	got, err := readAll(t, t.Context(), reg.repo(), desc)
	if err != nil || len(got) != 0 {
		t.Fatalf("Fetch = %d bytes, %v; want 0 bytes, nil", len(got), err)
	}
	if n := len(reg.requests()); n != 0 {
		t.Errorf("%d requests for an empty blob, want 0", n)
	}
}

func TestFetchInvalidDescriptor(t *testing.T) {
	f := fetch.New("127.0.0.1:1", testRepo)
	tests := []struct {
		name   string
		desc   ocispec.Descriptor
		offset int64
	}{
		{"bad digest", ocispec.Descriptor{Digest: "sha256:nothex", Size: 1}, 0},
		{"negative size", ocispec.Descriptor{Digest: digest.FromString("x"), Size: -1}, 0},
		{"offset past end", ocispec.Descriptor{Digest: digest.FromString("x"), Size: 1}, 2},
		{"negative offset", ocispec.Descriptor{Digest: digest.FromString("x"), Size: 1}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.FetchFrom(t.Context(), tt.desc, tt.offset); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("FetchFrom() error = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestFetchStatusErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		wantErr    error
		wantReqs   int
		wantCode   string
	}{
		{"not found", http.StatusNotFound, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`, "", errdefs.ErrNotFound, 1, "BLOB_UNKNOWN"},
		{"unauthorized", http.StatusUnauthorized, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, "", errdefs.ErrUnauthenticated, 1, "UNAUTHORIZED"},
		{"forbidden", http.StatusForbidden, `{"errors":[{"code":"DENIED"}]}`, "", errdefs.ErrPermissionDenied, 1, "DENIED"},
		{"bad request", http.StatusBadRequest, `not json`, "", errdefs.ErrInvalidArgument, 1, ""},
		{"teapot", http.StatusTeapot, ``, "", errdefs.ErrUnknown, 1, ""},
		{"server error, retried", http.StatusInternalServerError, ``, "", errdefs.ErrUnavailable, 3, ""},
		{"not implemented, not retried", http.StatusNotImplemented, ``, "", errdefs.ErrNotImplemented, 1, ""},
		{"rate limited beyond the cap", http.StatusTooManyRequests, `{"errors":[{"code":"TOOMANYREQUESTS"}]}`, "3600", errdefs.ErrUnavailable, 1, "TOOMANYREQUESTS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blob, desc := newBlob(10, 3)
			reg := newRegistry(t, blob, desc)
			reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
				return true
			}
			_, err := reg.repo(fetch.WithRetries(2), fetch.WithMaxRetryAfter(time.Second)).Fetch(t.Context(), desc)
			var re *fetch.ResponseError
			if !errors.Is(err, tt.wantErr) || !errors.As(err, &re) || re.StatusCode != tt.status {
				t.Fatalf("Fetch() error = %v, want a %d *ResponseError that is %v", err, tt.status, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "fetch "+desc.Digest.String()+": GET http://") {
				t.Errorf("error %q does not name the blob and the request", err)
			}
			if tt.wantCode != "" && (len(re.Errors) == 0 || re.Errors[0].Code != tt.wantCode) {
				t.Errorf("Errors = %+v, want code %s", re.Errors, tt.wantCode)
			}
			if tt.retryAfter == "3600" && (re.RetryAfter != time.Hour || !strings.Contains(err.Error(), "retry after 1h0m0s")) {
				t.Errorf("RetryAfter = %v, error %q; want 1h in both", re.RetryAfter, err)
			}
			if n := len(reg.requests()); n != tt.wantReqs {
				t.Errorf("%d requests, want %d", n, tt.wantReqs)
			}
		})
	}
}

func TestRegistryErrorDetail(t *testing.T) {
	blob, desc := newBlob(10, 4)
	reg := newRegistry(t, blob, desc)
	wrong := desc
	wrong.Digest = digest.FromString("other")
	_, err := reg.repo().Fetch(t.Context(), wrong)
	var re *fetch.ResponseError
	if !errors.As(err, &re) || len(re.Errors) != 1 {
		t.Fatalf("Fetch() error = %v, want a *ResponseError with one registry error", err)
	}
	want := fetch.RegistryError{Code: "BLOB_UNKNOWN", Message: "blob unknown to registry", Detail: map[string]any{"path": "x"}}
	if got := re.Errors[0]; got.Code != want.Code || got.Message != want.Message || fmt.Sprint(got.Detail) != fmt.Sprint(want.Detail) {
		t.Errorf("Errors[0] = %+v, want %+v", got, want)
	}
	if !strings.Contains(err.Error(), "404 Not Found: BLOB_UNKNOWN: blob unknown to registry") {
		t.Errorf("error %q does not show the status and the registry error", err)
	}
}

func TestRetryServerErrorsThenSucceed(t *testing.T) {
	blob, desc := newBlob(50<<10, 5)
	reg := newRegistry(t, blob, desc)
	statuses := []int{http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusInternalServerError}
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n < len(statuses) {
			w.WriteHeader(statuses[n])
			return true
		}
		return false
	}
	ev := &events{t: t}
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithObserver(ev.observe)), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	mustEqual(t, got, blob)
	retried := ev.of(fetch.Retried)
	if len(retried) != 3 {
		t.Fatalf("%d Retried events, want 3", len(retried))
	}
	for i, e := range retried {
		if e.Attempt != i+1 || !errdefs.IsUnavailable(e.Err) || e.Desc.Digest != desc.Digest {
			t.Errorf("Retried[%d] = attempt %d, err %v; want attempt %d, an Unavailable error", i, e.Attempt, e.Err, i+1)
		}
	}
	for _, r := range reg.requests() {
		if r.Range != "" {
			t.Errorf("request with Range %q: a retry before any byte must ask for the whole blob", r.Range)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name    string
		value   func() string
		minWait time.Duration
	}{
		{"seconds", func() string { return "1" }, 900 * time.Millisecond},
		{"http date", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			blob, desc := newBlob(1000, 6)
			reg := newRegistry(t, blob, desc)
			reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 0 {
					w.Header().Set("Retry-After", tt.value())
					w.WriteHeader(http.StatusTooManyRequests)
					return true
				}
				return false
			}
			got, err := readAll(t, t.Context(), reg.repo(), desc)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			mustEqual(t, got, blob)
			reqs := reg.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			if wait := reqs[1].At.Sub(reqs[0].At); wait < tt.minWait {
				t.Errorf("retried after %v, want at least %v as Retry-After asked", wait, tt.minWait)
			}
		})
	}
}

// TestResumeAfterDrops closes every connection after 100 KiB: the reader
// resumes each time from the bytes it has, and the registry sends each byte
// about once.
func TestResumeAfterDrops(t *testing.T) {
	blob, desc := newBlob(1<<20, 7)
	reg := newRegistry(t, blob, desc)
	const per = 100 << 10
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		from := int64(0)
		if h := r.Header.Get("Range"); h != "" {
			from, _, _ = parseRange(h, int64(len(blob)))
		}
		if int64(len(blob))-from <= per {
			return false
		}
		reg.sent.Add(dropAfter(t, w, r, blob, per, false, false))
		return true
	}
	ev := &events{t: t}
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithObserver(ev.observe), fetch.WithRetries(2)), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	mustEqual(t, got, blob)
	reqs := reg.requests()
	if reqs[0].Range != "" {
		t.Errorf("first request has Range %q, want none", reqs[0].Range)
	}
	for _, r := range reqs[1:] {
		if !strings.HasPrefix(r.Range, "bytes=") || !strings.HasSuffix(r.Range, "-") {
			t.Errorf("resume request with Range %q, want bytes=<received>-", r.Range)
		}
	}
	if sent, limit := reg.sentTotal(), int64(len(blob))*11/10; sent > limit {
		t.Errorf("registry sent %d bytes for a %d-byte blob, want at most %d", sent, len(blob), limit)
	}
	resumed := ev.of(fetch.Resumed)
	if len(resumed) == 0 {
		t.Fatal("no Resumed event")
	}
	for _, e := range resumed {
		if e.Offset <= 0 || e.Offset >= int64(len(blob)) {
			t.Errorf("Resumed at %d, want inside the blob", e.Offset)
		}
	}
}

// TestResumeAfterReset resets (RST) connections mid-body: bytes in flight
// may be lost, but the stream stays exact.
func TestResumeAfterReset(t *testing.T) {
	blob, desc := newBlob(512<<10, 28)
	reg := newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n >= 3 {
			return false
		}
		dropAfter(t, w, r, blob, 64<<10, false, true)
		return true
	}
	got, err := readAll(t, t.Context(), reg.repo(), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	mustEqual(t, got, blob)
}

func TestRangeIgnoredAfterDrop(t *testing.T) {
	blob, desc := newBlob(300<<10, 8)
	reg := newRegistry(t, blob, desc)
	reg.ignoreRange = true
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 0 {
			dropAfter(t, w, r, blob, 123457, true, false)
			return true
		}
		return false
	}
	got, err := readAll(t, t.Context(), reg.repo(), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	mustEqual(t, got, blob)
	if reqs := reg.requests(); len(reqs) != 2 || reqs[1].Range != "bytes=123457-" {
		t.Errorf("requests = %+v, want 2, the second with Range bytes=123457-", reqs)
	}
}

func TestContentRangeStartingEarly(t *testing.T) {
	blob, desc := newBlob(200<<10, 9)
	reg := newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		switch n {
		case 0:
			dropAfter(t, w, r, blob, 5000, false, false)
			return true
		case 1:
			// Answer from 10 bytes before what was asked.
			from, _, _ := parseRange(r.Header.Get("Range"), int64(len(blob)))
			from -= 10
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(blob)-1, len(blob)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(blob[from:])
			return true
		}
		return false
	}
	got, err := readAll(t, t.Context(), reg.repo(), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	mustEqual(t, got, blob)
}

func TestStalledBodyResumes(t *testing.T) {
	blob, desc := newBlob(64<<10, 10)
	reg := newRegistry(t, blob, desc)
	half := len(blob) / 2
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n != 0 {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
		w.WriteHeader(http.StatusOK)
		w.Write(blob[:half])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // stall until the client gives up
		return true
	}
	ev := &events{t: t}
	// The test waits this long for the stall, once. It is generous so that
	// the second, healthy request is never taken for a stall on a loaded
	// machine: that would add a request and a Retried event.
	const stall = time.Second
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithStallTimeout(stall), fetch.WithObserver(ev.observe)), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	mustEqual(t, got, blob)
	// Normally the second request asks for the second half; on a machine
	// too slow to deliver the first half within the stall timeout, it asks
	// for less.
	reqs := reg.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %+v, want 2", reqs)
	}
	if from, _, _ := parseRange(reqs[1].Range, int64(len(blob))); from > int64(half) {
		t.Errorf("resumed with Range %q, want bytes=%d- or earlier", reqs[1].Range, half)
	}
	retried := ev.of(fetch.Retried)
	if len(retried) != 1 || !errdefs.IsUnavailable(retried[0].Err) || !strings.Contains(retried[0].Err.Error(), "stalled") {
		t.Errorf("Retried events = %+v, want one for the stall", retried)
	}
}

func TestStalledHeadersRetried(t *testing.T) {
	blob, desc := newBlob(1000, 11)
	reg := newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 0 {
			<-r.Context().Done()
			return true
		}
		return false
	}
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithStallTimeout(200*time.Millisecond)), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	mustEqual(t, got, blob)
}

func TestShortAfterRetriesIsUnexpectedEOF(t *testing.T) {
	blob, desc := newBlob(10000, 12)
	reg := newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 0 {
			dropAfter(t, w, r, blob, 4000, false, false)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return true
	}
	rc, err := reg.repo(fetch.WithRetries(2)).Fetch(t.Context(), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errdefs.IsUnavailable(err) {
		t.Fatalf("ReadAll() error = %v, want io.ErrUnexpectedEOF and Unavailable", err)
	}
	mustEqual(t, got, blob[:4000])
	if n := len(reg.requests()); n != 3 {
		t.Errorf("%d requests, want 1 + 2 attempts to resume", n)
	}
}

func TestNeverMoreThanSize(t *testing.T) {
	blob, desc := newBlob(5000, 13)
	t.Run("unknown length", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.Write(blob)
			w.(http.Flusher).Flush() // chunked encoding: no Content-Length
			w.Write([]byte("trailing garbage"))
		}))
		t.Cleanup(srv.Close)
		f := fetch.New(strings.TrimPrefix(srv.URL, "http://"), testRepo, fetch.WithClient(srv.Client()), fetch.WithPlainHTTP())
		got, err := readAll(t, t.Context(), f, desc)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, got, blob)
	})
	t.Run("declared length", func(t *testing.T) {
		long := append(append([]byte(nil), blob...), "more"...)
		reg := newRegistry(t, long, desc)
		_, err := reg.repo().Fetch(t.Context(), desc)
		var me *content.MismatchError
		if !errors.Is(err, content.ErrDigestMismatch) || !errors.As(err, &me) || me.ActualSize != int64(len(long)) {
			t.Fatalf("Fetch() error = %v, want a size mismatch", err)
		}
	})
}

func TestSeekAndFetchFrom(t *testing.T) {
	blob, desc := newBlob(100<<10, 14)
	const off = 40000
	t.Run("FetchFrom", func(t *testing.T) {
		reg := newRegistry(t, blob, desc)
		rc, err := reg.repo().FetchFrom(t.Context(), desc, off)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, got, blob[off:])
		if reqs := reg.requests(); len(reqs) != 1 || reqs[0].Range != fmt.Sprintf("bytes=%d-", off) {
			t.Errorf("requests = %+v, want one from %d", reqs, off)
		}
	})
	t.Run("Seek", func(t *testing.T) {
		reg := newRegistry(t, blob, desc)
		rc, err := reg.repo().Fetch(t.Context(), desc)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		s, ok := rc.(io.Seeker)
		if !ok {
			t.Fatal("reader is not an io.Seeker")
		}
		head := make([]byte, 100)
		if _, err := io.ReadFull(rc, head); err != nil {
			t.Fatal(err)
		}
		if pos, err := s.Seek(off-100, io.SeekCurrent); err != nil || pos != off {
			t.Fatalf("Seek = %d, %v; want %d", pos, err, off)
		}
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, append(head, got...), append(blob[:100:100], blob[off:]...))
		if reqs := reg.requests(); len(reqs) != 2 || reqs[0].Range != "" || reqs[1].Range != fmt.Sprintf("bytes=%d-", off) {
			t.Errorf("requests = %+v, want a whole-blob request, then one from %d", reqs, off)
		}
		if _, err := s.Seek(-1, io.SeekStart); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Seek(-1) error = %v, want ErrInvalidArgument", err)
		}
		if pos, err := s.Seek(0, io.SeekEnd); err != nil || pos != desc.Size {
			t.Errorf("Seek(0, SeekEnd) = %d, %v", pos, err)
		}
		if n, err := rc.Read(head); n != 0 || err != io.EOF {
			t.Errorf("Read at the end = %d, %v; want io.EOF", n, err)
		}
	})
}

func TestContextCancel(t *testing.T) {
	blob, desc := newBlob(64<<10, 15)
	t.Run("while reading", func(t *testing.T) {
		reg := newRegistry(t, blob, desc)
		reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
			w.WriteHeader(http.StatusOK)
			w.Write(blob[:1000])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return true
		}
		ctx, cancel := context.WithCancel(t.Context())
		rc, err := reg.repo().Fetch(ctx, desc)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err = io.ReadAll(rc)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ReadAll() error = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Read returned %v after cancel, want promptly", d)
		}
	})
	t.Run("while backing off", func(t *testing.T) {
		reg := newRegistry(t, blob, desc)
		reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := reg.repo(fetch.WithBackoff(time.Minute, time.Minute)).Fetch(ctx, desc)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Fetch() error = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Fetch returned %v after cancel, want promptly", d)
		}
	})
	t.Run("Close unblocks Read", func(t *testing.T) {
		reg := newRegistry(t, blob, desc)
		reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return true
		}
		rc, err := reg.repo().Fetch(t.Context(), desc)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := io.ReadAll(rc); done <- err }()
		time.Sleep(50 * time.Millisecond)
		rc.Close()
		select {
		case err := <-done:
			if !errdefs.IsFailedPrecondition(err) || errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("Read interrupted by Close: error = %v, want FailedPrecondition (read after Close)", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read still blocked 5s after Close")
		}
	})
}

// cdnSecret is the presigned query of the CDN address redirectToCDN's
// registry redirects to.
const cdnSecret = "X-Amz-Signature=s3cr3t"

// redirectToCDN returns a registry that asks for credentials and then
// redirects blob requests to a CDN on another origin, and that CDN, which
// fails a request carrying credentials or registry headers.
func redirectToCDN(t *testing.T, blob []byte, desc ocispec.Descriptor) (reg, cdn *registry) {
	t.Helper()
	cdn = newRegistry(t, blob, desc)
	cdn.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.Header.Get("Authorization") != "" || r.Header.Get("X-Registry") != "" {
			t.Errorf("CDN got credentials or registry headers: %v", r.Header)
			w.WriteHeader(http.StatusBadRequest)
			return true
		}
		serveRange(w, r, blob, false)
		return true
	}
	reg = newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		http.Redirect(w, r, cdn.srv.URL+"/blob?"+cdnSecret, http.StatusTemporaryRedirect)
		return true
	}
	return reg, cdn
}

// credentialOptions are the two ways a Repository gets credentials for
// reg: an auth.Client, and headers on a plain http.Client.
func credentialOptions(reg *registry) []struct {
	name string
	opts []fetch.Option
} {
	return []struct {
		name string
		opts []fetch.Option
	}{
		{"auth.Client", []fetch.Option{fetch.WithClient(authClient(reg))}},
		{"http.Client", []fetch.Option{fetch.WithHeader(http.Header{"Authorization": {"Basic dTpw"}, "X-Registry": {"1"}})}},
	}
}

// TestRedirectToCDN checks that a blob redirected to another origin gets
// there without credentials, through an auth.Client and through a plain
// http.Client with a configured Authorization header alike.
func TestRedirectToCDN(t *testing.T) {
	blob, desc := newBlob(20<<10, 16)
	reg, cdn := redirectToCDN(t, blob, desc)
	for _, tt := range credentialOptions(reg) {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(t, t.Context(), reg.repo(tt.opts...), desc)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			mustEqual(t, got, blob)
		})
	}
	for _, r := range cdn.requests() {
		if r.Auth != "" || r.Query != cdnSecret {
			t.Errorf("CDN request %+v, want no Authorization and the presigned query", r)
		}
	}

	// A failure at the CDN does not show the presigned query.
	cdn.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.WriteHeader(http.StatusForbidden)
		return true
	}
	_, err := reg.repo(fetch.WithClient(authClient(reg))).Fetch(t.Context(), desc)
	if !errdefs.IsPermissionDenied(err) || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "dTpw") {
		t.Errorf("Fetch() error = %v, want PermissionDenied without the signature or credentials", err)
	}
}

func TestTooManyRedirects(t *testing.T) {
	blob, desc := newBlob(10, 17)
	reg := newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		http.Redirect(w, r, fmt.Sprintf("/loop/%d?sig=secret", n), http.StatusFound)
		return true
	}
	_, err := reg.repo(fetch.WithRetries(0)).Fetch(t.Context(), desc)
	if err == nil || !strings.Contains(err.Error(), "redirects") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Fetch() error = %v, want a redirect limit error without the query", err)
	}
	if n := len(reg.requests()); n != 11 {
		t.Errorf("%d requests, want 11 (10 redirects followed)", n)
	}
}

func TestTransportErrorRedacted(t *testing.T) {
	// A port nothing listens on: take a free one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	blob, desc := newBlob(10, 18)
	reg := newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		http.Redirect(w, r, "http://"+dead+"/blob?X-Amz-Signature=topsecret", http.StatusTemporaryRedirect)
		return true
	}
	_, err = reg.repo(fetch.WithRetries(1)).Fetch(t.Context(), desc)
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("Fetch() error = %v, want an error without the query", err)
	}
}

func TestForeignLayers(t *testing.T) {
	blob, desc := newBlob(30<<10, 19)
	desc.MediaType = handlers.MediaTypeDockerSchema2LayerForeign
	foreign := newRegistry(t, blob, desc)
	foreign.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("foreign URL got Authorization")
		}
		serveRange(w, r, blob, false)
		return true
	}
	fdesc := desc
	fdesc.URLs = []string{"ftp://ignored/x", foreign.srv.URL + "/layer.tar.gz"}
	auth := fetch.WithHeader(http.Header{"Authorization": {"Bearer registry-token"}})
	foreignHost := strings.TrimPrefix(foreign.srv.URL, "http://")

	t.Run("allowed", func(t *testing.T) {
		reg := newRegistry(t, blob, desc)
		got, err := readAll(t, t.Context(), reg.repo(auth, fetch.WithForeignLayers(regexpQuote(foreignHost))), fdesc)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, got, blob)
		if n := len(reg.requests()); n != 0 {
			t.Errorf("registry got %d requests, want 0", n)
		}
	})
	t.Run("not allowed", func(t *testing.T) {
		reg := newRegistry(t, blob, desc)
		before := len(foreign.requests())
		if _, err := readAll(t, t.Context(), reg.repo(auth), fdesc); err != nil {
			t.Fatal(err)
		}
		if n := len(reg.requests()); n != 1 || len(foreign.requests()) != before {
			t.Errorf("registry got %d requests and the foreign host %d, want 1 and 0", n, len(foreign.requests())-before)
		}
	})
	t.Run("host does not match", func(t *testing.T) {
		reg := newRegistry(t, blob, desc)
		before := len(foreign.requests())
		if _, err := readAll(t, t.Context(), reg.repo(auth, fetch.WithForeignLayers(regexpQuote("127.0.0.1"))), fdesc); err != nil {
			t.Fatal(err)
		}
		if len(foreign.requests()) != before {
			t.Error("a host that matches only a part of the pattern was used")
		}
	})
	t.Run("foreign fails, registry answers", func(t *testing.T) {
		reg := newRegistry(t, blob, desc)
		gone := fdesc
		gone.URLs = []string{foreign.srv.URL + "/missing"}
		foreign.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		got, err := readAll(t, t.Context(), reg.repo(auth, fetch.WithForeignLayers()), gone)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, got, blob)
		if n := len(reg.requests()); n != 1 {
			t.Errorf("registry got %d requests, want 1", n)
		}
	})
}

// TestConnectionReuse checks that reading a blob to its end leaves the
// connection for the next request, in one stream and in chunks. (With
// parallel requests net/http may dial a spare connection now and then, so
// the bound for chunks is loose: without reuse there would be one per
// request.)
func TestConnectionReuse(t *testing.T) {
	blob, desc := newBlob(1<<20, 29)
	for _, tt := range []struct {
		name     string
		opts     []fetch.Option
		maxConns int64
	}{
		{"one stream", []fetch.Option{fetch.WithParallel(0, 1)}, 1},
		{"chunks", []fetch.Option{fetch.WithParallel(64<<10, 2)}, 16},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := newRegistry(t, blob, desc)
			f := reg.repo(tt.opts...)
			for range 3 {
				got, err := readAll(t, t.Context(), f, desc)
				if err != nil {
					t.Fatal(err)
				}
				mustEqual(t, got, blob)
			}
			if n := reg.conns.Load(); n > tt.maxConns {
				t.Errorf("%d connections for %d requests, want at most %d", n, len(reg.requests()), tt.maxConns)
			}
		})
	}
}

func TestFetcherFunc(t *testing.T) {
	var f fetch.Fetcher = fetch.FetcherFunc(func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("hi")), nil
	})
	got, err := readAll(t, t.Context(), f, ocispec.Descriptor{})
	if err != nil || string(got) != "hi" {
		t.Fatalf("FetcherFunc = %q, %v", got, err)
	}
}

func TestLoggerRedacts(t *testing.T) {
	blob, desc := newBlob(10<<10, 38)
	cdn := newRegistry(t, blob, desc)
	cdn.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 0 {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		serveRange(w, r, blob, false)
		return true
	}
	reg := newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		http.Redirect(w, r, cdn.srv.URL+"/b?X-Amz-Signature=s3cr3t", http.StatusTemporaryRedirect)
		return true
	}
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := http.Header{"Authorization": {"Bearer t0ken"}}
	if _, err := readAll(t, t.Context(), reg.repo(fetch.WithLogger(logger), fetch.WithHeader(h)), desc); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "fetch: redirect") || !strings.Contains(out, "fetch: retrying") {
		t.Errorf("log lacks the redirect or the retry:\n%s", out)
	}
	if strings.Contains(out, "s3cr3t") || strings.Contains(out, "t0ken") {
		t.Errorf("log leaks a secret:\n%s", out)
	}
}

// TestAuthScope checks that an auth.Client asks the token server for the
// repository's pull scope even when the registry's challenge names none.
func TestAuthScope(t *testing.T) {
	blob, desc := newBlob(1000, 39)
	var scopes []string
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		scopes = append(scopes, r.Form["scope"]...)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"token":"tok","expires_in":300}`)
	}))
	t.Cleanup(tokens.Close)
	reg := newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="registry"`, tokens.URL+"/token"))
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		return false
	}
	client := auth.NewClient(auth.WithHTTPClient(reg.srv.Client()))
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithClient(client)), desc)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, blob)
	if len(scopes) != 1 || scopes[0] != "repository:demo/app:pull" {
		t.Errorf("token requests asked for scopes %q, want repository:demo/app:pull", scopes)
	}
}
