package auth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/auth"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// do sends method to url through c and returns the status and body.
func do(t *testing.T, ctx context.Context, c auth.Doer, method, url string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("Do(%s %s) error = %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestClientBearerPassword(t *testing.T) {
	ts := newTokenServer(t)
	ts.users["alice"] = "s3cret"
	reg := newRegistry(t, ts)
	c := auth.NewClient(auth.WithKeychain(auth.Static(reg.host(), auth.Credential{Username: "alice", Password: "s3cret"})))

	status, body := do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/app/manifests/latest", nil)
	if status != http.StatusOK || body != "ok" {
		t.Fatalf("first GET = %d %q, want 200 ok", status, body)
	}
	calls := ts.calls()
	if len(calls) != 1 || calls[0].Method != http.MethodPost {
		t.Fatalf("token requests = %+v, want one POST", calls)
	}
	form := calls[0].Values
	for k, want := range map[string]string{
		"grant_type": "password",
		"username":   "alice",
		"password":   "s3cret",
		"service":    "registry.test",
		"scope":      "repository:app:pull",
		"client_id":  "pullkit",
	} {
		if got := form.Get(k); got != want {
			t.Errorf("POST form %s = %q, want %q", k, got, want)
		}
	}
	if got := reg.seen(); len(got) != 2 || got[0] != "" || got[1] != "Bearer tok-1" {
		t.Fatalf("registry saw Authorization %q, want [\"\" \"Bearer tok-1\"]", got)
	}

	// Pre-authorized: the cached token goes with the next request at once.
	status, _ = do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/app/blobs/sha256:abc", nil)
	if status != http.StatusOK {
		t.Fatalf("second GET = %d, want 200", status)
	}
	if got := reg.seen(); len(got) != 3 || got[2] != "Bearer tok-1" {
		t.Fatalf("registry saw %q, want a third request with Bearer tok-1 and no 401", got)
	}
	if n := len(ts.calls()); n != 1 {
		t.Fatalf("token requests = %d, want 1", n)
	}
}

func TestClientAccessTokenField(t *testing.T) {
	ts := newTokenServer(t)
	ts.useAccessToken = true
	reg := newRegistry(t, ts)
	c := auth.NewClient()
	if status, _ := do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil); status != http.StatusOK {
		t.Fatalf("GET = %d, want 200 with an access_token answer", status)
	}
}

func TestClientGETFallback(t *testing.T) {
	tests := []struct {
		postStatus int
		wantGET    bool
		wantErr    error
	}{
		{http.StatusBadRequest, true, nil},
		{http.StatusUnauthorized, true, nil},
		{http.StatusNotFound, true, nil},
		{http.StatusMethodNotAllowed, true, nil},
		{http.StatusForbidden, false, errdefs.ErrPermissionDenied},
		{http.StatusInternalServerError, false, errdefs.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.postStatus), func(t *testing.T) {
			ts := newTokenServer(t)
			ts.users["bob"] = "hunter2"
			ts.postStatus = tt.postStatus
			reg := newRegistry(t, ts)
			c := auth.NewClient(auth.WithKeychain(auth.Static(reg.host(), auth.Credential{Username: "bob", Password: "hunter2"})))
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.srv.URL+"/v2/lib/app/manifests/1", nil)
			resp, err := c.Do(req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Do() error = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status = %d, want 200", resp.StatusCode)
				}
			}
			calls := ts.calls()
			if !tt.wantGET {
				if len(calls) != 1 {
					t.Fatalf("token requests = %+v, want the POST only", calls)
				}
				return
			}
			if len(calls) != 2 || calls[1].Method != http.MethodGet {
				t.Fatalf("token requests = %+v, want POST then GET", calls)
			}
			get := calls[1]
			if get.User != "bob" || get.Pass != "hunter2" {
				t.Errorf("GET basic auth = %q/%q, want bob/hunter2", get.User, get.Pass)
			}
			if get.Values.Get("service") != "registry.test" || get.Values.Get("scope") != "repository:lib/app:pull" {
				t.Errorf("GET query = %v", get.Values)
			}
		})
	}
}

