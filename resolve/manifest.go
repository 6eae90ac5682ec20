package resolve

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/internal/httpx"
	"github.com/pullkit/pullkit/reference"
)

// acceptManifests is the Accept header of manifest requests: every
// manifest and index type pullkit reads, most preferred first, then
// anything, so that a registry that knows only other types still answers.
var acceptManifests = strings.Join([]string{
	handlers.MediaTypeImageIndex,
	handlers.MediaTypeImageManifest,
	handlers.MediaTypeDockerSchema2ManifestList,
	handlers.MediaTypeDockerSchema2Manifest,
	handlers.MediaTypeDockerSchema1SignedManifest,
	handlers.MediaTypeDockerSchema1Manifest,
	"*/*",
}, ", ")

// maxErrorBody is how much of an error response is read for its codes.
const maxErrorBody = 64 << 10

// resolveOnce asks h once for ref's manifest: HEAD, then GET when the HEAD
// answer is not enough. When last is set (h is the last host), a HEAD 404
// is followed by a GET too: a few registries answer HEAD wrongly, and the
// GET's error document says what is missing (MANIFEST_UNKNOWN or
// NAME_UNKNOWN), which a HEAD answer cannot carry.
func (r *Registry) resolveOnce(ctx context.Context, h Host, ref reference.Reference, last bool) (ocispec.Descriptor, error) {
	prefix, repo := h.endpoint(ref.Repository)
	ctx = auth.WithScopes(ctx, auth.RepositoryScope(repo, auth.ActionPull))
	ctx, cancel := context.WithTimeout(ctx, manifestTimeout)
	defer cancel()
	scheme := "https"
	if h.plainHTTP() {
		scheme = "http"
	}
	u := &url.URL{Scheme: scheme, Host: h.Host, Path: strings.TrimSuffix(prefix, "/") + "/" + repo + "/manifests/" + ref.Object()}

	resp, err := r.send(ctx, h, http.MethodHead, u)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	switch c := resp.StatusCode; {
	case c == http.StatusOK:
		discard(resp)
		desc, ok, err := r.fromHead(resp, ref)
		if err != nil || ok {
			return desc, err
		}
	case c == http.StatusBadRequest, c == http.StatusMethodNotAllowed, c == http.StatusNotAcceptable, c == http.StatusNotImplemented,
		c == http.StatusNotFound && last:
		// HEAD refused: some registries and proxies only serve GET.
		discard(resp)
	default:
		return ocispec.Descriptor{}, responseError(resp)
	}
	return r.get(ctx, h, u, ref)
}

// fromHead builds the descriptor from a HEAD answer's headers. ok is
// false when they are not enough and the manifest must be fetched: no
// usable Docker-Content-Digest (for a tag), one that differs from the
// reference's digest, no Content-Length, or a media type that is not a
// known manifest type.
func (r *Registry) fromHead(resp *http.Response, ref reference.Reference) (desc ocispec.Descriptor, ok bool, err error) {
	size := resp.ContentLength
	if size > r.cfg.limit {
		return desc, false, &content.LimitError{What: "manifest size", Limit: r.cfg.limit, Got: size}
	}
	mt := contentType(resp.Header)
	if size < 0 || !knownType(mt) {
		return desc, false, nil
	}
	dh := headerDigest(resp.Header)
	d := ref.Digest
	switch {
	case d != "" && dh != "" && dh != d:
		return desc, false, nil
	case d == "" && dh == "":
		return desc, false, nil
	case d == "":
		d = dh
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: size}, true, nil
}

// get fetches the manifest at u and verifies it: against the reference's
// digest, else against Docker-Content-Digest when present.
func (r *Registry) get(ctx context.Context, h Host, u *url.URL, ref reference.Reference) (ocispec.Descriptor, error) {
	resp, err := r.send(ctx, h, http.MethodGet, u)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, responseError(resp)
	}
	defer resp.Body.Close()
	limit := r.cfg.limit
	if resp.ContentLength > limit {
		return ocispec.Descriptor{}, &content.LimitError{What: "manifest size", Limit: limit, Got: resp.ContentLength}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("GET %s: read manifest: %w", httpx.RedactURL(u), err)
	}
	if int64(len(body)) > limit {
		return ocispec.Descriptor{}, &content.LimitError{What: "manifest size", Limit: limit, Got: limit + 1}
	}
	mt := contentType(resp.Header)
	if !knownType(mt) {
		if mt, err = detectMediaType(body, mt); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	want := ref.Digest
	if want == "" {
		want = headerDigest(resp.Header)
	}
	d, err := manifestDigest(body, mt, want)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(body))}, nil
}

// send sends a manifest request to h.
func (r *Registry) send(ctx context.Context, h Host, method string, u *url.URL) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %w", method, httpx.RedactURL(u), err, errdefs.ErrInvalidArgument)
	}
	for k, vs := range h.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept", acceptManifests)
	// Sizes and digests are those of the bytes as stored.
	req.Header.Set("Accept-Encoding", "identity")
	return r.doer(h).Do(req)
}

