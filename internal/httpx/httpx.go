// Package httpx holds the HTTP details that auth, fetch and resolve share:
// how a status maps to an errdefs class, how a URL is shown without
// secrets, how Retry-After reads, and which transport errors no retry
// can fix.
package httpx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// StatusClass maps an HTTP status to an errdefs class: 400 →
// ErrInvalidArgument, 401 → ErrUnauthenticated, 403 → ErrPermissionDenied,
// 404 → ErrNotFound, 405 and 501 → ErrNotImplemented, 409 → ErrConflict,
// 412 → ErrFailedPrecondition, 416 → ErrOutOfRange, 408, 429 and other 5xx
// → ErrUnavailable, anything else → ErrUnknown.
func StatusClass(code int) error {
	switch {
	case code == http.StatusBadRequest:
		return errdefs.ErrInvalidArgument
	case code == http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case code == http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case code == http.StatusNotFound:
		return errdefs.ErrNotFound
	case code == http.StatusMethodNotAllowed, code == http.StatusNotImplemented:
		return errdefs.ErrNotImplemented
	case code == http.StatusConflict:
		return errdefs.ErrConflict
	case code == http.StatusPreconditionFailed:
		return errdefs.ErrFailedPrecondition
	case code == http.StatusRequestedRangeNotSatisfiable:
		return errdefs.ErrOutOfRange
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500 && code <= 599:
		return errdefs.ErrUnavailable
	}
	return errdefs.ErrUnknown
}

// RedactURL returns u without user info, query and fragment: presigned
// URLs carry their signature in the query. A nil u gives "".
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}

// maxRetryAfter bounds what RetryAfter returns, so arithmetic on it
// cannot overflow; callers cap it far lower.
const maxRetryAfter = 365 * 24 * time.Hour

// RetryAfter reads a Retry-After header, delta-seconds or an HTTP date
// relative to now (a date in the past means no wait). ok is false when
// there is no header or it cannot be read.
func RetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return min(time.Duration(min(s, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}

// Permanent reports whether err is a transport failure that retrying the
// same host cannot fix: a certificate that does not verify, or a host name
// that does not resolve.
func Permanent(err error) bool {
	var (
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		dnsErr     *net.DNSError
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return true
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return true
	}
	return false
}
