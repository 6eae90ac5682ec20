package fetch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/internal/httpx"
)

// maxErrorBody is how much of an error response's body is read to find the
// registry's error codes.
const maxErrorBody = 64 << 10

// Limits on what a [ResponseError] keeps of a response body.
const (
	maxRegistryErrors = 16
	maxMessageLen     = 512
)

// ResponseError reports a response with a status that ends the fetch: any
// 4xx or 5xx, after retries for those that are retried.
//
// Its text names the method, the URL without user info, query or fragment
// (so no presigned signature leaks), the status and the registry's error
// codes and messages; never credentials. Unwrap classifies the status with
// errdefs: 400 → ErrInvalidArgument, 401 → ErrUnauthenticated,
// 403 → ErrPermissionDenied, 404 → ErrNotFound, 405 and 501 →
// ErrNotImplemented, 409 → ErrConflict, 412 → ErrFailedPrecondition,
// 416 → ErrOutOfRange, 408, 429 and other 5xx → ErrUnavailable, anything
// else → ErrUnknown.
type ResponseError struct {
	// Method is the request's method, "GET".
	Method string
	// URL is the redacted address of the request.
	URL string
	// StatusCode is the HTTP status code of the response.
	StatusCode int
	// Errors are the errors listed in the body, when it is the registry's
	// JSON error document ({"errors":[...]}); otherwise nil.
	Errors []RegistryError
	// RetryAfter is the wait that a Retry-After header asked for, when it
	// was longer than the cap set by [WithMaxRetryAfter]; otherwise 0.
	RetryAfter time.Duration

	// wait is a Retry-After within the cap, honoured before the retry.
	wait    time.Duration
	waitSet bool
}

// RegistryError is one entry of a registry's JSON error document, as the
// OCI distribution spec defines it.
type RegistryError struct {
	// Code is the error code, such as "BLOB_UNKNOWN" or "DENIED".
	Code string `json:"code"`
	// Message is the registry's description, cut to 512 bytes.
	Message string `json:"message,omitempty"`
	// Detail is whatever JSON value the registry added, decoded with
	// encoding/json, or nil.
	Detail any `json:"detail,omitempty"`
}

// Error returns "CODE: message", or just one of them when the other is empty.
func (e RegistryError) Error() string {
	switch {
	case e.Code == "":
		return e.Message
	case e.Message == "":
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Error returns e.g. "GET https://r.example/v2/app/blobs/sha256:…: 404 Not
// Found: BLOB_UNKNOWN: blob unknown to registry".
func (e *ResponseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	for i, re := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(re.Error())
	}
	return b.String()
}

// Unwrap returns the errdefs class of the status code.
func (e *ResponseError) Unwrap() error { return httpx.StatusClass(e.StatusCode) }

// newResponseError reads the registry's error document from resp (at most
// maxErrorBody bytes), closes the body and returns the error.
func newResponseError(resp *http.Response) *ResponseError {
	e := &ResponseError{StatusCode: resp.StatusCode}
	if resp.Request != nil {
		e.Method = resp.Request.Method
		e.URL = httpx.RedactURL(resp.Request.URL)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	var doc struct {
		Errors []RegistryError `json:"errors"`
	}
	if json.Unmarshal(body, &doc) == nil {
		for _, re := range doc.Errors {
			if len(e.Errors) == maxRegistryErrors {
				break
			}
			if len(re.Message) > maxMessageLen {
				re.Message = re.Message[:maxMessageLen] + "…"
			}
			if len(re.Code) > maxMessageLen {
				re.Code = re.Code[:maxMessageLen] + "…"
			}
			e.Errors = append(e.Errors, re)
		}
	}
	return e
}

// statusError reads the error of a response with a status that ends a
// request, as newResponseError does, and records the wait a 429 or 503
// asks for with Retry-After: to be honoured before the retry when it is
// within the cap, or in RetryAfter (and not retried) when it is beyond.
func (r *Repository) statusError(resp *http.Response) *ResponseError {
	re := newResponseError(resp)
	if c := resp.StatusCode; c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable {
		if d, ok := httpx.RetryAfter(resp.Header, time.Now()); ok {
			if d > r.cfg.maxRetryAfter {
				re.RetryAfter = d
			} else {
				re.wait, re.waitSet = d, true
			}
		}
	}
	return re
}

// redactError removes the query from the URL of the first *url.Error in
// err's chain, which net/http puts in transport errors, and returns err.
func redactError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = httpx.RedactURL(u)
		} else {
			ue.URL = "<unparsable URL>"
		}
	}
	return err
}

// stallError reports a connection that delivered nothing for too long.
type stallError struct{ d time.Duration }

func (e *stallError) Error() string { return fmt.Sprintf("no data for %s: connection stalled", e.d) }

// Unwrap classifies a stall as errdefs.ErrUnavailable.
func (e *stallError) Unwrap() error { return errdefs.ErrUnavailable }

// errRangeIgnored is returned inside the package when a server answers a
// Range request with the whole blob.
var errRangeIgnored = errors.New("server ignored the Range header")
