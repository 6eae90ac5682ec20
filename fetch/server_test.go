package fetch_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
)

const testRepo = "demo/app"

// newBlob returns n pseudo-random bytes and their layer descriptor.
func newBlob(n int, seed uint64) ([]byte, ocispec.Descriptor) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	b = b[:n:n]
	return b, ocispec.Descriptor{MediaType: handlers.MediaTypeImageLayerGzip, Digest: digest.FromBytes(b), Size: int64(n)}
}

// reqInfo is what the test registry saw of one request.
type reqInfo struct {
	Method, Path, Query, Range, Auth, Accept, AcceptEncoding, UserAgent string
	At                                                                  time.Time
}

// registry is a test registry serving one blob under testRepo, with Range
// support and fault injection.
type registry struct {
	t    *testing.T
	blob []byte
	desc ocispec.Descriptor
	srv  *httptest.Server

	// fault, when set, is called for the n-th request (from 0) before it is
	// served; it returns true when it answered the request itself.
	fault func(w http.ResponseWriter, r *http.Request, n int) bool
	// ignoreRange makes the registry answer every request with the whole blob.
	ignoreRange bool
	// gate, when set, is called while a request is counted in flight,
	// before its body is written, with the live count of requests in flight.
	gate func(r *http.Request, inflight *atomic.Int64)

	mu          sync.Mutex
	reqs        []reqInfo
	sent        atomic.Int64 // body bytes written, all requests
	inflight    atomic.Int64
	maxInflight atomic.Int64
	conns       atomic.Int64 // connections accepted
}

func newRegistry(t *testing.T, blob []byte, desc ocispec.Descriptor) *registry {
	t.Helper()
	reg := &registry{t: t, blob: blob, desc: desc}
	reg.srv = httptest.NewUnstartedServer(http.HandlerFunc(reg.serve))
	reg.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			reg.conns.Add(1)
		}
	}
	reg.srv.Start()
	t.Cleanup(reg.srv.Close)
	return reg
}

// host is the registry's host:port.
func (reg *registry) host() string { return strings.TrimPrefix(reg.srv.URL, "http://") }

// repo returns a fetcher for the test registry, with fast retries.
func (reg *registry) repo(opts ...fetch.Option) *fetch.Repository {
	base := []fetch.Option{
		fetch.WithClient(reg.srv.Client()),
		fetch.WithPlainHTTP(),
		fetch.WithBackoff(time.Millisecond, 5*time.Millisecond),
	}
	return fetch.New(reg.host(), testRepo, append(base, opts...)...)
}

// sentTotal closes the server, which waits for the requests being served,
// and returns the body bytes it wrote: a request counts its bytes once its
// write returns, which may be after the client has read them all.
func (reg *registry) sentTotal() int64 {
	reg.srv.Close()
	return reg.sent.Load()
}

func (reg *registry) requests() []reqInfo {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return append([]reqInfo(nil), reg.reqs...)
}

func (reg *registry) serve(w http.ResponseWriter, r *http.Request) {
	reg.mu.Lock()
	n := len(reg.reqs)
	reg.reqs = append(reg.reqs, reqInfo{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization"),
		Accept: r.Header.Get("Accept"), AcceptEncoding: r.Header.Get("Accept-Encoding"),
		UserAgent: r.Header.Get("User-Agent"), At: time.Now(),
	})
	reg.mu.Unlock()
	in := reg.inflight.Add(1)
	defer reg.inflight.Add(-1)
	for {
		m := reg.maxInflight.Load()
		if in <= m || reg.maxInflight.CompareAndSwap(m, in) {
			break
		}
	}
	if reg.fault != nil && reg.fault(w, r, n) {
		return
	}
	want := "/v2/" + testRepo + "/blobs/" + reg.desc.Digest.String()
	if mt := reg.desc.MediaType; handlers.IsManifest(mt) || handlers.IsIndex(mt) || handlers.IsSchema1(mt) {
		want = "/v2/" + testRepo + "/manifests/" + reg.desc.Digest.String()
	}
	if r.URL.Path != want {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":{"path":"x"}}]}`)
		return
	}
	if reg.gate != nil {
		reg.gate(r, &reg.inflight)
	}
	reg.sent.Add(serveRange(w, r, reg.blob, reg.ignoreRange))
}