func TestClientAnonymousToken(t *testing.T) {
	ts := newTokenServer(t)
	reg := newRegistry(t, ts)
	c := auth.NewClient()
	if status, _ := do(t, t.Context(), c, http.MethodHead, reg.srv.URL+"/v2/app/manifests/1", nil); status != http.StatusOK {
		t.Fatalf("HEAD = %d, want 200", status)
	}
	calls := ts.calls()
	if len(calls) != 1 || calls[0].Method != http.MethodGet || calls[0].HasAuth {
		t.Fatalf("token requests = %+v, want one GET without Authorization", calls)
	}
}

func TestClientIdentityToken(t *testing.T) {
	ts := newTokenServer(t)
	ts.refresh["idtok-1"] = "carol"
	reg := newRegistry(t, ts)
	c := auth.NewClient(auth.WithKeychain(auth.Static(reg.host(), auth.Credential{IdentityToken: "idtok-1"})))
	if status, _ := do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil); status != http.StatusOK {
		t.Fatalf("GET = %d, want 200", status)
	}
	calls := ts.calls()
	if len(calls) != 1 || calls[0].Values.Get("grant_type") != "refresh_token" || calls[0].Values.Get("refresh_token") != "idtok-1" {
		t.Fatalf("token requests = %+v, want one refresh_token grant", calls)
	}

	// A rejected identity token is an error, without a GET fallback.
	c = auth.NewClient(auth.WithKeychain(auth.Static(reg.host(), auth.Credential{IdentityToken: "idtok-revoked"})))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil)
	_, err := c.Do(req)
	if !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("Do() error = %v, want the token server's 400 invalid_grant as ErrUnauthenticated", err)
	}
	if strings.Contains(err.Error(), "idtok-revoked") {
		t.Fatalf("error %q contains the identity token", err)
	}
	if n := len(ts.calls()); n != 2 {
		t.Fatalf("token requests = %d, want 2 (no GET fallback)", n)
	}
}

func TestClientRegistryToken(t *testing.T) {
	ts := newTokenServer(t)
	ts.grants["preissued"] = map[string]bool{"repository:app:pull": true}
	reg := newRegistry(t, ts)
	c := auth.NewClient(auth.WithKeychain(auth.Static(reg.host(), auth.Credential{RegistryToken: "preissued"})))
	if status, _ := do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil); status != http.StatusOK {
		t.Fatalf("GET = %d, want 200", status)
	}
	if n := len(ts.calls()); n != 0 {
		t.Fatalf("token requests = %d, want 0: a registry token is sent as is", n)
	}
	if got := reg.seen(); got[len(got)-1] != "Bearer preissued" {
		t.Fatalf("registry saw %q", got)
	}
}

func TestClientRefreshTokenKept(t *testing.T) {
	ts := newTokenServer(t)
	ts.users["dave"] = "pw-dave"
	ts.issueRefresh = true
	reg := newRegistry(t, ts)
	c := auth.NewClient(auth.WithKeychain(auth.Static(reg.host(), auth.Credential{Username: "dave", Password: "pw-dave"})))
	do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/one/manifests/1", nil)
	do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/two/manifests/1", nil)
	calls := ts.calls()
	if len(calls) != 2 {
		t.Fatalf("token requests = %+v, want 2", calls)
	}
	if calls[0].Values.Get("grant_type") != "password" || calls[0].Values.Get("access_type") != "offline" {
		t.Errorf("first token request = %v, want an offline password grant", calls[0].Values)
	}
	if calls[1].Values.Get("grant_type") != "refresh_token" || calls[1].Values.Get("refresh_token") != "refresh-1" {
		t.Errorf("second token request = %v, want the refresh token from the first answer", calls[1].Values)
	}

	// A revoked refresh token falls back to the password once.
	ts.mu.Lock()
	clear(ts.refresh)
	ts.mu.Unlock()
	if status, _ := do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/three/manifests/1", nil); status != http.StatusOK {
		t.Fatalf("GET = %d, want 200", status)
	}
	calls = ts.calls()[2:]
	if len(calls) != 2 || calls[0].Values.Get("grant_type") != "refresh_token" || calls[1].Values.Get("grant_type") != "password" {
		t.Fatalf("token requests = %+v, want refresh_token then password", calls)
	}
}

