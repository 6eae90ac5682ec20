package auth

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/internal/httpx"
)

// ResponseError reports an unexpected status from a token server.
//
// Its text names the server and the status only (the URL without user
// info, query or fragment, and the error code the server gave, if it is a
// plain identifier), never credentials or tokens. It unwraps to an errdefs
// class: 400 → ErrInvalidArgument (ErrUnauthenticated for OAuth2's
// "invalid_grant"), 401 → ErrUnauthenticated,
// 403 → ErrPermissionDenied, 404 → ErrNotFound, 429 and 5xx →
// ErrUnavailable, others → ErrUnknown.
type ResponseError struct {
	// URL is the redacted address of the server.
	URL string
	// StatusCode is the HTTP status code of the response.
	StatusCode int
	// Code is the error code from the response body ("invalid_grant",
	// "UNAUTHORIZED"), or "".
	Code string
	// RetryAfter is the wait the server asked for with Retry-After, or 0.
	RetryAfter time.Duration
}

// Error returns e.g. "auth: token from https://auth.example/token: 401
// Unauthorized: unauthorized".
func (e *ResponseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "auth: token from %s: %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	b.WriteString(": ")
	b.WriteString(e.Unwrap().Error())
	return b.String()
}

// Unwrap returns the errdefs class of the status code. An OAuth2
// "invalid_grant" (a 400 for a wrong password or a revoked refresh token)
// is errdefs.ErrUnauthenticated.
func (e *ResponseError) Unwrap() error {
	if e.StatusCode == http.StatusBadRequest && e.Code == "invalid_grant" {
		return errdefs.ErrUnauthenticated
	}
	return httpx.StatusClass(e.StatusCode)
}

// safeCode returns code when it is a short identifier, else "".
func safeCode(code string) string {
	if code == "" || len(code) > 64 {
		return ""
	}
	for _, c := range code {
		if !(c == '_' || c == '-' || c == '.' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return ""
		}
	}
	return code
}
