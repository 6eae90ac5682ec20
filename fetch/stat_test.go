package fetch_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
)

// statRequest is a request as TestStat checks it: method and Range.
type statRequest struct{ method, rng string }

func TestStat(t *testing.T) {
	// refuseHEAD answers HEAD with 405, as some registries and proxies do.
	refuseHEAD := func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if r.Method == http.MethodHead {
			w.Header().Set("Allow", "GET")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return true
		}
		return false
	}
	// noLength answers HEAD without a Content-Length, and GET with a
	// chunked body of the whole blob (Range ignored), whose length it
	// does not say either.
	noLength := func(blob []byte) func(w http.ResponseWriter, r *http.Request, n int) bool {
		return func(w http.ResponseWriter, r *http.Request, _ int) bool {
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				w.(http.Flusher).Flush()
				w.Write(blob)
			}
			return true
		}
	}
	const (
		head = http.MethodHead
		get  = http.MethodGet
	)
	tests := []struct {
		name        string
		size        int                                                                  // of the blob
		mediaType   string                                                               // of the descriptor; a layer when empty
		fault       func(blob []byte) func(http.ResponseWriter, *http.Request, int) bool // nil serves the blob
		ignoreRange bool
		want        int64
		wantErr     error
		wantStatus  int // of the *ResponseError, when wantErr is set and it is one
		wantReqs    []statRequest
		stall       bool // the first request stalls: more requests may follow wantReqs on a slow machine
	}{
		{name: "HEAD", size: 3000, want: 3000, wantReqs: []statRequest{{head, ""}}},
		{name: "HEAD of an empty blob", size: 0, want: 0, wantReqs: []statRequest{{head, ""}}},
		{name: "HEAD of a manifest", size: 500, mediaType: handlers.MediaTypeDockerSchema1SignedManifest, want: 500, wantReqs: []statRequest{{head, ""}}},
		{
			name: "HEAD 405, GET of one byte", size: 70000, want: 70000,
			fault:    func([]byte) func(http.ResponseWriter, *http.Request, int) bool { return refuseHEAD },
			wantReqs: []statRequest{{head, ""}, {get, "bytes=0-0"}},
		},
		{
			name: "HEAD 405, GET of one byte of an empty blob", size: 0, want: 0,
			fault:    func([]byte) func(http.ResponseWriter, *http.Request, int) bool { return refuseHEAD },
			wantReqs: []statRequest{{head, ""}, {get, "bytes=0-0"}},
		},
		{
			name: "HEAD 405, GET with Range ignored", size: 70000, want: 70000, ignoreRange: true,
			fault:    func([]byte) func(http.ResponseWriter, *http.Request, int) bool { return refuseHEAD },
			wantReqs: []statRequest{{head, ""}, {get, "bytes=0-0"}},
		},
		{
			name: "HEAD without Content-Length, GET of one byte", size: 4000, want: 4000,
			fault: func(blob []byte) func(http.ResponseWriter, *http.Request, int) bool {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					if r.Method == http.MethodHead {
						return noLength(blob)(w, r, n)
					}
					return false
				}
			},
			wantReqs: []statRequest{{head, ""}, {get, "bytes=0-0"}},
		},
		{
			name: "no size either way", size: 4000, wantErr: errdefs.ErrNotImplemented,
			fault:    noLength,
			wantReqs: []statRequest{{head, ""}, {get, "bytes=0-0"}},
		},
		{
			name: "not found", size: 10, wantErr: errdefs.ErrNotFound, wantStatus: http.StatusNotFound,
			fault: func([]byte) func(http.ResponseWriter, *http.Request, int) bool {
				return func(w http.ResponseWriter, r *http.Request, _ int) bool {
					w.WriteHeader(http.StatusNotFound)
					return true
				}
			},
			wantReqs: []statRequest{{head, ""}},
		},
		{
			name: "HEAD 405, GET not found", size: 10, wantErr: errdefs.ErrNotFound, wantStatus: http.StatusNotFound,
			fault: func([]byte) func(http.ResponseWriter, *http.Request, int) bool {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					if !refuseHEAD(w, r, n) {
						w.WriteHeader(http.StatusNotFound)
					}
					return true
				}
			},
			wantReqs: []statRequest{{head, ""}, {get, "bytes=0-0"}},
		},
		{
			name: "server errors, retried", size: 2000, want: 2000,
			fault: func([]byte) func(http.ResponseWriter, *http.Request, int) bool {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					if n < 2 {
						w.WriteHeader(http.StatusBadGateway)
						return true
					}
					return false
				}
			},
			wantReqs: []statRequest{{head, ""}, {head, ""}, {head, ""}},
		},
		{
			name: "server errors, retries exhausted", size: 2000, wantErr: errdefs.ErrUnavailable, wantStatus: http.StatusServiceUnavailable,
			fault: func([]byte) func(http.ResponseWriter, *http.Request, int) bool {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					w.WriteHeader(http.StatusServiceUnavailable)
					return true
				}
			},
			wantReqs: []statRequest{{head, ""}, {head, ""}, {head, ""}, {head, ""}},
		},
		{
			name: "rate limited beyond the cap", size: 2000, wantErr: errdefs.ErrUnavailable, wantStatus: http.StatusTooManyRequests,
			fault: func([]byte) func(http.ResponseWriter, *http.Request, int) bool {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					w.Header().Set("Retry-After", "3600")
					w.WriteHeader(http.StatusTooManyRequests)
					return true
				}
			},
			wantReqs: []statRequest{{head, ""}},
		},
		{
			name: "stalled HEAD, retried", size: 2000, want: 2000,
			fault: func([]byte) func(http.ResponseWriter, *http.Request, int) bool {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					if n == 0 {
						<-r.Context().Done() // until the client gives up on it
						return true
					}
					return false
				}
			},
			wantReqs: []statRequest{{head, ""}, {head, ""}},
			stall:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blob, desc := newBlob(tt.size, uint64(tt.size)+1)
			if tt.mediaType != "" {
				desc.MediaType = tt.mediaType
			}
			reg := newRegistry(t, blob, desc)
			reg.ignoreRange = tt.ignoreRange
			if tt.fault != nil {
				reg.fault = tt.fault(blob)
			}
			query := desc
			query.Size = -1 // Stat does not need it
			opts := []fetch.Option{fetch.WithRetries(3), fetch.WithMaxRetryAfter(time.Second)}
			if tt.stall {
				opts = append(opts, fetch.WithStallTimeout(200*time.Millisecond), fetch.WithRetries(20))
			}
			got, err := reg.repo(opts...).Stat(t.Context(), query)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Stat() = %d, %v; want error %v", got, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("Stat() = %d, want %d", got, tt.want)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "stat "+desc.Digest.String()+": ") {
					t.Errorf("error %q does not name the blob", err)
				}
				var re *fetch.ResponseError
				if tt.wantStatus != 0 && (!errors.As(err, &re) || re.StatusCode != tt.wantStatus) {
					t.Errorf("error = %v, want a %d *fetch.ResponseError", err, tt.wantStatus)
				}
			}
			var reqs []statRequest
			for _, r := range reg.requests() {
				reqs = append(reqs, statRequest{r.Method, r.Range})
				wantPath := "/v2/" + testRepo + "/blobs/" + desc.Digest.String()
				if tt.mediaType != "" {
					wantPath = "/v2/" + testRepo + "/manifests/" + desc.Digest.String()
					if r.Accept != tt.mediaType {
						t.Errorf("Accept = %q, want %q", r.Accept, tt.mediaType)
					}
				}
				if r.Path != wantPath {
					t.Errorf("%s %s, want %s", r.Method, r.Path, wantPath)
				}
			}
			if tt.stall && len(reqs) > len(tt.wantReqs) && !slices.Contains(reqs, statRequest{get, "bytes=0-0"}) {
				reqs = reqs[:len(tt.wantReqs)] // later HEADs were slow too
			}
			if !slices.Equal(reqs, tt.wantReqs) {
				t.Errorf("requests = %v, want %v", reqs, tt.wantReqs)
			}
		})
	}
}