func TestClientTokenRenewal(t *testing.T) {
	tests := []struct {
		name      string
		expiresIn int
		keep      time.Duration // still used as is
		renew     time.Duration // renewed before sending
	}{
		{"expires_in 300", 300, 289 * time.Second, 291 * time.Second},
		{"default 60s", 0, 53 * time.Second, 55 * time.Second},
		{"short 20s", 20, 17 * time.Second, 19 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t)
			ts.expiresIn = tt.expiresIn
			reg := newRegistry(t, ts)
			clock := newFakeClock()
			c := auth.NewClient()
			auth.SetClock(c, clock.Now)
			url := reg.srv.URL + "/v2/app/manifests/1"
			ctx := auth.WithScopes(t.Context(), auth.RepositoryScope("app", auth.ActionPull))

			do(t, ctx, c, http.MethodGet, url, nil)
			clock.Advance(tt.keep)
			do(t, ctx, c, http.MethodGet, url, nil)
			if n := len(ts.calls()); n != 1 {
				t.Fatalf("after %s: token requests = %d, want 1", tt.keep, n)
			}
			clock.Advance(tt.renew - tt.keep)
			do(t, ctx, c, http.MethodGet, url, nil)
			if n := len(ts.calls()); n != 2 {
				t.Fatalf("after %s: token requests = %d, want 2", tt.renew, n)
			}
			// Renewed before the request: the registry never saw a 401 for it.
			got := reg.seen()
			if want := []string{"", "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"}; strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("registry saw %q, want %q", got, want)
			}
		})
	}
}

func TestClientInsufficientScope(t *testing.T) {
	ts := newTokenServer(t)
	reg := newRegistry(t, ts)
	c := auth.NewClient()
	ctx := auth.WithScopes(t.Context(), auth.RepositoryScope("app", auth.ActionPull))
	do(t, ctx, c, http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil)

	// A push with the pull token: one insufficient_scope, one new token
	// covering both, one retry.
	status, _ := do(t, ctx, c, http.MethodPut, reg.srv.URL+"/v2/app/manifests/1", strings.NewReader("manifest"))
	if status != http.StatusOK {
		t.Fatalf("PUT = %d, want 200", status)
	}
	calls := ts.calls()
	if len(calls) != 2 {
		t.Fatalf("token requests = %+v, want 2", calls)
	}
	if got := calls[1].Values["scope"]; strings.Join(got, " ") != "repository:app:pull,push" {
		t.Errorf("second token scope = %q, want repository:app:pull,push", got)
	}
	reg.mu.Lock()
	bodies := reg.bodies[2:]
	reg.mu.Unlock()
	if len(bodies) != 2 || bodies[0] != "manifest" || bodies[1] != "manifest" {
		t.Fatalf("registry got bodies %q, want the body twice", bodies)
	}
}

func TestClientNeverLoops(t *testing.T) {
	ts := newTokenServer(t)
	reg := newRegistry(t, ts)
	reg.alwaysInsufficient = true
	c := auth.NewClient()
	url := reg.srv.URL + "/v2/app/manifests/1"

	status, _ := do(t, t.Context(), c, http.MethodGet, url, nil)
	if status != http.StatusUnauthorized {
		t.Fatalf("GET = %d, want the 401 returned", status)
	}
	if n, m := len(reg.seen()), len(ts.calls()); n != 2 || m != 1 {
		t.Fatalf("registry requests = %d, token requests = %d; want 2 and 1", n, m)
	}

	// With a cached token: one refresh and one retry, not more.
	status, _ = do(t, t.Context(), c, http.MethodGet, url, nil)
	if status != http.StatusUnauthorized {
		t.Fatalf("second GET = %d, want 401", status)
	}
	if n, m := len(reg.seen()), len(ts.calls()); n != 4 || m != 2 {
		t.Fatalf("registry requests = %d, token requests = %d; want 4 and 2", n, m)
	}
}

func TestClientInvalidTokenRefreshed(t *testing.T) {
	ts := newTokenServer(t)
	reg := newRegistry(t, ts)
	c := auth.NewClient()
	url := reg.srv.URL + "/v2/app/manifests/1"
	do(t, t.Context(), c, http.MethodGet, url, nil)
	ts.revoke("tok-1")
	if status, _ := do(t, t.Context(), c, http.MethodGet, url, nil); status != http.StatusOK {
		t.Fatalf("GET after revocation = %d, want 200", status)
	}
	want := []string{"", "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"}
	if got := reg.seen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("registry saw %q, want %q", got, want)
	}
	// The revoked token is not sent again.
	do(t, t.Context(), c, http.MethodGet, url, nil)
	if got := reg.seen(); got[len(got)-1] != "Bearer tok-2" || len(got) != 5 {
		t.Fatalf("registry saw %q, want tok-2 pre-authorized", got)
	}
}

