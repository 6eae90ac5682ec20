package fetch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"

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
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithParallel(testChunk, testParallel)), desc)
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
	if sent := reg.sent.Load(); sent != int64(len(blob)) {
		t.Errorf("registry sent %d bytes, want %d", sent, len(blob))
	}
}

func TestChunkedSmallBlobIsOneStream(t *testing.T) {
	blob, desc := newBlob(3*testChunk, 21) // under 4 chunks
	reg := newRegistry(t, blob, desc)
	if _, err := readAll(t, t.Context(), reg.repo(fetch.WithParallel(testChunk, testParallel)), desc); err != nil {
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
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithParallel(testChunk, testParallel)), desc)
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
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithParallel(testChunk, testParallel)), desc)
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
	got, err := readAll(t, t.Context(), reg.repo(fetch.WithParallel(testChunk, testParallel), fetch.WithObserver(ev.observe)), desc)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, blob)
	if len(ev.of(fetch.Resumed)) == 0 {
		t.Error("no Resumed event")
	}
	if sent, limit := reg.sent.Load(), int64(len(blob))*11/10; sent > limit {
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
	rc, err := reg.repo(fetch.WithParallel(testChunk, testParallel)).Fetch(t.Context(), desc)
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
	f := reg.repo(fetch.WithParallel(testChunk, testParallel))
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
	rc, err := reg.repo(fetch.WithParallel(testChunk, testParallel)).Fetch(ctx, desc)
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
