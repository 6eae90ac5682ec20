package registrytest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/resolve/registrytest"
)

// blobFixture starts a registry holding one 1000-byte blob in "f/blob".
func blobFixture(t *testing.T, opts ...registrytest.Option) (*registrytest.Registry, []byte, string) {
	t.Helper()
	reg := registrytest.NewT(t, opts...)
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	desc := reg.PushBlob("f/blob", data)
	return reg, data, reg.URL() + "/v2/f/blob/blobs/" + desc.Digest.String()
}

func TestFaultStatus(t *testing.T) {
	reg, data, u := blobFixture(t)
	inj := reg.Inject(registrytest.Fault{Kind: registrytest.FaultStatus, Status: 503, RetryAfter: 2 * time.Second, Times: 2})
	for i := range 2 {
		resp, body := do(t, reg.Client(), "GET", u, nil, "")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" || errCode(t, body) != "UNAVAILABLE" {
			t.Fatalf("request %d = %d %q %s", i, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if resp, body := do(t, reg.Client(), "GET", u, nil, ""); resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("third request = %d", resp.StatusCode)
	}
	if inj.Hits() != 2 || !inj.Spent() {
		t.Errorf("Hits() = %d, Spent() = %v", inj.Hits(), inj.Spent())
	}

	reg.Inject(registrytest.Fault{Kind: registrytest.FaultStatus, Times: 1})
	resp, body := do(t, reg.Client(), "GET", reg.URL()+"/v2/", nil, "")
	if resp.StatusCode != 500 || resp.Header.Get("Retry-After") != "" || errCode(t, body) != "UNKNOWN" {
		t.Errorf("default status = %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := reg.Requests(); !slices.Equal(got[len(got)-1].Faults, []registrytest.FaultKind{registrytest.FaultStatus}) {
		t.Errorf("Request.Faults = %v", got[len(got)-1].Faults)
	}
}

func TestFaultTooManyRequests(t *testing.T) {
	tests := []struct {
		retryAfter time.Duration
		want       string
	}{
		{0, "0"},
		{time.Second, "1"},
		{1500 * time.Millisecond, "2"},
		{-1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.retryAfter.String(), func(t *testing.T) {
			// Status faults come before authentication.
			reg, _, u := blobFixture(t, registrytest.WithBasicAuth("u", "p"))
			reg.Inject(registrytest.Fault{Kind: registrytest.FaultTooManyRequests, RetryAfter: tt.retryAfter, Times: 1})
			resp, body := do(t, reg.Client(), "GET", u, nil, "")
			if resp.StatusCode != 429 || errCode(t, body) != "TOOMANYREQUESTS" {
				t.Fatalf("status = %d %s", resp.StatusCode, body)
			}
			if got, ok := resp.Header["Retry-After"]; tt.want == "" && ok || tt.want != "" && (len(got) != 1 || got[0] != tt.want) {
				t.Errorf("Retry-After = %q, want %q", got, tt.want)
			}
			if resp, _ := do(t, reg.Client(), "GET", u, nil, ""); resp.StatusCode != 401 {
				t.Errorf("next request = %d, want 401", resp.StatusCode)
			}
		})
	}
}

func TestFaultSelectors(t *testing.T) {
	reg := registrytest.NewT(t)
	img := registrytest.RandomImage(5, 2, 100)
	reg.PushImage("sel", "v1", img)
	l0, l1 := img.Layers[0].Descriptor.Digest, img.Layers[1].Descriptor.Digest
	blob := func(d digest.Digest) string { return reg.URL() + "/v2/sel/blobs/" + d.String() }

	tests := []struct {
		name   string
		fault  registrytest.Fault
		method string
		url    string
		want   int
	}{
		{"digest matches", registrytest.Fault{Digest: l0}, "GET", blob(l0), 500},
		{"digest does not match", registrytest.Fault{Digest: l0}, "GET", blob(l1), 200},
		{"digest matches a tag", registrytest.Fault{Digest: img.Manifest.Digest}, "GET", reg.URL() + "/v2/sel/manifests/v1", 500},
		{"method matches", registrytest.Fault{Method: "HEAD"}, "HEAD", blob(l0), 500},
		{"method does not match", registrytest.Fault{Method: "HEAD"}, "GET", blob(l0), 200},
		{"path matches", registrytest.Fault{Path: "/manifests/"}, "GET", reg.URL() + "/v2/sel/manifests/v1", 500},
		{"path does not match", registrytest.Fault{Path: "/manifests/"}, "GET", blob(l0), 200},
		{"other server", registrytest.Fault{Server: registrytest.ServerCDN}, "GET", blob(l0), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fault.Kind = registrytest.FaultStatus
			inj := reg.Inject(tt.fault)
			defer inj.Remove()
			resp, _ := do(t, reg.Client(), tt.method, tt.url, nil, "")
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.want)
			}
			if wantHits := map[bool]int{true: 1, false: 0}[tt.want == 500]; inj.Hits() != wantHits {
				t.Errorf("Hits() = %d, want %d", inj.Hits(), wantHits)
			}
		})
	}
}