func TestClientSingleFlight(t *testing.T) {
	const n = 16
	ts := newTokenServer(t)
	reg := newRegistry(t, ts)
	gate := make(chan struct{})
	ts.gate = gate
	// The token server answers only once every request has had its 401, so
	// all n requests want a token at the same time.
	reg.onUnauthorized = func(count int) {
		if count == n {
			close(gate)
		}
	}
	ts.users["erin"] = "pw-erin"
	c := auth.NewClient(auth.WithKeychain(auth.Static(reg.host(), auth.Credential{Username: "erin", Password: "pw-erin"})))
	ctx := auth.WithScopes(t.Context(), auth.RepositoryScope("app"))

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, reg.srv.URL+"/v2/app/blobs/sha256:1", nil)
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if calls := ts.calls(); len(calls) != 1 {
		t.Fatalf("token requests = %d, want 1 for %d concurrent requests", len(calls), n)
	}
}

func TestClientBasic(t *testing.T) {
	br := newBasicRegistry(t, "frank", "pw-frank")
	c := auth.NewClient(auth.WithKeychain(auth.Static(br.host(), auth.Credential{Username: "frank", Password: "pw-frank"})))
	for range 2 {
		if status, _ := do(t, t.Context(), c, http.MethodGet, br.srv.URL+"/v2/", nil); status != http.StatusOK {
			t.Fatalf("GET = %d, want 200", status)
		}
	}
	got := br.seen()
	if len(got) != 3 || got[0] != "" || !strings.HasPrefix(got[1], "Basic ") || got[2] != got[1] {
		t.Fatalf("registry saw %q, want a 401 then Basic twice (the second pre-authorized)", got)
	}

	// Wrong password: the 401 comes back after exactly one retry.
	bad := auth.NewClient(auth.WithKeychain(auth.Static(br.host(), auth.Credential{Username: "frank", Password: "wrong"})))
	if status, _ := do(t, t.Context(), bad, http.MethodGet, br.srv.URL+"/v2/", nil); status != http.StatusUnauthorized {
		t.Fatalf("GET = %d, want 401", status)
	}
	if n := len(br.seen()); n != 5 {
		t.Fatalf("registry requests = %d, want 5", n)
	}
}

