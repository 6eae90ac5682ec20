package registrytest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

const (
	// maxManifestPut bounds a manifest pushed over HTTP.
	maxManifestPut = 4 << 20
	// maxBlobPut bounds one blob upload request body.
	maxBlobPut = 256 << 20
)

type routeKind int

const (
	routeUnknown routeKind = iota
	routePing
	routeManifest
	routeBlob
	routeUpload
	routeTags
)

// route is a parsed registry URL path.
type route struct {
	kind routeKind
	repo string
	ref  string // manifest tag or digest, blob digest, or upload id
}

// parseRoute splits a /v2/ path into repository and reference. Repository
// names may contain slashes, so the last marker wins.
func parseRoute(path string) route {
	if path == "/v2" || path == "/v2/" {
		return route{kind: routePing}
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}
	}
	if repo, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return route{kind: routeTags, repo: repo}
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 {
		id := rest[i+len("/blobs/uploads"):]
		if id != "" && id[0] != '/' {
			return route{}
		}
		id = strings.TrimPrefix(id, "/")
		if strings.Contains(id, "/") {
			return route{}
		}
		return route{kind: routeUpload, repo: rest[:i], ref: id}
	}
	if i := strings.LastIndex(rest, "/manifests/"); i > 0 {
		ref := rest[i+len("/manifests/"):]
		if ref == "" || strings.Contains(ref, "/") {
			return route{}
		}
		return route{kind: routeManifest, repo: rest[:i], ref: ref}
	}
	if i := strings.LastIndex(rest, "/blobs/"); i > 0 {
		ref := rest[i+len("/blobs/"):]
		if ref == "" || strings.Contains(ref, "/") {
			return route{}
		}
		return route{kind: routeBlob, repo: rest[:i], ref: ref}
	}
	return route{}
}

// targetOf describes a registry request for fault matching.
func (r *Registry) targetOf(rt route, req *http.Request) target {
	t := target{server: ServerRegistry, method: req.Method, path: req.URL.Path}
	get := req.Method == http.MethodGet
	switch rt.kind {
	case routeManifest:
		t.content = get
		if isDigestRef(rt.ref) {
			t.digest = digest.Digest(rt.ref)
		} else {
			r.mu.Lock()
			if rp := r.repos[rt.repo]; rp != nil {
				t.digest = rp.tags[rt.ref]
			}
			r.mu.Unlock()
		}
	case routeBlob:
		t.digest = digest.Digest(rt.ref)
		t.content = get
		t.blob = get || req.Method == http.MethodHead
	}
	return t
}

// serveRegistry is the registry's handler.
func (r *Registry) serveRegistry(w http.ResponseWriter, req *http.Request) {
	rw := r.begin(ServerRegistry, w, req)
	rw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt := parseRoute(req.URL.Path)
	t := r.targetOf(rt, req)
	if r.answerFault(rw, t) {
		return
	}
	if rt.kind != routeUnknown && rt.kind != routePing && !validName(rt.repo) {
		writeError(rw, http.StatusBadRequest, "NAME_INVALID", "invalid repository name", rt.repo)
		return
	}
	switch rt.kind {
	case routePing:
		r.servePing(rw, req)
	case routeManifest:
		r.serveManifest(rw, req, rt, t)
	case routeBlob:
		r.serveBlob(rw, req, rt, t)
	case routeUpload:
		r.serveUpload(rw, req, rt)
	case routeTags:
		r.serveTags(rw, req, rt)
	default:
		writeError(rw, http.StatusNotFound, "NOT_FOUND", "no such endpoint", req.URL.Path)
	}
}

func (r *Registry) servePing(w *recorder, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	if !r.authorizePing(w, req) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "{}")
}

func (r *Registry) serveManifest(w *recorder, req *http.Request, rt route, t target) {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPut:
		r.putManifest(w, req, rt)
		return
	default:
		methodNotAllowed(w, "GET, HEAD, PUT")
		return
	}
	if _, ok := r.authorize(w, req, rt.repo, "pull"); !ok {
		return
	}
	r.mu.Lock()
	d, mt, body, ok := r.manifestLocked(rt.repo, rt.ref)
	r.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown", map[string]string{"Tag": rt.ref})
		return
	}
	p := bodyPlan{cut: -1}
	if req.Method == http.MethodGet {
		p = r.planBody(w, t)
	}
	r.serveContent(w, req, payload{digest: d, mediaType: mt, body: body}, p)
}

