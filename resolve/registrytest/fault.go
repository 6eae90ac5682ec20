package registrytest

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// A FaultKind is a way for a [Registry] to misbehave.
type FaultKind int

const (
	// FaultStatus answers the request with [Fault].Status (500 if zero) and
	// an error body, before authentication, with a Retry-After header when
	// [Fault].RetryAfter > 0. It applies to any request.
	FaultStatus FaultKind = iota + 1
	// FaultTooManyRequests answers 429 TOOMANYREQUESTS before
	// authentication, with `Retry-After: <seconds>`: [Fault].RetryAfter in
	// whole seconds rounded up ("0" when zero), and no header when it is
	// negative. It applies to any request.
	FaultTooManyRequests
	// FaultReset sends the headers and the first [Fault].Bytes bytes of a
	// content body, then resets the connection (TCP RST): the client reads
	// the Bytes bytes, then gets an error such as "connection reset by
	// peer". On Linux the reset waits until the client's kernel has
	// received the bytes, so the count is exact; elsewhere a slow reader may
	// lose some. A body no longer than Bytes is sent whole. It applies to
	// GETs of blobs and manifests.
	FaultReset
	// FaultStall sends the headers and the first [Fault].Bytes bytes of a
	// content body, then sends nothing more until the client gives up (the
	// request's context ends) or the registry is closed. It applies to GETs
	// of blobs and manifests.
	FaultStall
	// FaultTrickle sends a content body [Fault].Bytes bytes at a time (1 if
	// zero), [Fault].Interval apart (10ms if zero). It applies to GETs of
	// blobs and manifests.
	FaultTrickle
	// FaultIgnoreRange answers blob GETs with the whole body and 200 even
	// when they ask for a Range, and sends no Accept-Ranges header.
	FaultIgnoreRange
	// FaultCorrupt serves a content body of the right length whose every
	// byte is inverted, so its digest is wrong; headers still carry the
	// right digest. It applies to GETs of blobs and manifests.
	FaultCorrupt
	// FaultRedirect answers blob GETs and HEADs, once authorized, with 307
	// to the CDN ([Registry.CDNURL]), which serves the blob with Range
	// support but answers 400 to any request that carries an Authorization
	// header, as object stores with signed URLs do; see
	// [Registry.CDNSawAuthorization].
	FaultRedirect
	// FaultClose sends the headers and the first [Fault].Bytes bytes of a
	// content body, then closes the connection in order (FIN), so the body
	// ends short of its Content-Length (Go clients read
	// io.ErrUnexpectedEOF). A body no longer than Bytes is sent whole. It
	// applies to GETs of blobs and manifests.
	FaultClose
)

var faultNames = [...]string{
	FaultStatus:          "status",
	FaultTooManyRequests: "too-many-requests",
	FaultReset:           "reset",
	FaultStall:           "stall",
	FaultTrickle:         "trickle",
	FaultIgnoreRange:     "ignore-range",
	FaultCorrupt:         "corrupt",
	FaultRedirect:        "redirect",
	FaultClose:           "close",
}

