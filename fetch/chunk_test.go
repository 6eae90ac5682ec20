package fetch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/fetch"
)

const (
	testChunk    = 64 << 10
	testParallel = 4
)

// waitForCompany returns a gate that holds requests until two were in
// flight at once (or two seconds pass), so that a fetcher that downloads
// chunks in parallel is seen doing it however goroutines are scheduled.
func waitForCompany() func(r *http.Request, inflight *atomic.Int64) {
	var met atomic.Bool
	return func(r *http.Request, inflight *atomic.Int64) {
		if r.Header.Get("Range") == fmt.Sprintf("bytes=0-%d", testChunk-1) {
			return // the first request is alone by design
		}
		deadline := time.Now().Add(2 * time.Second)
		for !met.Load() && time.Now().Before(deadline) && r.Context().Err() == nil {
			if inflight.Load() >= 2 {
				met.Store(true)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func TestChunkedParallelDownload(t *testing.T) {
	blob, desc := newBlob(2<<20, 20)
	reg := newRegistry(t, blob, desc)
	reg.gate = waitForCompany()
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithSplitBelow(fetch.SplitAlways)), desc)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	mustEqual(t, got, blob)
	reqs := reg.requests()
	if want := len(blob) / testChunk; len(reqs) != want {
		t.Errorf("%d requests, want %d (one per chunk)", len(reqs), want)
	}
	if reqs[0].Range != fmt.Sprintf("bytes=0-%d", testChunk-1) {
		t.Errorf("first request has Range %q, want the first chunk", reqs[0].Range)
	}
	var starts []int64
	for _, r := range reqs {
		from, to, ok := parseRange(r.Range, int64(len(blob)))
		if !ok || to-from != testChunk || from%testChunk != 0 {
			t.Errorf("request with Range %q, want one aligned chunk", r.Range)
		}
		starts = append(starts, from)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	for i, s := range starts {
		if s != int64(i*testChunk) {
			t.Fatalf("chunk starts %v: each chunk must be fetched once", starts)
		}
	}
	if m := reg.maxInflight.Load(); m < 2 || m > testParallel {
		t.Errorf("at most %d requests in flight, want between 2 and %d", m, testParallel)
	}
	if sent := reg.sentTotal(); sent != int64(len(blob)) {
		t.Errorf("registry sent %d bytes, want %d", sent, len(blob))
	}
}

func TestChunkedSmallBlobIsOneStream(t *testing.T) {
	blob, desc := newBlob(3*testChunk, 21) // under 4 chunks
	reg := newRegistry(t, blob, desc)
	if _, err := readAll(t, t.Context(), reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithSplitBelow(fetch.SplitAlways)), desc); err != nil {
		t.Fatal(err)
	}
	if reqs := reg.requests(); len(reqs) != 1 || reqs[0].Range != "" {
		t.Errorf("requests = %+v, want one without Range", reqs)
	}
}

func TestChunkedFallsBackWithoutRange(t *testing.T) {
	blob, desc := newBlob(1<<20, 22)
	reg := newRegistry(t, blob, desc)
	reg.ignoreRange = true
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithSplitBelow(fetch.SplitAlways)), desc)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, blob)
	if n := len(reg.requests()); n != 1 {
		t.Errorf("%d requests, want 1: the answer to the first chunk's request is the whole blob", n)
	}
}

func TestChunkedServerStopsHonouringRange(t *testing.T) {
	blob, desc := newBlob(1<<20, 23)
	reg := newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 0 {
			return false
		}
		reg.sent.Add(serveRange(w, r, blob, true))
		return true
	}
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithSplitBelow(fetch.SplitAlways)), desc)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, blob)
}

func TestChunkedResumesEachChunk(t *testing.T) {
	blob, desc := newBlob(1<<20, 24)
	reg := newRegistry(t, blob, desc)
	var mu sync.Mutex
	dropped := map[int64]bool{}
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		from, _, _ := parseRange(r.Header.Get("Range"), int64(len(blob)))
		mu.Lock()
		first := !dropped[from/testChunk]
		dropped[from/testChunk] = true
		mu.Unlock()
		if !first {
			return false
		}
		reg.sent.Add(dropAfter(t, w, r, blob, 10000, false, false))
		return true
	}
	ev := &events{t: t}
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithSplitBelow(fetch.SplitAlways), fetch.WithObserver(ev.observe)), desc)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, blob)
	if len(ev.of(fetch.Resumed)) == 0 {
		t.Error("no Resumed event")
	}
	if sent, limit := reg.sentTotal(), int64(len(blob))*11/10; sent > limit {
		t.Errorf("registry sent %d bytes, want at most %d", sent, limit)
	}
}