// TestStatRedirectToCDN checks that a HEAD redirected to another origin
// gets there without credentials, through an auth.Client and through a
// plain http.Client with a configured Authorization header alike.
func TestStatRedirectToCDN(t *testing.T) {
	blob, desc := newBlob(12345, 40)
	reg, cdn := redirectToCDN(t, blob, desc)
	for _, tt := range credentialOptions(reg) {
		t.Run(tt.name, func(t *testing.T) {
			got, err := reg.repo(tt.opts...).Stat(t.Context(), desc)
			if err != nil || got != desc.Size {
				t.Fatalf("Stat() = %d, %v; want %d", got, err, desc.Size)
			}
		})
	}
	cdnReqs := cdn.requests()
	if len(cdnReqs) != 2 {
		t.Errorf("CDN got %d requests, want 2", len(cdnReqs))
	}
	for _, r := range cdnReqs {
		if r.Method != http.MethodHead || r.Auth != "" || r.Query != cdnSecret {
			t.Errorf("CDN request %+v, want a HEAD without Authorization, with the presigned query", r)
		}
	}
	for _, r := range reg.requests() {
		if r.Method != http.MethodHead {
			t.Errorf("registry request %+v, want HEAD only", r)
		}
	}

	// A failure at the CDN does not show the presigned query nor the
	// credentials.
	cdn.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.WriteHeader(http.StatusForbidden)
		return true
	}
	_, err := reg.repo(fetch.WithClient(authClient(reg))).Stat(t.Context(), desc)
	if !errdefs.IsPermissionDenied(err) || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "dTpw") {
		t.Errorf("Stat() error = %v, want PermissionDenied without the signature or credentials", err)
	}
}

func TestStatInvalidDigest(t *testing.T) {
	blob, desc := newBlob(10, 41)
	reg := newRegistry(t, blob, desc)
	for _, d := range []digest.Digest{"", "sha256:short", "md5:d41d8cd98f00b204e9800998ecf8427e"} {
		_, err := reg.repo().Stat(t.Context(), ocispec.Descriptor{MediaType: handlers.MediaTypeImageLayerGzip, Digest: d, Size: -1})
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("Stat(%q) error = %v, want InvalidArgument", d, err)
		}
	}
	if n := len(reg.requests()); n != 0 {
		t.Errorf("%d requests for invalid digests, want none", n)
	}
}

// A canceled context ends Stat while it waits to retry.
func TestStatContextCanceled(t *testing.T) {
	blob, desc := newBlob(10, 42)
	reg := newRegistry(t, blob, desc)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		cancel()
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	_, err := reg.repo(fetch.WithBackoff(time.Hour, time.Hour)).Stat(ctx, desc)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stat() error = %v, want context.Canceled", err)
	}
	if n := len(reg.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