// String returns the kind's name, such as "reset".
func (k FaultKind) String() string {
	if k > 0 && int(k) < len(faultNames) {
		return faultNames[k]
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// A Fault is a misbehaviour injected with [Registry.Inject] or [WithFault].
// It applies to the requests that match all of its non-zero selectors
// (Server, Method, Path, Digest) and that its Kind applies to, Times times.
type Fault struct {
	// Kind is what goes wrong. It is required.
	Kind FaultKind

	// Server is the server whose requests the fault matches. The default,
	// "", is [ServerRegistry]. Body faults apply to the CDN's blob GETs
	// too; the token server takes only FaultStatus and
	// FaultTooManyRequests.
	Server Server
	// Method matches the request method, such as "GET"; "" matches any.
	Method string
	// Path matches URL paths that contain it, such as "/manifests/" or a
	// repository name; "" matches any.
	Path string
	// Digest matches requests for that blob or manifest, named by digest
	// or, for manifests, by a tag that points at it; "" matches any.
	Digest digest.Digest
	// Times is how many requests the fault applies to before it is spent;
	// 0 means every matching request, until it is removed.
	Times int

	// Status is FaultStatus's status code; 0 means 500.
	Status int
	// RetryAfter is the Retry-After of FaultTooManyRequests and
	// FaultStatus, rounded up to whole seconds.
	RetryAfter time.Duration
	// Bytes is how many body bytes FaultReset, FaultClose and FaultStall
	// send first, and how many FaultTrickle sends at a time.
	Bytes int64
	// Interval is FaultTrickle's pause between writes.
	Interval time.Duration
}

// An Injection is a fault injected into a running [Registry].
type Injection struct {
	r       *Registry
	f       Fault
	left    int // requests left when f.Times > 0
	hits    int
	removed bool
}

// Inject adds f to the faults the registry applies, after those already
// there, and returns its handle. When several faults match a request, the
// first of those that answer the request (FaultStatus,
// FaultTooManyRequests, FaultRedirect) applies, and all the matching body
// faults apply together. Inject panics if f.Kind is not a known kind.
func (r *Registry) Inject(f Fault) *Injection {
	if f.Kind <= 0 || int(f.Kind) >= len(faultNames) {
		panic(fmt.Sprintf("registrytest: Inject: unknown fault kind %d", int(f.Kind)))
	}
	if f.Server == "" {
		f.Server = ServerRegistry
	}
	inj := &Injection{r: r, f: f, left: f.Times}
	r.mu.Lock()
	r.faults = append(r.faults, inj)
	r.mu.Unlock()
	return inj
}

// ClearFaults removes every fault.
func (r *Registry) ClearFaults() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, inj := range r.faults {
		inj.removed = true
	}
	r.faults = nil
}

// Hits returns how many requests the fault has applied to.
func (i *Injection) Hits() int {
	i.r.mu.Lock()
	defer i.r.mu.Unlock()
	return i.hits
}

// Spent reports whether the fault applies no more: it was removed, or it
// has applied to Times requests.
func (i *Injection) Spent() bool {
	i.r.mu.Lock()
	defer i.r.mu.Unlock()
	return i.removed
}

// Remove stops the fault from applying to further requests. Requests it
// already applies to are not affected.
func (i *Injection) Remove() {
	i.r.mu.Lock()
	defer i.r.mu.Unlock()
	i.removeLocked()
}

func (i *Injection) removeLocked() {
	if i.removed {
		return
	}
	i.removed = true
	for n, inj := range i.r.faults {
		if inj == i {
			i.r.faults = append(i.r.faults[:n:n], i.r.faults[n+1:]...)
			return
		}
	}
}

// target is what a request is for, for matching faults.
type target struct {
	server  Server
	method  string
	path    string
	digest  digest.Digest
	content bool // a GET whose body is a blob or a manifest
	blob    bool // a blob GET or HEAD on the registry
}

// applies reports whether kind k can apply to t.
func (k FaultKind) applies(t target) bool {
	switch k {
	case FaultStatus, FaultTooManyRequests:
		return true
	case FaultRedirect:
		return t.blob
	case FaultIgnoreRange:
		return t.content && t.method == http.MethodGet && (t.blob || t.server == ServerCDN)
	default:
		return t.content
	}
}

func (f *Fault) matches(t target) bool {
	return f.Server == t.server &&
		(f.Method == "" || strings.EqualFold(f.Method, t.method)) &&
		(f.Path == "" || strings.Contains(t.path, f.Path)) &&
		(f.Digest == "" || f.Digest == t.digest)
}

// take consumes and returns the faults among kinds that apply to t: the
// first one if first is set, else all of them.
func (r *Registry) take(t target, first bool, kinds ...FaultKind) []Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Fault
	for _, inj := range slices.Clone(r.faults) {
		f := inj.f
		if !slices.Contains(kinds, f.Kind) || !f.Kind.applies(t) || !f.matches(t) {
			continue
		}
		inj.hits++
		if f.Times > 0 {
			inj.left--
			if inj.left <= 0 {
				inj.removeLocked()
			}
		}
		out = append(out, f)
		if first {
			break
		}
	}
	return out
}