func (r *Registry) serveBlob(w *recorder, req *http.Request, rt route, t target) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	d, err := digest.Parse(rt.ref)
	if err != nil {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "invalid digest", rt.ref)
		return
	}
	if _, ok := r.authorize(w, req, rt.repo, "pull"); !ok {
		return
	}
	r.mu.Lock()
	body, ok := r.blobLocked(rt.repo, d)
	r.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry", d.String())
		return
	}
	if fs := r.take(t, true, FaultRedirect); len(fs) > 0 {
		w.addFault(FaultRedirect)
		w.Header().Set("Location", r.cdn.URL+"/blobs/"+d.String()+"?sig="+randomHex(8))
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	p := bodyPlan{cut: -1}
	if req.Method == http.MethodGet {
		p = r.planBody(w, t)
	}
	r.serveContent(w, req, payload{digest: d, mediaType: "application/octet-stream", body: body, ranges: true}, p)
}

// serveCDN is the CDN's handler: it serves any blob at /blobs/<digest>,
// without authentication, and refuses requests that carry credentials.
func (r *Registry) serveCDN(w http.ResponseWriter, req *http.Request) {
	rw := r.begin(ServerCDN, w, req)
	ref, _ := strings.CutPrefix(req.URL.Path, "/blobs/")
	t := target{server: ServerCDN, method: req.Method, path: req.URL.Path, digest: digest.Digest(ref), content: req.Method == http.MethodGet}
	if r.answerFault(rw, t) {
		return
	}
	if req.Header.Get("Authorization") != "" {
		r.mu.Lock()
		if rw.gen == r.gen {
			r.cdnAuth = true
		}
		r.mu.Unlock()
		rw.Header().Set("Content-Type", "application/xml")
		rw.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(rw, "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed: the signed URL, or the Authorization header</Message></Error>")
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		methodNotAllowed(rw, "GET, HEAD")
		return
	}
	d, err := digest.Parse(ref)
	r.mu.Lock()
	body, ok := r.blobs[d]
	r.mu.Unlock()
	if err != nil || !ok || !strings.HasPrefix(req.URL.Path, "/blobs/") {
		rw.Header().Set("Content-Type", "application/xml")
		rw.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(rw, "<Error><Code>NoSuchKey</Code></Error>")
		return
	}
	p := bodyPlan{cut: -1}
	if req.Method == http.MethodGet {
		p = r.planBody(rw, t)
	}
	r.serveContent(rw, req, payload{digest: d, mediaType: "application/octet-stream", body: body, ranges: true, cdn: true}, p)
}

// payload is a body to serve.
type payload struct {
	digest    digest.Digest
	mediaType string
	body      []byte
	ranges    bool // honour Range requests
	cdn       bool // no registry headers
}

// serveContent answers a GET or HEAD of c with Range support when
// c.ranges is set, applying the body faults of p.
func (r *Registry) serveContent(w *recorder, req *http.Request, c payload, p bodyPlan) {
	body := c.body
	if p.corrupt {
		body = make([]byte, len(c.body))
		for i, b := range c.body {
			body[i] = ^b
		}
	}
	h := w.Header()
	h.Set("Content-Type", c.mediaType)
	h.Set("Etag", `"`+c.digest.String()+`"`)
	if !c.cdn {
		h.Set("Docker-Content-Digest", c.digest.String())
	}
	size := int64(len(body))
	start, end := int64(0), size
	status := http.StatusOK
	if c.ranges && !p.ignoreRange {
		h.Set("Accept-Ranges", "bytes")
		if rg := req.Header.Get("Range"); rg != "" && req.Method == http.MethodGet {
			a, b, ok, satisfiable := parseRange(rg, size)
			switch {
			case ok && !satisfiable:
				h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
				h.Del("Content-Type")
				h.Set("Content-Length", "0")
				w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
				return
			case ok:
				start, end, status = a, b+1, http.StatusPartialContent
				h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, size))
			}
		}
	}
	h.Set("Content-Length", strconv.FormatInt(end-start, 10))
	if req.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	w.counted = c.digest
	w.WriteHeader(status)
	r.writeBody(w, req, body[start:end], p)
}

// parseRange parses a single-range "bytes=" Range header against a body of
// size bytes and returns the first and last byte offsets. ok is false when
// the header is to be ignored (malformed, another unit, several ranges);
// satisfiable is false when the range lies outside the body.
func parseRange(header string, size int64) (first, last int64, ok, satisfiable bool) {
	unit, spec, found := strings.Cut(header, "=")
	if !found || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" { // suffix: the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		n = min(n, size)
		return size - n, size - 1, true, true
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false, false
	}
	last = size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return 0, 0, false, false
		}
	}
	if first >= size {
		return 0, 0, true, false
	}
	return first, min(last, size-1), true, true
}

