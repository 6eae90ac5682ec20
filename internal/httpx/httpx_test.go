package httpx

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestStatusClass(t *testing.T) {
	tests := []struct {
		code int
		want error
	}{
		{400, errdefs.ErrInvalidArgument},
		{401, errdefs.ErrUnauthenticated},
		{403, errdefs.ErrPermissionDenied},
		{404, errdefs.ErrNotFound},
		{405, errdefs.ErrNotImplemented},
		{409, errdefs.ErrConflict},
		{412, errdefs.ErrFailedPrecondition},
		{416, errdefs.ErrOutOfRange},
		{408, errdefs.ErrUnavailable},
		{429, errdefs.ErrUnavailable},
		{500, errdefs.ErrUnavailable},
		{501, errdefs.ErrNotImplemented},
		{503, errdefs.ErrUnavailable},
		{418, errdefs.ErrUnknown},
	}
	for _, tt := range tests {
		if got := StatusClass(tt.code); !errors.Is(got, tt.want) {
			t.Errorf("StatusClass(%d) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	u, _ := url.Parse("https://user:secret@cdn.example/blob?X-Amz-Signature=abc#frag")
	if got, want := RedactURL(u), "https://cdn.example/blob"; got != want {
		t.Errorf("RedactURL() = %q, want %q", got, want)
	}
	if got := RedactURL(nil); got != "" {
		t.Errorf("RedactURL(nil) = %q, want empty", got)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"99999999999999999", maxRetryAfter, true},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.value != "" {
			h.Set("Retry-After", tt.value)
		}
		got, ok := RetryAfter(h, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
		}
	}
}