func TestClientCredentialsStayOnTheirHost(t *testing.T) {
	a := newBasicRegistry(t, "gina", "pw-gina")
	b := newBasicRegistry(t, "gina", "pw-gina")
	tests := []struct {
		name string
		kc   auth.Keychain
	}{
		{"ServerAddress", auth.FromAuthConfig(auth.AuthConfig{Username: "gina", Password: "pw-gina", ServerAddress: "http://" + a.host() + "/v2/"}, b.host())},
		{"image host", auth.FromAuthConfig(auth.AuthConfig{Auth: "Z2luYTpwdy1naW5h"}, a.host())},
		{"static", auth.Static(a.host(), auth.Credential{Username: "gina", Password: "pw-gina"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := auth.NewClient(auth.WithKeychain(tt.kc))
			if status, _ := do(t, t.Context(), c, http.MethodGet, a.srv.URL+"/v2/", nil); status != http.StatusOK {
				t.Fatalf("GET A = %d, want 200", status)
			}
			if status, _ := do(t, t.Context(), c, http.MethodGet, b.srv.URL+"/v2/", nil); status != http.StatusUnauthorized {
				t.Fatalf("GET B = %d, want 401", status)
			}
			for _, h := range b.seen() {
				if h != "" {
					t.Fatalf("host B got Authorization %q", h)
				}
			}
		})
	}
}

func TestClientTokenNotSharedAcrossRegistries(t *testing.T) {
	// Registry B names A's realm and service in its challenge; A's token,
	// fetched with A's credentials, must not be sent to B.
	ts := newTokenServer(t)
	ts.users["hank"] = "pw-hank"
	a := newRegistry(t, ts)
	b := newRegistry(t, ts)
	c := auth.NewClient(auth.WithKeychain(auth.Static(a.host(), auth.Credential{Username: "hank", Password: "pw-hank"})))
	do(t, t.Context(), c, http.MethodGet, a.srv.URL+"/v2/app/manifests/1", nil)
	do(t, t.Context(), c, http.MethodGet, b.srv.URL+"/v2/app/manifests/1", nil)
	for _, h := range b.seen() {
		if h == "Bearer tok-1" {
			t.Fatalf("registry B got A's token: %q", b.seen())
		}
	}
	calls := ts.calls()
	if len(calls) != 2 || calls[1].Method != http.MethodGet || calls[1].HasAuth {
		t.Fatalf("token requests = %+v, want B's token fetched anonymously", calls)
	}
}

func TestClientRedirectToCDN(t *testing.T) {
	var mu sync.Mutex
	var cdnAuth []string
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cdnAuth = append(cdnAuth, r.Header.Get("Authorization")+r.Header.Get("Cookie"))
		mu.Unlock()
		fmt.Fprint(w, "blob bytes")
	}))
	t.Cleanup(cdn.Close)

	ts := newTokenServer(t)
	ts.users["ivy"] = "pw-ivy"
	reg := newRegistry(t, ts)
	reg.serve = func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/same"):
			http.Redirect(w, r, "/v2/app/blobs/final", http.StatusTemporaryRedirect)
		case strings.HasSuffix(r.URL.Path, "/final"):
			fmt.Fprint(w, "same host")
		default:
			// Both servers listen on 127.0.0.1: only the port differs, which
			// net/http's own redirect policy treats as the same host.
			http.Redirect(w, r, cdn.URL+"/blob?sig=1", http.StatusTemporaryRedirect)
		}
	}
	c := auth.NewClient(auth.WithKeychain(auth.Static(reg.host(), auth.Credential{Username: "ivy", Password: "pw-ivy"})))

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.srv.URL+"/v2/app/blobs/sha256:1", nil)
	req.Header.Set("Cookie", "session=1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "blob bytes" {
		t.Fatalf("GET = %d %q, want 200 from the CDN", resp.StatusCode, body)
	}
	mu.Lock()
	got := append([]string(nil), cdnAuth...)
	mu.Unlock()
	if len(got) != 1 || got[0] != "" {
		t.Fatalf("CDN got Authorization or Cookie %q, want none", got)
	}

	// A redirect within the registry keeps the token.
	if status, body := do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/app/blobs/same", nil); status != http.StatusOK || body != "same host" {
		t.Fatalf("GET = %d %q, want 200 same host", status, body)
	}
	seen := reg.seen()
	if last := seen[len(seen)-1]; last != "Bearer tok-1" {
		t.Fatalf("same-host redirect sent Authorization %q, want the token", last)
	}
}

func TestClientRedirectPolicy(t *testing.T) {
	var hops int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hops++
		mu.Unlock()
		http.Redirect(w, r, "/again", http.StatusFound)
	}))
	t.Cleanup(srv.Close)

	// No policy: net/http's limit of 10 redirects.
	c := auth.NewClient()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/start", nil)
	if _, err := c.Do(req); err == nil || !strings.Contains(err.Error(), "stopped after 10 redirects") {
		t.Fatalf("Do() error = %v, want stopped after 10 redirects", err)
	}
	if hops != 10 {
		t.Fatalf("hops = %d, want 10 (as net/http)", hops)
	}

	// The caller's policy is honoured.
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c = auth.NewClient(auth.WithHTTPClient(hc))
	status, _ := do(t, t.Context(), c, http.MethodGet, srv.URL+"/start", nil)
	if status != http.StatusFound {
		t.Fatalf("status = %d, want the 302 handed back", status)
	}
	stop := errors.New("no redirects here")
	hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return stop }}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/start", nil)
	if _, err := auth.NewClient(auth.WithHTTPClient(hc)).Do(req); !errors.Is(err, stop) {
		t.Fatalf("Do() error = %v, want the policy's error", err)
	}
}

