package registrytest

import (
	"net/http"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// A Server names one of the servers a [Registry] runs.
type Server string

const (
	// ServerRegistry is the registry itself, at [Registry.URL].
	ServerRegistry Server = "registry"
	// ServerCDN is the blob server that [FaultRedirect] sends clients to,
	// at [Registry.CDNURL].
	ServerCDN Server = "cdn"
	// ServerToken is the token server of [WithTokenAuth], at
	// [Registry.TokenURL].
	ServerToken Server = "token"
)

// A Request is what a [Registry] recorded of one request it received.
// Credentials are never recorded: only whether there were some.
type Request struct {
	// Server is the server that received the request.
	Server Server
	// Method is the HTTP method.
	Method string
	// Path is the URL path, such as "/v2/library/alpine/manifests/latest".
	Path string
	// Query is the raw URL query, such as the token server's
	// "scope=repository%3Aa%3Apull&service=registrytest". Request bodies,
	// where OAuth2 forms carry passwords, are not recorded.
	Query string
	// Range is the Range header, or "".
	Range string
	// Accept is the Accept headers, joined with ", ".
	Accept string
	// Authorization reports whether the request carried an Authorization
	// header.
	Authorization bool
	// AuthScheme is the scheme of that header ("Basic", "Bearer"), or "".
	AuthScheme string
	// Status is the status code answered; 0 while the handler has not yet
	// answered.
	Status int
	// Bytes is the number of body bytes written. It is updated as they are
	// written, before the client can read them.
	Bytes int64
	// Faults are the kinds of the faults applied to the request, in order.
	Faults []FaultKind
}

// recorder is the http.ResponseWriter through which every response is
// written: it keeps the request's [Request] and the byte counters current.
type recorder struct {
	http.ResponseWriter
	r       *Registry
	rec     *Request
	counted digest.Digest // the content digest whose bytes are being served, if any
	gen     uint64        // r.gen when the request arrived
	wrote   bool
}

// begin records a request and returns the writer to answer it through.
func (r *Registry) begin(s Server, w http.ResponseWriter, req *http.Request) *recorder {
	rec := &Request{
		Server:        s,
		Method:        req.Method,
		Path:          req.URL.Path,
		Query:         req.URL.RawQuery,
		Range:         req.Header.Get("Range"),
		Accept:        strings.Join(req.Header.Values("Accept"), ", "),
		Authorization: req.Header.Get("Authorization") != "",
	}
	if rec.Authorization {
		scheme, _, _ := strings.Cut(req.Header.Get("Authorization"), " ")
		rec.AuthScheme = scheme
	}
	r.mu.Lock()
	r.requests = append(r.requests, rec)
	gen := r.gen
	r.mu.Unlock()
	return &recorder{ResponseWriter: w, r: r, rec: rec, gen: gen}
}

// addFault records that a fault of kind k was applied.
func (w *recorder) addFault(k FaultKind) {
	w.r.mu.Lock()
	w.rec.Faults = append(w.rec.Faults, k)
	w.r.mu.Unlock()
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.r.mu.Lock()
		w.rec.Status = code
		w.r.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	// Count first, so that a client that has read the bytes finds them
	// counted; take back what was not written.
	w.count(int64(len(p)))
	n, err := w.ResponseWriter.Write(p)
	if n < len(p) {
		w.count(int64(n - len(p)))
	}
	return n, err
}

func (w *recorder) count(n int64) {
	w.r.mu.Lock()
	w.rec.Bytes += n
	if w.counted != "" && w.gen == w.r.gen {
		w.r.served += n
		w.r.perBlob[w.counted] += n
	}
	w.r.mu.Unlock()
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Requests returns what the registry, its CDN and its token server received
// since the start or the last [Registry.ResetStats], in arrival order.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Request, len(r.requests))
	for i, rec := range r.requests {
		out[i] = *rec
		out[i].Faults = slices.Clone(rec.Faults)
	}
	return out
}

// BytesServed returns the number of content bytes, the bodies of blobs and
// manifests, that the registry and its CDN have written since the start or
// the last [Registry.ResetStats]. Error bodies and tokens do not count.
func (r *Registry) BytesServed() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.served
}

// BlobBytesServed returns the part of [Registry.BytesServed] that was the
// content of d, served as a blob, a manifest or by the CDN. A download
// resumed with Range counts only the bytes sent again.
func (r *Registry) BlobBytesServed(d digest.Digest) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.perBlob[d]
}

// CDNSawAuthorization reports whether a request carrying an Authorization
// header reached the CDN since the start or the last
// [Registry.ResetStats]: a client that forwards credentials to another
// host.
func (r *Registry) CDNSawAuthorization() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cdnAuth
}

// ResetStats forgets the recorded requests and byte counts. Requests being
// served finish uncounted.
func (r *Registry) ResetStats() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = nil
	r.gen++
	r.served = 0
	r.perBlob = map[digest.Digest]int64{}
	r.cdnAuth = false
}
