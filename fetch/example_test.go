package fetch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
)

// exampleRegistry serves one blob of the repository demo/app.
func exampleRegistry(blob []byte, desc ocispec.Descriptor) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/demo/app/blobs/"+desc.Digest.String() {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`)
			return
		}
		w.Write(blob)
	}))
}

func Example() {
	blob := []byte("hello, registry")
	desc := ocispec.Descriptor{MediaType: handlers.MediaTypeImageLayer, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	srv := exampleRegistry(blob, desc)
	defer srv.Close()

	f := fetch.New(strings.TrimPrefix(srv.URL, "http://"), "demo/app", fetch.WithClient(srv.Client()), fetch.WithPlainHTTP())
	rc, err := f.Fetch(context.Background(), desc)
	if err != nil {
		log.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes: %s\n", len(b), b)
	// Output: 15 bytes: hello, registry
}

func ExampleHandler() {
	blob := []byte("layer bytes")
	desc := ocispec.Descriptor{MediaType: handlers.MediaTypeImageLayer, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	srv := exampleRegistry(blob, desc)
	defer srv.Close()

	ctx := context.Background()
	store := memory.New()
	f := fetch.New(strings.TrimPrefix(srv.URL, "http://"), "demo/app", fetch.WithClient(srv.Client()), fetch.WithPlainHTTP())
	h := fetch.Handler(store, f, fetch.WithProgress(func(ev fetch.Event) {
		fmt.Println(ev.Kind, ev.Offset, "of", ev.Total)
	}))
	for range 2 { // the second time, the store has the blob
		if _, err := h.Handle(ctx, desc); err != nil {
			log.Fatal(err)
		}
	}
	info, err := store.Info(ctx, desc.Digest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored", info.Size, "bytes")
	// Output:
	// started 0 of 11
	// committed 11 of 11
	// skipped 11 of 11
	// stored 11 bytes
}

func ExampleResponseError() {
	blob := []byte("x")
	desc := ocispec.Descriptor{MediaType: handlers.MediaTypeImageLayer, Digest: digest.FromBytes(blob), Size: 1}
	srv := exampleRegistry(nil, ocispec.Descriptor{Digest: digest.FromString("another blob")})
	defer srv.Close()

	f := fetch.New(strings.TrimPrefix(srv.URL, "http://"), "demo/app", fetch.WithClient(srv.Client()), fetch.WithPlainHTTP())
	_, err := f.Fetch(context.Background(), desc)
	var re *fetch.ResponseError
	if errors.As(err, &re) {
		fmt.Println(re.StatusCode, re.Errors[0].Code, errdefs.IsNotFound(err))
	}
	// Output: 404 BLOB_UNKNOWN true
}

// Stat tells a blob's size without downloading it, for descriptors that do
// not record one, such as the layers of Docker schema 1 manifests.
func ExampleRepository_Stat() {
	blob := []byte("a layer of unknown size")
	desc := ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Layer, Digest: digest.FromBytes(blob), Size: -1}
	srv := exampleRegistry(blob, desc)
	defer srv.Close()

	f := fetch.New(strings.TrimPrefix(srv.URL, "http://"), "demo/app", fetch.WithClient(srv.Client()), fetch.WithPlainHTTP())
	size, err := f.Stat(context.Background(), desc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(size, "bytes")
	// Output: 23 bytes
}

// A link known to cap each connection, such as a CDN's, can be split from
// the first request: here a blob of 1 MiB comes as 16 chunks of 64 KiB,
// over 4 connections at a time, in order, holding at most 3 buffers.
func ExampleWithSplitBelow() {
	blob := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	desc := ocispec.Descriptor{MediaType: handlers.MediaTypeImageLayer, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	var ranges atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranges.Add(1)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	defer srv.Close()

	f := fetch.New(strings.TrimPrefix(srv.URL, "http://"), "demo/app", fetch.WithClient(srv.Client()), fetch.WithPlainHTTP(),
		fetch.WithParallel(64<<10, 4), fetch.WithSplitBelow(fetch.SplitAlways))
	rc, err := f.Fetch(context.Background(), desc)
	if err != nil {
		log.Fatal(err)
	}
	defer rc.Close()
	v := desc.Digest.Verifier()
	n, err := io.Copy(v, rc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "bytes, verified:", v.Verified(), "range requests:", ranges.Load())
	// Output: 1048576 bytes, verified: true range requests: 16
}