func TestClientBodyWithoutGetBody(t *testing.T) {
	ts := newTokenServer(t)
	reg := newRegistry(t, ts)
	c := auth.NewClient()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, reg.srv.URL+"/v2/app/blobs/uploads/", io.NopCloser(strings.NewReader("data")))
	if req.GetBody != nil {
		t.Fatal("test needs a request without GetBody")
	}
	_, err := c.Do(req)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Do() error = %v, want ErrFailedPrecondition", err)
	}
	// The token was cached, so the caller's own retry is authorized.
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, reg.srv.URL+"/v2/app/blobs/uploads/", io.NopCloser(strings.NewReader("data")))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry status = %d, want 200", resp.StatusCode)
	}
}

func TestClientCallerAuthorization(t *testing.T) {
	ts := newTokenServer(t)
	reg := newRegistry(t, ts)
	c := auth.NewClient()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil)
	req.Header.Set("Authorization", "Bearer mine")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status = %d, want the registry's 401 for the caller's token", resp.StatusCode)
	}
	if got := reg.seen(); len(got) != 1 || got[0] != "Bearer mine" {
		t.Fatalf("registry saw %q", got)
	}
	if n := len(ts.calls()); n != 0 {
		t.Fatalf("token requests = %d, want 0", n)
	}
	if req.Header.Get("User-Agent") != "" {
		t.Fatal("Do modified the caller's request")
	}
}

func TestClientRefusesPlainHTTPRealmFromTLS(t *testing.T) {
	ts := newTokenServer(t)
	ts.users["jo"] = "pw-jo"
	reg := &registry{ts: ts, service: "registry.test"}
	reg.srv = httptest.NewTLSServer(http.HandlerFunc(reg.handle))
	t.Cleanup(reg.srv.Close)
	host := strings.TrimPrefix(reg.srv.URL, "https://")

	c := auth.NewClient(auth.WithHTTPClient(reg.srv.Client()),
		auth.WithKeychain(auth.Static(host, auth.Credential{Username: "jo", Password: "pw-jo"})))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil)
	_, err := c.Do(req)
	if !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Fatalf("Do() error = %v, want ErrPermissionDenied", err)
	}
	if n := len(ts.calls()); n != 0 {
		t.Fatalf("token requests = %d, want none over plain http with credentials", n)
	}

	// Anonymous tokens may come over plain http.
	anon := auth.NewClient(auth.WithHTTPClient(reg.srv.Client()))
	if status, _ := do(t, t.Context(), anon, http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil); status != http.StatusOK {
		t.Fatalf("anonymous GET = %d, want 200", status)
	}
}

