package integration

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pusher uploads images through a registry's HTTP API, as docker push does:
// each blob with a POST that opens an upload and a PUT that completes it
// monolithically, then the manifests, children before the index.
type pusher struct {
	// base is the registry's URL, "http://127.0.0.1:PORT".
	base string
	// client sends the requests; nil means http.DefaultClient.
	client *http.Client
	// authorize, when not nil, adds credentials to a request for repo.
	authorize func(req *http.Request, repo string)
}

// do sends a request for repo and fails the test unless the answer has
// status want. It returns the response, whose body has been read.
func (p pusher) do(t *testing.T, repo, method, u, contentType string, body []byte, want int) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if p.authorize != nil {
		p.authorize(req, repo)
	}
	client := p.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s %s, want %d", method, u, resp.Status, msg, want)
	}
	return resp
}

// blob uploads data to repo.
func (p pusher) blob(t *testing.T, repo string, data []byte) {
	t.Helper()
	start := p.base + "/v2/" + repo + "/blobs/uploads/"
	resp := p.do(t, repo, http.MethodPost, start, "", nil, http.StatusAccepted)
	loc, err := resp.Location() // resolved against the request's URL
	if err != nil {
		t.Fatalf("POST %s: no upload location: %v", start, err)
	}
	q := loc.Query()
	q.Set("digest", digest.FromBytes(data).String())
	loc.RawQuery = q.Encode()
	p.do(t, repo, http.MethodPut, loc.String(), "application/octet-stream", data, http.StatusCreated)
}

// manifest uploads a manifest or index of mediaType to repo under ref,
// a tag or a digest.
func (p pusher) manifest(t *testing.T, repo, ref, mediaType string, data []byte) {
	t.Helper()
	u := p.base + "/v2/" + repo + "/manifests/" + url.PathEscape(ref)
	resp := p.do(t, repo, http.MethodPut, u, mediaType, data, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != digest.FromBytes(data).String() {
		t.Fatalf("PUT %s: Docker-Content-Digest %q, want %s", u, got, digest.FromBytes(data))
	}
}

// image uploads img's layers, config and manifest to repo, the manifest
// under tag, or under its digest when tag is "". It returns the manifest's
// descriptor.
func (p pusher) image(t *testing.T, repo, tag string, img image) ocispec.Descriptor {
	t.Helper()
	for _, l := range img.Layers {
		p.blob(t, repo, l.Data)
	}
	p.blob(t, repo, img.ConfigBytes)
	if tag == "" {
		tag = img.Manifest.Digest.String()
	}
	p.manifest(t, repo, tag, img.Manifest.MediaType, img.ManifestBytes)
	return img.Manifest
}

// index uploads every image of idx by digest, then idx itself under tag.
func (p pusher) index(t *testing.T, repo, tag string, idx index) ocispec.Descriptor {
	t.Helper()
	for _, img := range idx.Images {
		p.image(t, repo, "", img)
	}
	p.manifest(t, repo, tag, idx.Desc.MediaType, idx.Bytes)
	return idx.Desc
}