func TestChunkedFailure(t *testing.T) {
	blob, desc := newBlob(1<<20, 25)
	reg := newRegistry(t, blob, desc)
	const bad = 5 * testChunk
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if from, _, _ := parseRange(r.Header.Get("Range"), int64(len(blob))); from == bad {
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		return false
	}
	rc, err := reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithSplitBelow(fetch.SplitAlways)).Fetch(t.Context(), desc)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errdefs.IsNotFound(err) {
		t.Fatalf("ReadAll() error = %v, want io.ErrUnexpectedEOF and NotFound", err)
	}
	mustEqual(t, got, blob[:bad])
}

func TestChunkedFromOffsetAndSeek(t *testing.T) {
	blob, desc := newBlob(1<<20, 26)
	reg := newRegistry(t, blob, desc)
	f := reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithSplitBelow(fetch.SplitAlways))
	const off = 100000
	rc, err := f.FetchFrom(t.Context(), desc, off)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if r := reg.requests()[0]; r.Range != fmt.Sprintf("bytes=%d-%d", off, off+testChunk-1) {
		t.Errorf("first request has Range %q, want the chunk at %d", r.Range, off)
	}
	head := make([]byte, 3*testChunk)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, head, blob[off:off+3*testChunk])
	if _, err := rc.(io.Seeker).Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, rest, blob[10:])
}

func TestChunkedCancel(t *testing.T) {
	blob, desc := newBlob(1<<20, 27)
	reg := newRegistry(t, blob, desc)
	reg.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 0 {
			return false
		}
		w.Header().Set("Content-Range", "bytes 0-0/1") // never reached
		<-r.Context().Done()
		return true
	}
	ctx, cancel := context.WithCancel(t.Context())
	rc, err := reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithSplitBelow(fetch.SplitAlways)).Fetch(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAll() error = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Read returned %v after cancel, want promptly", d)
	}
}

func TestSplitWhenStreamSlow(t *testing.T) {
	blob, desc := newBlob(1<<20, 50)
	reg := newRegistry(t, blob, desc)
	// Every stream is slower than this: the split is decided after the
	// first window, whatever the machine's speed.
	f := reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithSplitBelow(1<<62))
	got, err := readAll(t, t.Context(), f, desc)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, blob)
	reqs := reg.requests()
	if len(reqs) < 3 || reqs[0].Range != "" {
		t.Fatalf("requests = %+v, want a first one without Range, then chunks", reqs)
	}
	// The first stream was cut where the first chunk starts; the chunks
	// cover the rest of the blob, each byte once.
	var starts []int64
	ends := map[int64]int64{}
	for _, r := range reqs[1:] {
		from, to, ok := parseRange(r.Range, int64(len(blob)))
		if !ok || to-from > testChunk {
			t.Fatalf("request with Range %q, want one chunk", r.Range)
		}
		starts = append(starts, from)
		ends[from] = to
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	// A probe window ends after 2 chunks or after probeTime (100 ms in
	// fetch) spent waiting for the connection, whichever comes first. When
	// the chunks were asked for within probeTime of the first request, no
	// window can have ended on time: the two windows were 4 chunks. On a
	// machine loaded enough to be slower, the windows may have been cut
	// short on time, and the split comes after at least one read.
	const probeTime = 100 * time.Millisecond
	if took := reqs[1].At.Sub(reqs[0].At); took < probeTime {
		if cut := starts[0]; cut < 5*testChunk {
			t.Errorf("first chunk at %d, want a chunk past the two probe windows (%d bytes)", cut, 4*testChunk)
		}
	} else if cut := starts[0]; cut <= testChunk {
		t.Errorf("first chunk at %d, want one past the bytes read in the probe windows (split after %v)", cut, took)
	}
	for i := 1; i < len(starts); i++ {
		if ends[starts[i-1]] != starts[i] {
			t.Fatalf("chunks %v do not follow each other", starts)
		}
	}
	if last := ends[starts[len(starts)-1]]; last != int64(len(blob)) {
		t.Errorf("chunks end at %d, want %d", last, len(blob))
	}
	// The reader reads one connection itself: the others have a buffer.
	if out, peak := fetch.ChunkBuffers(f); out != 0 || peak < 1 || peak > testParallel-1 {
		t.Errorf("chunk buffers: %d out after the download, at most %d at once; want 0, and between 1 and %d", out, peak, testParallel-1)
	}
}