func TestClientKeychainAskedForRequestHost(t *testing.T) {
	// The keychain is asked for the host as the registry is addressed, and
	// a TLS test server's client works through WithHTTPClient.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "kim" || p != "pw-kim" {
			w.Header().Set("WWW-Authenticate", `BASIC realm="x"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	var asked []string
	var mu sync.Mutex
	kc := auth.KeychainFunc(func(_ context.Context, host string) (auth.Credential, error) {
		mu.Lock()
		asked = append(asked, host)
		mu.Unlock()
		return auth.Credential{Username: "kim", Password: "pw-kim"}, nil
	})
	c := auth.NewClient(auth.WithHTTPClient(srv.Client()), auth.WithKeychain(kc))
	if status, _ := do(t, t.Context(), c, http.MethodGet, srv.URL+"/v2/", nil); status != http.StatusOK {
		t.Fatalf("GET = %d, want 200", status)
	}
	if want := strings.TrimPrefix(srv.URL, "https://"); len(asked) != 1 || asked[0] != want {
		t.Fatalf("keychain asked for %q, want [%q]", asked, want)
	}
}

func TestClientErrorsHideSecrets(t *testing.T) {
	const password = "pa55-SECRET-word"
	const idToken = "ID-TOKEN-SECRET"
	tests := []struct {
		status  int
		wantErr error
	}{
		{http.StatusUnauthorized, errdefs.ErrUnauthenticated},
		{http.StatusForbidden, errdefs.ErrPermissionDenied},
		{http.StatusTooManyRequests, errdefs.ErrUnavailable},
		{http.StatusInternalServerError, errdefs.ErrUnavailable},
		{http.StatusServiceUnavailable, errdefs.ErrUnavailable},
	}
	for _, tt := range tests {
		for _, cred := range []auth.Credential{
			{Username: "lee", Password: password},
			{IdentityToken: idToken},
		} {
			t.Run(fmt.Sprintf("%d/%v", tt.status, cred), func(t *testing.T) {
				ts := newTokenServer(t)
				ts.status = tt.status
				// A server that echoes what it got must not get it into our errors.
				ts.errorBody = fmt.Sprintf(`{"error":"bad %s %s","details":"%s"}`, password, idToken, password)
				reg := newRegistry(t, ts)
				c := auth.NewClient(auth.WithKeychain(auth.Static(reg.host(), cred)))
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil)
				_, err := c.Do(req)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Do() error = %v, want %v", err, tt.wantErr)
				}
				var re *auth.ResponseError
				if !errors.As(err, &re) || re.StatusCode != tt.status {
					t.Fatalf("Do() error = %#v, want a *ResponseError with status %d", err, tt.status)
				}
				for _, secret := range []string{password, idToken} {
					if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), secret) {
						t.Fatalf("error %q contains a secret", err)
					}
				}
				want := fmt.Sprintf("auth: token from %s: %d %s", ts.realm(), tt.status, http.StatusText(tt.status))
				if !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("error = %q, want it to start with %q", err, want)
				}
			})
		}
	}
}

func TestClientRealmQueryRedacted(t *testing.T) {
	ts := newTokenServer(t)
	ts.status = http.StatusUnauthorized
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s?key=REALM-SECRET"`, ts.realm()))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v2/", nil)
	_, err := auth.NewClient().Do(req)
	if !errdefs.IsUnauthorized(err) || strings.Contains(err.Error(), "REALM-SECRET") {
		t.Fatalf("Do() error = %v, want an unauthenticated error without the realm's query", err)
	}
	if calls := ts.calls(); len(calls) != 1 || calls[0].Values.Get("key") != "REALM-SECRET" {
		t.Fatalf("token requests = %+v, want the realm's own query kept", calls)
	}
}

func TestClientKeychainError(t *testing.T) {
	ts := newTokenServer(t)
	reg := newRegistry(t, ts)
	boom := errors.New("keychain broke")
	c := auth.NewClient(auth.WithKeychain(auth.KeychainFunc(func(context.Context, string) (auth.Credential, error) {
		return auth.Credential{}, boom
	})))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil)
	if _, err := c.Do(req); !errors.Is(err, boom) || !strings.Contains(err.Error(), reg.host()) {
		t.Fatalf("Do() error = %v, want the keychain's error naming the host", err)
	}
}

func TestClientBadRealm(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="/relative/token",service="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v2/", nil)
	if _, err := auth.NewClient().Do(req); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("Do() error = %v, want ErrUnauthenticated", err)
	}
}