func TestFaultRemoveAndClear(t *testing.T) {
	reg, _, u := blobFixture(t, registrytest.WithFault(registrytest.Fault{Kind: registrytest.FaultStatus, Status: 502}))
	for range 3 { // Times 0: every request
		if resp, _ := do(t, reg.Client(), "GET", u, nil, ""); resp.StatusCode != 502 {
			t.Fatalf("status = %d, want 502 from WithFault", resp.StatusCode)
		}
	}
	reg.ClearFaults()
	if resp, _ := do(t, reg.Client(), "GET", u, nil, ""); resp.StatusCode != 200 {
		t.Fatalf("after ClearFaults = %d", resp.StatusCode)
	}
	inj := reg.Inject(registrytest.Fault{Kind: registrytest.FaultStatus})
	if resp, _ := do(t, reg.Client(), "GET", u, nil, ""); resp.StatusCode != 500 {
		t.Fatalf("injected = %d", resp.StatusCode)
	}
	inj.Remove()
	inj.Remove()
	if resp, _ := do(t, reg.Client(), "GET", u, nil, ""); resp.StatusCode != 200 || !inj.Spent() || inj.Hits() != 1 {
		t.Fatalf("after Remove = %d, Spent %v, Hits %d", resp.StatusCode, inj.Spent(), inj.Hits())
	}
	// The first answering fault wins and only it is consumed.
	first := reg.Inject(registrytest.Fault{Kind: registrytest.FaultStatus, Status: 503, Times: 1})
	second := reg.Inject(registrytest.Fault{Kind: registrytest.FaultTooManyRequests, Times: 1})
	codes := []int{}
	for range 3 {
		resp, _ := do(t, reg.Client(), "GET", u, nil, "")
		codes = append(codes, resp.StatusCode)
	}
	if !slices.Equal(codes, []int{503, 429, 200}) || first.Hits() != 1 || second.Hits() != 1 {
		t.Errorf("statuses = %v, hits %d %d", codes, first.Hits(), second.Hits())
	}
}

// readAllErr reads a response body to its end or error.
func readAllErr(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestFaultReset(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tls], func(t *testing.T) {
			var opts []registrytest.Option
			if tls {
				opts = append(opts, registrytest.WithTLS())
			}
			reg, data, u := blobFixture(t, opts...)
			d := digest.FromBytes(data)
			reg.Inject(registrytest.Fault{Kind: registrytest.FaultReset, Bytes: 300, Times: 1})

			req, _ := http.NewRequest("GET", u, nil)
			resp, got, err := readAllErr(t, reg.Client(), req)
			if err == nil || resp.StatusCode != 200 || !bytes.Equal(got, data[:300]) {
				t.Fatalf("reset body: status %d, %d bytes, err %v; want 300 bytes and an error", resp.StatusCode, len(got), err)
			}
			// The client resumes where the body broke.
			req, _ = http.NewRequest("GET", u, nil)
			req.Header.Set("Range", "bytes=300-")
			resp, rest, err := readAllErr(t, reg.Client(), req)
			if err != nil || resp.StatusCode != 206 || !bytes.Equal(append(got, rest...), data) {
				t.Fatalf("resume: status %d, err %v", resp.StatusCode, err)
			}
			if n := reg.BlobBytesServed(d); n != int64(len(data)) {
				t.Errorf("BlobBytesServed() = %d, want %d: nothing sent twice", n, len(data))
			}
			if r := reg.Requests()[0]; r.Bytes != 300 || !slices.Equal(r.Faults, []registrytest.FaultKind{registrytest.FaultReset}) {
				t.Errorf("Requests()[0] = %+v", r)
			}
		})
	}
}