// serveRange writes blob, or the part of it a Range header asks for, and
// returns how many body bytes it wrote.
func serveRange(w http.ResponseWriter, r *http.Request, blob []byte, ignoreRange bool) int64 {
	size := int64(len(blob))
	from, to := int64(0), size
	status := http.StatusOK
	if h := r.Header.Get("Range"); h != "" && !ignoreRange {
		var ok bool
		from, to, ok = parseRange(h, size)
		if !ok {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return 0
		}
		status = http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to-1, size))
	}
	if !ignoreRange {
		w.Header().Set("Accept-Ranges", "bytes")
	}
	w.Header().Set("Content-Length", strconv.FormatInt(to-from, 10))
	w.WriteHeader(status)
	n, _ := w.Write(blob[from:to])
	return int64(n)
}

// parseRange reads "bytes=a-" or "bytes=a-b" into [from, to).
func parseRange(h string, size int64) (from, to int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	from, err := strconv.ParseInt(a, 10, 64)
	if err != nil || from < 0 || from >= size {
		return 0, 0, false
	}
	to = size
	if b != "" {
		last, err := strconv.ParseInt(b, 10, 64)
		if err != nil || last < from {
			return 0, 0, false
		}
		to = min(last+1, size)
	}
	return from, to, true
}

// dropAfter answers r like serveRange, but sends only n body bytes and then
// closes the connection: with a FIN, or with a RST when reset is true.
// It returns the body bytes written.
func dropAfter(t *testing.T, w http.ResponseWriter, r *http.Request, blob []byte, n int64, ignoreRange, reset bool) int64 {
	t.Helper()
	size := int64(len(blob))
	from, to := int64(0), size
	status := http.StatusOK
	hdr := http.Header{}
	if h := r.Header.Get("Range"); h != "" && !ignoreRange {
		var ok bool
		if from, to, ok = parseRange(h, size); !ok {
			t.Errorf("bad Range %q", h)
			return 0
		}
		status = http.StatusPartialContent
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to-1, size))
	}
	if !ignoreRange {
		hdr.Set("Accept-Ranges", "bytes")
	}
	hdr.Set("Content-Length", strconv.FormatInt(to-from, 10))
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return 0
	}
	defer conn.Close()
	n = min(n, to-from)
	writeRaw(buf, status, hdr, blob[from:from+n])
	if reset {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	return n
}

func writeRaw(buf *bufio.ReadWriter, status int, hdr http.Header, body []byte) {
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	_ = hdr.Write(buf)
	buf.WriteString("\r\n")
	buf.Write(body)
	_ = buf.Flush()
}

// events collects observed events; it fails the test if the observer is
// called concurrently.
type events struct {
	t    *testing.T
	busy atomic.Bool
	mu   sync.Mutex
	list []fetch.Event
}

func (e *events) observe(ev fetch.Event) {
	if !e.busy.CompareAndSwap(false, true) {
		e.t.Errorf("observer called concurrently (%v)", ev.Kind)
	}
	defer e.busy.Store(false)
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
}

func (e *events) of(kind fetch.EventKind) []fetch.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []fetch.Event
	for _, ev := range e.list {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// authClient returns an auth.Client with basic credentials for reg's host.
func authClient(reg *registry) *auth.Client {
	return auth.NewClient(
		auth.WithKeychain(auth.Static(reg.host(), auth.Credential{Username: "u", Password: "p"})),
		auth.WithHTTPClient(reg.srv.Client()),
	)
}

// regexpQuote returns a pattern matching s literally.
func regexpQuote(s string) *regexp.Regexp { return regexp.MustCompile(regexp.QuoteMeta(s)) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