func TestClientUnknownChallenge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Negotiate`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	if status, _ := do(t, t.Context(), auth.NewClient(), http.MethodGet, srv.URL+"/v2/", nil); status != http.StatusUnauthorized {
		t.Fatalf("status = %d, want the 401 returned", status)
	}
}

func TestClientInvalidRequest(t *testing.T) {
	_, err := auth.NewClient().Do(&http.Request{Method: http.MethodGet})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Do() error = %v, want ErrInvalidArgument", err)
	}
}

func TestClientCanceledWhileWaitingForToken(t *testing.T) {
	ts := newTokenServer(t)
	reg := newRegistry(t, ts)
	c := auth.NewClient()
	ctx, cancel := context.WithCancel(t.Context())
	gate := make(chan struct{})
	ts.mu.Lock()
	ts.gate = gate
	// The caller gives up while its token request is under way.
	ts.onRequest = cancel
	ts.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil)
	_, err := c.Do(req)
	ts.mu.Lock()
	ts.onRequest = nil
	ts.mu.Unlock()
	close(gate)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do() error = %v, want context.Canceled", err)
	}
	// A later request is not stuck behind the abandoned one.
	if status, _ := do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil); status != http.StatusOK {
		t.Fatalf("GET = %d, want 200", status)
	}
}

func TestClientUserAgent(t *testing.T) {
	var got []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("User-Agent"))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	c := auth.NewClient(auth.WithUserAgent("tester/1"))
	do(t, t.Context(), c, http.MethodGet, srv.URL, nil)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, bytes.NewReader(nil))
	req.Header.Set("User-Agent", "caller/2")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if strings.Join(got, ",") != "tester/1,caller/2" {
		t.Fatalf("User-Agent = %q, want tester/1 then the caller's", got)
	}
}

func TestClientTransportErrorRedacted(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/blob?sig=SIGNATURE-SECRET"
	srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	_, err := auth.NewClient().Do(req)
	var ue *neturl.Error
	if !errors.As(err, &ue) || strings.Contains(err.Error(), "SIGNATURE-SECRET") {
		t.Fatalf("Do() error = %v, want a *url.Error without the query", err)
	}
}

func TestResponseError(t *testing.T) {
	tests := []struct {
		status  int
		code    string
		wantErr error
	}{
		{http.StatusBadRequest, "", errdefs.ErrInvalidArgument},
		{http.StatusBadRequest, "invalid_grant", errdefs.ErrUnauthenticated},
		{http.StatusUnauthorized, "", errdefs.ErrUnauthenticated},
		{http.StatusForbidden, "", errdefs.ErrPermissionDenied},
		{http.StatusNotFound, "", errdefs.ErrNotFound},
		{http.StatusTooManyRequests, "", errdefs.ErrUnavailable},
		{http.StatusBadGateway, "", errdefs.ErrUnavailable},
		{http.StatusTeapot, "", errdefs.ErrUnknown},
	}
	for _, tt := range tests {
		err := &auth.ResponseError{URL: "https://auth.example/token", StatusCode: tt.status, Code: tt.code}
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%d %s: errors.Is(%v) = false", tt.status, tt.code, tt.wantErr)
		}
	}
	err := &auth.ResponseError{URL: "https://auth.example/token", StatusCode: http.StatusUnauthorized}
	if got, want := err.Error(), "auth: token from https://auth.example/token: 401 Unauthorized: unauthorized"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestClientRetryAfter(t *testing.T) {
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS"}]}`)
	}))
	t.Cleanup(tokenSrv.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q`, tokenSrv.URL))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v2/", nil)
	_, err := auth.NewClient().Do(req)
	var re *auth.ResponseError
	if !errdefs.IsUnavailable(err) || !errors.As(err, &re) || re.RetryAfter != 7*time.Second || re.Code != "TOOMANYREQUESTS" {
		t.Fatalf("Do() error = %v, want ErrUnavailable with RetryAfter 7s and the code", err)
	}
}

func TestClientOptions(t *testing.T) {
	ts := newTokenServer(t)
	ts.users["max"] = "pw-max"
	reg := newRegistry(t, ts)
	c := auth.NewClient(
		auth.WithClientID("my-tool"),
		auth.WithDefaultScopes(auth.RepositoryScope("base/image")),
		auth.WithKeychain(auth.Static(reg.host(), auth.Credential{Username: "max", Password: "pw-max"})),
	)
	if status, _ := do(t, t.Context(), c, http.MethodGet, reg.srv.URL+"/v2/app/manifests/1", nil); status != http.StatusOK {
		t.Fatalf("GET = %d, want 200", status)
	}
	calls := ts.calls()
	if len(calls) != 1 {
		t.Fatalf("token requests = %+v", calls)
	}
	if got := calls[0].Values.Get("client_id"); got != "my-tool" {
		t.Errorf("client_id = %q, want my-tool", got)
	}
	if got := calls[0].Values.Get("scope"); got != "repository:app:pull repository:base/image:pull" {
		t.Errorf("scope = %q, want both scopes, space separated and sorted", got)
	}
}

func TestClientRedirectMethods(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/see-other":
			http.Redirect(w, r, "/target", http.StatusSeeOther)
		case "/temporary":
			http.Redirect(w, r, "/target", http.StatusTemporaryRedirect)
		default:
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			got = append(got, r.Method+" "+string(b)+" "+r.Header.Get("Content-Type"))
			mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	c := auth.NewClient()
	for _, path := range []string{"/see-other", "/temporary"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+path, strings.NewReader("payload"))
		req.Header.Set("Content-Type", "text/plain")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := []string{"GET  ", "POST payload text/plain"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("target got %q, want %q", got, want)
	}
}