// TestFaultResetExact resets a large body while the client is not reading:
// the client still gets exactly the bytes before the reset.
func TestFaultResetExact(t *testing.T) {
	reg := registrytest.NewT(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
	desc := reg.PushBlob("big", data)
	const cut = 3 << 20
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultReset, Bytes: cut})
	resp, err := reg.Client().Get(reg.URL() + "/v2/big/blobs/" + desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Let the server write up to the cut before reading anything.
	for reg.Requests()[0].Bytes < cut {
		time.Sleep(time.Millisecond)
	}
	got, err := io.ReadAll(resp.Body)
	if err == nil || len(got) != cut || !bytes.Equal(got, data[:cut]) {
		t.Fatalf("read %d bytes, err %v; want %d and an error", len(got), err, cut)
	}
}

func TestFaultClose(t *testing.T) {
	reg, data, u := blobFixture(t, registrytest.WithTLS())
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultClose, Bytes: 123, Times: 1})
	req, _ := http.NewRequest("GET", u, nil)
	_, got, err := readAllErr(t, reg.Client(), req)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(got, data[:123]) {
		t.Fatalf("closed body: %d bytes, err %v; want 123 and io.ErrUnexpectedEOF", len(got), err)
	}
	if resp, body := do(t, reg.Client(), "GET", u, nil, ""); resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("next request = %d", resp.StatusCode)
	}
}

func TestFaultResetBeyondBody(t *testing.T) {
	reg, data, u := blobFixture(t)
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultReset, Bytes: 5000})
	req, _ := http.NewRequest("GET", u, nil)
	if _, got, err := readAllErr(t, reg.Client(), req); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("body shorter than Bytes: %d bytes, %v; want it whole", len(got), err)
	}
	// HEAD has no body: reset does not apply.
	if resp, _ := do(t, reg.Client(), "HEAD", u, nil, ""); resp.StatusCode != 200 {
		t.Fatalf("HEAD = %d", resp.StatusCode)
	}
}

func TestFaultStall(t *testing.T) {
	reg, data, u := blobFixture(t)
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultStall, Bytes: 64, Times: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := reg.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 64)
	if _, err := io.ReadFull(resp.Body, head); err != nil || !bytes.Equal(head, data[:64]) {
		t.Fatalf("first bytes: %v", err)
	}
	cancel() // the client gives up
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a stalled body ended without error")
	}
	// The next request is served normally.
	if resp, body := do(t, reg.Client(), "GET", u, nil, ""); resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("next request = %d", resp.StatusCode)
	}
}

func TestFaultStallEndsOnClose(t *testing.T) {
	reg := registrytest.New()
	defer reg.Close()
	desc := reg.PushBlob("s", bytes.Repeat([]byte("x"), 100))
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultStall, Bytes: 10})
	resp, err := reg.Client().Get(reg.URL() + "/v2/s/blobs/" + desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	reg.Close() // returns although a body is stalled
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a stalled body ended without error after Close")
	}
}