func TestFastStreamNotSplit(t *testing.T) {
	blob, desc := newBlob(1<<20, 51)
	reg := newRegistry(t, blob, desc)
	// 1 byte per second: no stream is that slow.
	f := reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithSplitBelow(1))
	got, err := readAll(t, t.Context(), f, desc)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, blob)
	if reqs := reg.requests(); len(reqs) != 1 || reqs[0].Range != "" {
		t.Errorf("requests = %+v, want one without Range", reqs)
	}
	if _, peak := fetch.ChunkBuffers(f); peak != 0 {
		t.Errorf("%d chunk buffers used by a single stream, want 0", peak)
	}
}

// blobServer serves blobs of testRepo by digest, with Range support, and
// counts the requests.
type blobServer struct {
	srv   *httptest.Server
	blobs map[string][]byte
	reqs  atomic.Int64
}

func newBlobServer(t *testing.T, blobs ...[]byte) (*blobServer, []ocispec.Descriptor) {
	t.Helper()
	bs := &blobServer{blobs: map[string][]byte{}}
	var descs []ocispec.Descriptor
	for _, b := range blobs {
		d := ocispec.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digest.FromBytes(b), Size: int64(len(b))}
		bs.blobs["/v2/"+testRepo+"/blobs/"+d.Digest.String()] = b
		descs = append(descs, d)
	}
	bs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bs.reqs.Add(1)
		b, ok := bs.blobs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		serveRange(w, r, b, false)
	}))
	t.Cleanup(bs.srv.Close)
	return bs, descs
}

func (bs *blobServer) repo(opts ...fetch.Option) *fetch.Repository {
	base := []fetch.Option{fetch.WithClient(bs.srv.Client()), fetch.WithPlainHTTP(), fetch.WithBackoff(time.Millisecond, 5*time.Millisecond)}
	return fetch.New(strings.TrimPrefix(bs.srv.URL, "http://"), testRepo, append(base, opts...)...)
}

// TestChunkMemoryBudget downloads several blobs at once, all split, and
// checks that their chunk buffers, together, never exceed the
// Repository's budget, including when the budget allows only one.
func TestChunkMemoryBudget(t *testing.T) {
	tests := []struct {
		name        string
		chunk       int64
		parallelism int
		memory      int64
		blobSize    int
	}{
		// 16 buffers for 4 blobs that would use 7 each.
		{"shared", testChunk, 8, 1 << 20, 1 << 20},
		// One buffer for 3 blobs: most of the time, single streams.
		{"one buffer", 1 << 20, 4, 1 << 20, 5<<20 + 123},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var blobs [][]byte
			for i := range 4 {
				b, _ := newBlob(tt.blobSize+i*1000, uint64(60+i))
				blobs = append(blobs, b)
			}
			bs, descs := newBlobServer(t, blobs...)
			f := bs.repo(fetch.WithParallel(tt.chunk, tt.parallelism), fetch.WithChunkMemory(tt.memory), fetch.WithSplitBelow(fetch.SplitAlways))
			budget := int(tt.memory / tt.chunk)
			var wg sync.WaitGroup
			for i, desc := range descs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := readAll(t, t.Context(), f, desc)
					if err != nil {
						t.Errorf("blob %d: %v", i, err)
						return
					}
					if !bytes.Equal(got, blobs[i]) {
						t.Errorf("blob %d: got %d bytes (digest %s), want %s", i, len(got), digest.FromBytes(got), desc.Digest)
					}
				}()
			}
			wg.Wait()
			out, peak := fetch.ChunkBuffers(f)
			if peak > budget {
				t.Errorf("%d chunk buffers out at once, budget %d", peak, budget)
			}
			if want := min(budget, tt.parallelism-1); peak < want {
				t.Errorf("at most %d chunk buffers out at once, want at least %d: the downloads did not split", peak, want)
			}
			if out != 0 {
				t.Errorf("%d chunk buffers still out after the downloads", out)
			}
			if n := bs.reqs.Load(); n <= int64(len(blobs)) {
				t.Errorf("%d requests for %d blobs, want more: split downloads", n, len(blobs))
			}
		})
	}
}