func (r *Registry) serveTags(w *recorder, req *http.Request, rt route) {
	if req.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	if _, ok := r.authorize(w, req, rt.repo, "pull"); !ok {
		return
	}
	r.mu.Lock()
	rp := r.repos[rt.repo]
	var tags []string
	if rp != nil {
		tags = sortedKeys(rp.tags)
	}
	r.mu.Unlock()
	if rp == nil {
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry", rt.repo)
		return
	}
	q := req.URL.Query()
	if last := q.Get("last"); last != "" {
		i, _ := slices.BinarySearch(tags, last)
		for i < len(tags) && tags[i] <= last {
			i++
		}
		tags = tags[i:]
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "invalid number of results requested", ns)
			return
		}
		if n < len(tags) {
			tags = tags[:n]
			if n > 0 {
				next := url.Values{"n": {ns}, "last": {tags[n-1]}}
				w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, rt.repo, next.Encode()))
			}
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.repo, append([]string{}, tags...)})
}

func (r *Registry) serveUpload(w *recorder, req *http.Request, rt route) {
	id, ok := r.authorize(w, req, rt.repo, "pull", "push")
	if !ok {
		return
	}
	if rt.ref == "" {
		if req.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		r.startUpload(w, req, rt, id)
		return
	}
	r.mu.Lock()
	up := r.uploads[rt.ref]
	r.mu.Unlock()
	if up == nil || up.repo != rt.repo {
		writeError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", rt.ref)
		return
	}
	loc := "/v2/" + rt.repo + "/blobs/uploads/" + rt.ref
	switch req.Method {
	case http.MethodGet:
		r.mu.Lock()
		n := len(up.data)
		r.mu.Unlock()
		uploadHeaders(w, loc, rt.ref, n)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPatch:
		body, ok := readBody(w, req, maxBlobPut)
		if !ok {
			return
		}
		r.mu.Lock()
		n := len(up.data)
		if cr := req.Header.Get("Content-Range"); cr != "" {
			a, _, _ := strings.Cut(cr, "-")
			if start, err := strconv.Atoi(strings.TrimSpace(a)); err != nil || start != n {
				r.mu.Unlock()
				w.Header().Set("Range", uploadRange(n))
				writeError(w, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "chunk does not start at the upload's offset", cr)
				return
			}
		}
		up.data = append(up.data, body...)
		n = len(up.data)
		r.mu.Unlock()
		uploadHeaders(w, loc, rt.ref, n)
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPut:
		body, ok := readBody(w, req, maxBlobPut)
		if !ok {
			return
		}
		r.mu.Lock()
		data := slices.Concat(up.data, body)
		r.mu.Unlock()
		if r.commitUpload(w, req, rt.repo, data) {
			r.mu.Lock()
			delete(r.uploads, rt.ref)
			r.mu.Unlock()
		}
	case http.MethodDelete:
		r.mu.Lock()
		delete(r.uploads, rt.ref)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w, "GET, PATCH, PUT, DELETE")
	}
}

// startUpload answers POST /v2/<name>/blobs/uploads/: a cross-repository
// mount, a monolithic upload (?digest=), or the start of an upload session.
func (r *Registry) startUpload(w *recorder, req *http.Request, rt route, id identity) {
	q := req.URL.Query()
	if mount, from := q.Get("mount"), q.Get("from"); mount != "" && from != "" {
		if d, err := digest.Parse(mount); err == nil && r.can(id, from, "pull") {
			r.mu.Lock()
			_, ok := r.blobLocked(from, d)
			if ok {
				r.repoLocked(rt.repo).blobs[d] = true
			}
			r.mu.Unlock()
			if ok {
				w.Header().Set("Location", "/v2/"+rt.repo+"/blobs/"+d.String())
				w.Header().Set("Docker-Content-Digest", d.String())
				w.Header().Set("Content-Length", "0")
				w.WriteHeader(http.StatusCreated)
				return
			}
		}
		// Like distribution, a failed mount starts an ordinary upload.
	}
	if q.Get("digest") != "" {
		body, ok := readBody(w, req, maxBlobPut)
		if ok {
			r.commitUpload(w, req, rt.repo, body)
		}
		return
	}
	uid := r.newUploadID()
	r.mu.Lock()
	r.uploads[uid] = &upload{repo: rt.repo}
	r.mu.Unlock()
	uploadHeaders(w, "/v2/"+rt.repo+"/blobs/uploads/"+uid, uid, 0)
	w.WriteHeader(http.StatusAccepted)
}