// TestCloseAbandonedBody checks that Close returns while a client holds a
// large body it stopped reading.
func TestCloseAbandonedBody(t *testing.T) {
	reg := registrytest.New()
	defer reg.Close()
	desc := reg.PushBlob("big", bytes.Repeat([]byte{7}, 16<<20))
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultTrickle, Bytes: 1 << 20, Interval: time.Hour})
	resp, err := reg.Client().Get(reg.URL() + "/v2/big/blobs/" + desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	reg.ClearFaults()
	resp2, err := reg.Client().Get(reg.URL() + "/v2/big/blobs/" + desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	reg.Close() // one handler sleeps, the other is blocked writing
	if _, err := io.ReadAll(resp2.Body); err == nil {
		t.Error("an abandoned body ended without error after Close")
	}
}

func TestFaultTrickle(t *testing.T) {
	reg, data, u := blobFixture(t)
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultTrickle, Bytes: 100, Interval: time.Millisecond, Times: 2})
	if resp, body := do(t, reg.Client(), "GET", u, nil, ""); resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("trickled body = %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, body := do(t, reg.Client(), "GET", u, h("Range", "bytes=950-"), ""); resp.StatusCode != 206 || !bytes.Equal(body, data[950:]) {
		t.Fatalf("trickled range = %d, %d bytes", resp.StatusCode, len(body))
	}
	for _, r := range reg.Requests() {
		if !slices.Equal(r.Faults, []registrytest.FaultKind{registrytest.FaultTrickle}) {
			t.Errorf("Faults = %v", r.Faults)
		}
	}
}

func TestFaultIgnoreRange(t *testing.T) {
	reg, data, u := blobFixture(t)
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultIgnoreRange, Times: 1})
	resp, body := do(t, reg.Client(), "GET", u, h("Range", "bytes=10-19"), "")
	if resp.StatusCode != 200 || !bytes.Equal(body, data) || resp.Header.Get("Accept-Ranges") != "" || resp.Header.Get("Content-Range") != "" {
		t.Fatalf("ignored range = %d, %d bytes, %v", resp.StatusCode, len(body), resp.Header)
	}
	resp, body = do(t, reg.Client(), "GET", u, h("Range", "bytes=10-19"), "")
	if resp.StatusCode != 206 || !bytes.Equal(body, data[10:20]) {
		t.Fatalf("next range = %d", resp.StatusCode)
	}
}

func TestFaultCorrupt(t *testing.T) {
	reg := registrytest.NewT(t)
	img := registrytest.RandomImage(9, 1, 500)
	reg.PushImage("c", "v1", img)
	l := img.Layers[0]
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultCorrupt, Times: 3})

	check := func(name, url string, want []byte, rng string) {
		t.Helper()
		var hdr http.Header
		if rng != "" {
			hdr = h("Range", rng)
		}
		resp, body := do(t, reg.Client(), "GET", url, hdr, "")
		if resp.StatusCode/100 != 2 || len(body) != len(want) || bytes.Equal(body, want) {
			t.Errorf("%s: status %d, %d bytes (want %d, corrupted)", name, resp.StatusCode, len(body), len(want))
		}
	}
	check("layer", reg.URL()+"/v2/c/blobs/"+l.Descriptor.Digest.String(), l.Data, "")
	check("layer range", reg.URL()+"/v2/c/blobs/"+l.Descriptor.Digest.String(), l.Data[100:200], "bytes=100-199")
	check("manifest", reg.URL()+"/v2/c/manifests/v1", img.ManifestBytes, "")

	resp, body := do(t, reg.Client(), "GET", reg.URL()+"/v2/c/blobs/"+l.Descriptor.Digest.String(), nil, "")
	if digest.FromBytes(body) != l.Descriptor.Digest || resp.Header.Get("Docker-Content-Digest") != l.Descriptor.Digest.String() {
		t.Errorf("after the fault is spent the blob is still wrong")
	}
}

func TestFaultCombined(t *testing.T) {
	reg, data, u := blobFixture(t)
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultCorrupt, Times: 1})
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultReset, Bytes: 10, Times: 1})
	req, _ := http.NewRequest("GET", u, nil)
	_, got, err := readAllErr(t, reg.Client(), req)
	if err == nil || len(got) != 10 || got[0] != ^data[0] {
		t.Fatalf("corrupt+reset: %d bytes, %v", len(got), err)
	}
	if r := reg.Requests()[0]; !slices.Equal(r.Faults, []registrytest.FaultKind{registrytest.FaultCorrupt, registrytest.FaultReset}) {
		t.Errorf("Faults = %v", r.Faults)
	}
}