// manifestDigest returns the digest of body that want must match, with
// want's algorithm (sha256 when want is ""). For a signed schema 1
// manifest that is the digest of its payload without the signatures, as
// registries compute it; the digest of the whole body is accepted too.
// A body that matches neither fails with a *content.MismatchError.
func manifestDigest(body []byte, mt string, want digest.Digest) (digest.Digest, error) {
	alg := digest.Canonical
	if want != "" {
		alg = want.Algorithm()
	}
	whole := alg.FromBytes(body)
	canonical, payload := whole, digest.Digest("")
	if mt == handlers.MediaTypeDockerSchema1SignedManifest {
		if p, ok := schema1Payload(body); ok {
			payload = alg.FromBytes(p)
			canonical = payload
		}
	}
	switch want {
	case "":
		return canonical, nil
	case whole, payload:
		return want, nil
	}
	return "", &content.MismatchError{Expected: want, Actual: canonical, ActualSize: int64(len(body))}
}

// schema1Payload returns a signed schema 1 manifest without its
// signatures: the body up to the protected header's formatLength,
// followed by its formatTail, as libtrust signs it.
func schema1Payload(body []byte) ([]byte, bool) {
	var jws struct {
		Signatures []struct {
			Protected string `json:"protected"`
		} `json:"signatures"`
	}
	if json.Unmarshal(body, &jws) != nil || len(jws.Signatures) == 0 {
		return nil, false
	}
	prot, err := b64url(jws.Signatures[0].Protected)
	if err != nil {
		return nil, false
	}
	var hdr struct {
		FormatLength int    `json:"formatLength"`
		FormatTail   string `json:"formatTail"`
	}
	if json.Unmarshal(prot, &hdr) != nil || hdr.FormatLength <= 0 || hdr.FormatLength > len(body) {
		return nil, false
	}
	tail, err := b64url(hdr.FormatTail)
	if err != nil {
		return nil, false
	}
	out := make([]byte, 0, hdr.FormatLength+len(tail))
	return append(append(out, body[:hdr.FormatLength]...), tail...), true
}

// b64url decodes base64url with or without padding.
func b64url(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// detectMediaType finds the media type of a manifest served with an
// unknown Content-Type (ct): its mediaType field, else its shape.
func detectMediaType(body []byte, ct string) (string, error) {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
		FSLayers      json.RawMessage `json:"fsLayers"`
		Signatures    json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return "", fmt.Errorf("not a manifest (Content-Type %q): %v: %w", ct, err, errdefs.ErrNotImplemented)
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType, nil
	case probe.SchemaVersion == 1 && probe.Signatures != nil:
		return handlers.MediaTypeDockerSchema1SignedManifest, nil
	case probe.SchemaVersion == 1 && probe.FSLayers != nil:
		return handlers.MediaTypeDockerSchema1Manifest, nil
	case probe.SchemaVersion == 2 && probe.Manifests != nil:
		return handlers.MediaTypeImageIndex, nil
	case probe.SchemaVersion == 2 && probe.Config != nil:
		return handlers.MediaTypeImageManifest, nil
	}
	return "", fmt.Errorf("not an image manifest or index (Content-Type %q, no mediaType): %w", ct, errdefs.ErrNotImplemented)
}

// knownType reports whether mt is a manifest or index type.
func knownType(mt string) bool {
	return handlers.IsIndex(mt) || handlers.IsManifest(mt) || handlers.IsSchema1(mt)
}

// contentType returns the media type of the Content-Type header, lower
// case, without parameters.
func contentType(h http.Header) string {
	v := h.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(v); err == nil {
		return mt
	}
	mt, _, _ := strings.Cut(v, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// headerDigest returns Docker-Content-Digest, or "" when it is absent or
// not a valid digest of an available algorithm.
func headerDigest(h http.Header) digest.Digest {
	d := digest.Digest(strings.TrimSpace(h.Get("Docker-Content-Digest")))
	if d == "" || d.Validate() != nil {
		return ""
	}
	return d
}

// responseError reads the registry's error document from resp, closes it
// and returns the error.
func responseError(resp *http.Response) *fetch.ResponseError {
	e := &fetch.ResponseError{StatusCode: resp.StatusCode}
	if resp.Request != nil {
		e.Method = resp.Request.Method
		e.URL = httpx.RedactURL(resp.Request.URL)
	}
	if d, ok := httpx.RetryAfter(resp.Header, time.Now()); ok {
		e.RetryAfter = d
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	var doc struct {
		Errors []fetch.RegistryError `json:"errors"`
	}
	if json.Unmarshal(body, &doc) == nil {
		for i, re := range doc.Errors {
			if i == 16 {
				break
			}
			re.Code = clip(re.Code)
			re.Message = clip(re.Message)
			e.Errors = append(e.Errors, re)
		}
	}
	return e
}

func clip(s string) string {
	const n = 512
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// transient reports whether a failure of a host may go away on retry.
func transient(err error) bool {
	var re *fetch.ResponseError
	if errors.As(err, &re) {
		c := re.StatusCode
		return c == http.StatusRequestTimeout || c == http.StatusTooManyRequests ||
			(c >= 500 && c <= 599 && c != http.StatusNotImplemented && c != http.StatusHTTPVersionNotSupported)
	}
	switch {
	case httpx.Permanent(err):
		return false
	case errdefs.IsUnavailable(err):
		return true
	case errdefs.IsInvalidArgument(err), errdefs.IsFailedPrecondition(err), errdefs.IsResourceExhausted(err),
		errdefs.IsNotImplemented(err), errdefs.IsNotFound(err), errdefs.IsUnauthorized(err),
		errdefs.IsPermissionDenied(err), errdefs.IsUnknown(err):
		return false
	}
	return true
}

// discard drains a little of a body, so the connection can be reused,
// and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
}