// commitUpload verifies data against the request's ?digest= and stores it,
// and reports whether it did.
func (r *Registry) commitUpload(w *recorder, req *http.Request, repo string, data []byte) bool {
	want, err := digest.Parse(req.URL.Query().Get("digest"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "missing or invalid digest parameter", req.URL.Query().Get("digest"))
		return false
	}
	if got := want.Algorithm().FromBytes(data); !want.Algorithm().Available() || got != want {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content", want.String())
		return false
	}
	r.mu.Lock()
	r.putBlobLocked(repo, want, data)
	r.mu.Unlock()
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+want.String())
	w.Header().Set("Docker-Content-Digest", want.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return true
}

func (r *Registry) newUploadID() string {
	r.mu.Lock()
	r.seq++
	n := r.seq
	r.mu.Unlock()
	return fmt.Sprintf("%d-%s", n, randomHex(8))
}

func uploadHeaders(w http.ResponseWriter, loc, uid string, n int) {
	w.Header().Set("Location", loc)
	w.Header().Set("Docker-Upload-UUID", uid)
	w.Header().Set("Range", uploadRange(n))
	w.Header().Set("Content-Length", "0")
}

// uploadRange is the Range header of an upload holding n bytes; an empty
// upload reports "0-0", as distribution does.
func uploadRange(n int) string {
	return fmt.Sprintf("0-%d", max(n-1, 0))
}

// putManifest answers PUT /v2/<name>/manifests/<ref>.
func (r *Registry) putManifest(w *recorder, req *http.Request, rt route) {
	if _, ok := r.authorize(w, req, rt.repo, "pull", "push"); !ok {
		return
	}
	body, ok := readBody(w, req, maxManifestPut)
	if !ok {
		return
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	var doc struct {
		MediaType string `json:"mediaType"`
		Config    *struct {
			Digest digest.Digest `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest digest.Digest `json:"digest"`
			URLs   []string      `json:"urls"`
		} `json:"layers"`
		Manifests []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"manifests"`
		FSLayers []struct {
			BlobSum digest.Digest `json:"blobSum"`
		} `json:"fsLayers"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", "manifest invalid", err.Error())
		return
	}
	if mt == "" {
		mt = doc.MediaType
	}
	if mt == "" {
		writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", "manifest has no media type", nil)
		return
	}
	d := manifestDigest(mt, body)
	if isDigestRef(rt.ref) {
		if rt.ref != d.String() {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "manifest digest does not match its reference", rt.ref)
			return
		}
	} else if !tagRE.MatchString(rt.ref) {
		writeError(w, http.StatusBadRequest, "TAG_INVALID", "invalid tag", rt.ref)
		return
	}
	var refs []digest.Digest
	if doc.Config != nil {
		refs = append(refs, doc.Config.Digest)
	}
	for _, l := range doc.Layers {
		if len(l.URLs) == 0 {
			refs = append(refs, l.Digest)
		}
	}
	for _, m := range doc.Manifests {
		refs = append(refs, m.Digest)
	}
	for _, l := range doc.FSLayers {
		refs = append(refs, l.BlobSum)
	}
	tag := ""
	if !isDigestRef(rt.ref) {
		tag = rt.ref
	}
	r.mu.Lock()
	for _, ref := range refs {
		if _, ok := r.blobLocked(rt.repo, ref); !ok {
			r.mu.Unlock()
			writeError(w, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "manifest references a blob unknown to the repository", ref.String())
			return
		}
	}
	r.putManifestLocked(rt.repo, tag, mt, d, body)
	r.mu.Unlock()
	w.Header().Set("Location", "/v2/"+rt.repo+"/manifests/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// readBody reads a request body of at most limit bytes, answering 413 when
// it is larger.
func readBody(w *recorder, req *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", "request body too large", limit)
		} else {
			writeError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", "reading the request body failed", err.Error())
		}
		return nil, false
	}
	return b, true
}

// writeError writes a distribution spec error body.
func writeError(w http.ResponseWriter, status int, code, message string, detail any) {
	type apiError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail,omitempty"`
	}
	writeJSON(w, status, struct {
		Errors []apiError `json:"errors"`
	}{[]apiError{{code, message, detail}}})
}

// writeJSON writes v as a JSON body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own types reach here
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the operation is unsupported", nil)
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