func TestFaultRedirect(t *testing.T) {
	reg, data, u := blobFixture(t, registrytest.WithBasicAuth("alice", "pw"))
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultRedirect})
	noFollow := *reg.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	// Unauthorized requests are not redirected.
	if resp, _ := do(t, &noFollow, "GET", u, nil, ""); resp.StatusCode != 401 {
		t.Fatalf("unauthenticated = %d, want 401", resp.StatusCode)
	}
	auth := h("Authorization", basic("alice", "pw"))
	resp, _ := do(t, &noFollow, "HEAD", u, auth, "")
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 307 || err != nil || "http://"+loc.Host != reg.CDNURL() || loc.Query().Get("sig") == "" {
		t.Fatalf("HEAD = %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A client that drops credentials on the redirect gets the blob, with ranges.
	resp, body := do(t, reg.Client(), "GET", loc.String(), h("Range", "bytes=0-99"), "")
	if resp.StatusCode != 206 || !bytes.Equal(body, data[:100]) || resp.Header.Get("Docker-Content-Digest") != "" {
		t.Fatalf("CDN range = %d, %d bytes", resp.StatusCode, len(body))
	}
	if reg.CDNSawAuthorization() {
		t.Fatal("CDNSawAuthorization() = true before any credential was sent")
	}

	// Go's client forwards Authorization to the same host name on another
	// port: the CDN refuses, and says so.
	resp, _ = do(t, reg.Client(), "GET", u, auth, "")
	if resp.StatusCode != 400 || !reg.CDNSawAuthorization() {
		t.Fatalf("GET with forwarded credentials = %d, CDNSawAuthorization %v", resp.StatusCode, reg.CDNSawAuthorization())
	}
	reqs := reg.Requests()
	last := reqs[len(reqs)-1]
	if last.Server != registrytest.ServerCDN || !last.Authorization || last.Status != 400 {
		t.Errorf("last request = %+v", last)
	}
	reg.ResetStats()
	if reg.CDNSawAuthorization() {
		t.Error("CDNSawAuthorization() survived ResetStats")
	}

	// A CDN-side fault.
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultStatus, Server: registrytest.ServerCDN, Status: 503, Times: 1})
	if resp, _ := do(t, reg.Client(), "GET", loc.String(), nil, ""); resp.StatusCode != 503 {
		t.Errorf("CDN fault = %d", resp.StatusCode)
	}
	if resp, _ := do(t, reg.Client(), "GET", reg.CDNURL()+"/blobs/"+digest.FromString("x").String(), nil, ""); resp.StatusCode != 404 {
		t.Errorf("CDN unknown blob = %d", resp.StatusCode)
	}
	if resp, _ := do(t, reg.Client(), "PUT", loc.String(), nil, ""); resp.StatusCode != 405 {
		t.Errorf("CDN PUT = %d", resp.StatusCode)
	}
}

func TestFaultToken(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("a", "b"))
	reg.Inject(registrytest.Fault{Kind: registrytest.FaultStatus, Server: registrytest.ServerToken, Status: 503, Times: 1})
	q := url.Values{"service": {registrytest.Service}}
	if resp, _ := do(t, reg.Client(), "GET", reg.TokenURL()+"?"+q.Encode(), nil, ""); resp.StatusCode != 503 {
		t.Fatalf("token fault = %d", resp.StatusCode)
	}
	if resp, _ := do(t, reg.Client(), "GET", reg.TokenURL()+"?"+q.Encode(), nil, ""); resp.StatusCode != 200 {
		t.Fatalf("token after fault = %d", resp.StatusCode)
	}
}

func TestFaultKindString(t *testing.T) {
	if got := registrytest.FaultReset.String(); got != "reset" {
		t.Errorf("FaultReset.String() = %q", got)
	}
	if got := registrytest.FaultKind(99).String(); got != "FaultKind(99)" {
		t.Errorf("FaultKind(99).String() = %q", got)
	}
}