// answerFault answers the request if a status fault matches t, and
// reports whether it did.
func (r *Registry) answerFault(w *recorder, t target) bool {
	fs := r.take(t, true, FaultStatus, FaultTooManyRequests)
	if len(fs) == 0 {
		return false
	}
	f := fs[0]
	w.addFault(f.Kind)
	switch f.Kind {
	case FaultTooManyRequests:
		if f.RetryAfter >= 0 {
			w.Header().Set("Retry-After", retryAfter(f.RetryAfter))
		}
		writeError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "injected fault: too many requests", nil)
	default:
		code := f.Status
		if code == 0 {
			code = http.StatusInternalServerError
		}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", retryAfter(f.RetryAfter))
		}
		errCode := "UNKNOWN"
		if code == http.StatusServiceUnavailable {
			errCode = "UNAVAILABLE"
		}
		writeError(w, code, errCode, "injected fault: status "+strconv.Itoa(code), nil)
	}
	return true
}

// retryAfter formats d as whole seconds, rounded up.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// bodyPlan is what the body faults of a request do to its body.
type bodyPlan struct {
	corrupt     bool
	ignoreRange bool
	cut         int64     // bytes sent before the connection breaks; -1 for none
	cutKind     FaultKind // FaultReset, FaultClose or FaultStall
	chunk       int64     // trickle: bytes per write; 0 for no trickle
	interval    time.Duration
}

// planBody consumes the body faults that match t.
func (r *Registry) planBody(w *recorder, t target) bodyPlan {
	p := bodyPlan{cut: -1}
	for _, f := range r.take(t, false, FaultReset, FaultClose, FaultStall, FaultTrickle, FaultIgnoreRange, FaultCorrupt) {
		w.addFault(f.Kind)
		switch f.Kind {
		case FaultCorrupt:
			p.corrupt = true
		case FaultIgnoreRange:
			p.ignoreRange = true
		case FaultTrickle:
			p.chunk, p.interval = max(f.Bytes, 1), f.Interval
			if p.interval <= 0 {
				p.interval = 10 * time.Millisecond
			}
		case FaultReset, FaultClose, FaultStall:
			// The earliest break wins; at the same offset, the first injected.
			if n := max(f.Bytes, 0); p.cut < 0 || n < p.cut {
				p.cut, p.cutKind = n, f.Kind
			}
		}
	}
	return p
}

// writeBody writes body through w as p says. The status and headers have
// been written.
func (r *Registry) writeBody(w *recorder, req *http.Request, body []byte, p bodyPlan) {
	rc := http.NewResponseController(w)
	limit := int64(len(body))
	cut := p.cut >= 0 && p.cut < limit
	if cut {
		limit = p.cut
	}
	step := limit
	if p.chunk > 0 {
		step = p.chunk
	}
	for off := int64(0); off < limit; {
		n := min(step, limit-off)
		if _, err := w.Write(body[off : off+n]); err != nil {
			return
		}
		off += n
		if p.chunk > 0 && off < limit {
			_ = rc.Flush()
			if !r.sleep(req, p.interval) {
				return
			}
		}
	}
	if !cut {
		return
	}
	_ = rc.Flush()
	if p.cutKind == FaultStall {
		select {
		case <-req.Context().Done():
		case <-r.closing:
		}
		return
	}
	conn, _, err := rc.Hijack()
	if err != nil {
		return
	}
	if p.cutKind == FaultClose {
		_ = conn.Close()
		return
	}
	r.resetConn(conn)
}

// resetConn closes conn so that the peer sees a reset, not an orderly end,
// once the peer has received what was written.
func (r *Registry) resetConn(conn net.Conn) {
	type netConner interface{ NetConn() net.Conn }
	c := conn
	if nc, ok := c.(netConner); ok { // *tls.Conn
		c = nc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// An abortive close drops what the kernel has not sent yet.
		waitSent(tc, r.closing)
		_ = tc.SetLinger(0)
	}
	// Closing the TCP connection under TLS skips the close_notify alert.
	_ = c.Close()
}

// sleep waits d, and reports false if the request ended or the registry
// closed first.
func (r *Registry) sleep(req *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-req.Context().Done():
		return false
	case <-r.closing:
		return false
	}
}
