package resolve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/internal/httpx"
)

// Error reports a request that failed on every host it was sent to: a
// reference that no host could resolve, or a blob that no host could
// serve.
//
// Its text names the operation, then what each host answered, in the order
// they were asked, then what to do next when that is clear:
//
//	resolve docker.io/library/alpine:3.20: mirror.example: 503 Service Unavailable; registry-1.docker.io: 404 Not Found: MANIFEST_UNKNOWN: manifest unknown
//
// It is classified by the last host's answer, which [Hosts] makes the
// registry itself (the upstream is authoritative; a mirror's outage or
// miss says nothing about the image): Unwrap returns that error, so
// errdefs.IsNotFound(err) holds when the registry has no such manifest
// even if a mirror was down, and errors.As finds the last host's
// *fetch.ResponseError. Every host's error is in Hosts.
type Error struct {
	// Op is what failed: "resolve docker.io/library/alpine:3.20" or
	// "fetch sha256:…".
	Op string
	// Registry is the registry the hosts serve, as in the reference:
	// "docker.io".
	Registry string
	// Hosts are the answers, one per host, in the order the hosts were
	// asked. It is never empty.
	Hosts []HostError
}

// HostError is one host's answer in an [Error].
type HostError struct {
	// Host names the host, as [Host.String] does: "mirror.example".
	Host string
	// Err is what the host answered, or why it could not be asked: a
	// *fetch.ResponseError for a status, a transport error, a
	// *content.MismatchError or *content.LimitError for content refused.
	Err error

	trim string // a prefix of Err's text that the Error already says
}

// Error returns "host: answer", with a status answer shortened to the
// status and the registry's error codes.
func (e HostError) Error() string {
	var re *fetch.ResponseError
	if errors.As(e.Err, &re) {
		return e.Host + ": " + shortStatus(re)
	}
	return e.Host + ": " + strings.TrimPrefix(e.Err.Error(), e.trim)
}

// Unwrap returns Err.
func (e HostError) Unwrap() error { return e.Err }

// shortStatus returns "404 Not Found: MANIFEST_UNKNOWN: manifest unknown".
func shortStatus(re *fetch.ResponseError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", re.StatusCode, http.StatusText(re.StatusCode))
	if re.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", re.RetryAfter)
	}
	for i, r := range re.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(r.Error())
	}
	return b.String()
}

// Error returns the operation, each host's answer and a hint.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	if len(e.Hosts) == 0 {
		b.WriteString("no host was asked")
	}
	for i, h := range e.Hosts {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(h.Error())
	}
	if hint := e.hint(); hint != "" {
		b.WriteString(" (")
		b.WriteString(hint)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the last host's error, which classifies e. When that is
// a network failure (refused, reset, timed out) rather than an answer, e
// also matches errdefs.ErrUnavailable: the registry could not be reached.
func (e *Error) Unwrap() []error {
	if len(e.Hosts) == 0 {
		return []error{errdefs.ErrUnknown}
	}
	last := e.Hosts[len(e.Hosts)-1].Err
	if unreachable(last) {
		return []error{last, errdefs.ErrUnavailable}
	}
	return []error{last}
}

// unreachable reports whether err is a failure to reach a host that a
// later try may not meet: not an answer, not a cancellation, and not a
// certificate or host name that will stay wrong.
func unreachable(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && !httpx.Permanent(err) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// hint says what to do about the last host's answer, or "".
func (e *Error) hint() string {
	if len(e.Hosts) == 0 {
		return ""
	}
	last := e.Hosts[len(e.Hosts)-1]
	var (
		unknownCA x509.UnknownAuthorityError
		verifyErr *tls.CertificateVerificationError
		hostErr   x509.HostnameError
	)
	switch err := last.Err; {
	case errdefs.IsUnauthorized(err):
		return fmt.Sprintf("check the credentials for %s: run docker login %s, or give the resolver a keychain; registries also answer so for a repository that does not exist", e.Registry, e.Registry)
	case errdefs.IsPermissionDenied(err):
		return fmt.Sprintf("the credentials used for %s may not pull this repository", last.Host)
	case errdefs.IsUnavailable(err):
		return "the registry is rate limiting or unavailable: try again later"
	case errors.As(err, &unknownCA), errors.As(err, &verifyErr) && !errors.As(err, &hostErr):
		return fmt.Sprintf("the certificate of %s is not trusted: add its CA with resolve.WithCAFile or a ca entry in hosts.toml", last.Host)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Sprintf("%s speaks plain HTTP: configure it with resolve.WithPlainHTTP or an http:// URL", last.Host)
	case plainToTLS(err):
		return fmt.Sprintf("%s was asked in plain HTTP and refused it: if it serves TLS, drop resolve.WithPlainHTTP or the http:// URL", last.Host)
	}
	return ""
}

// plainToTLS reports whether err is a bare 400 Bad Request to a plain HTTP
// request, with no registry error document: what a TLS server (Go's among
// them) answers a client that speaks plain HTTP to it.
func plainToTLS(err error) bool {
	var re *fetch.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && len(re.Errors) == 0 &&
		strings.HasPrefix(re.URL, "http://")
}
