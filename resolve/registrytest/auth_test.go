package registrytest_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pullkit/pullkit/resolve/registrytest"
)

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestBasicAuth(t *testing.T) {
	reg := registrytest.NewT(t,
		registrytest.WithBasicAuth("alice", "pw"),
		registrytest.WithAnonymousPull("public"),
		registrytest.WithDeniedRepos("secret"))
	img := registrytest.RandomImage(1, 1, 10)
	for _, repo := range []string{"private", "public", "secret"} {
		reg.PushImage(repo, "v1", img)
	}
	good, bad := basic("alice", "pw"), basic("alice", "wrong")
	tests := []struct {
		name, method, path, auth string
		wantStatus               int
		wantCode                 string
	}{
		{"ping without credentials", "GET", "/v2/", "", 401, "UNAUTHORIZED"},
		{"ping with bad credentials", "GET", "/v2/", bad, 401, "UNAUTHORIZED"},
		{"ping", "GET", "/v2/", good, 200, ""},
		{"private without credentials", "GET", "/v2/private/manifests/v1", "", 401, "UNAUTHORIZED"},
		{"private with bad credentials", "GET", "/v2/private/manifests/v1", bad, 401, "UNAUTHORIZED"},
		{"private with a bearer token", "GET", "/v2/private/manifests/v1", "Bearer abc", 401, "UNAUTHORIZED"},
		{"private", "GET", "/v2/private/manifests/v1", good, 200, ""},
		{"public anonymously", "GET", "/v2/public/manifests/v1", "", 200, ""},
		{"public with bad credentials", "GET", "/v2/public/manifests/v1", bad, 401, "UNAUTHORIZED"},
		{"push to public anonymously", "POST", "/v2/public/blobs/uploads/", "", 401, "UNAUTHORIZED"},
		{"push to private", "POST", "/v2/private/blobs/uploads/", good, 202, ""},
		{"denied", "GET", "/v2/secret/manifests/v1", good, 403, "DENIED"},
		{"denied anonymously", "GET", "/v2/secret/manifests/v1", "", 401, "UNAUTHORIZED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr http.Header
			if tt.auth != "" {
				hdr = h("Authorization", tt.auth)
			}
			resp, body := do(t, reg.Client(), tt.method, reg.URL()+tt.path, hdr, "")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode != "" {
				if got := errCode(t, body); got != tt.wantCode {
					t.Errorf("code = %s, want %s", got, tt.wantCode)
				}
			}
			if tt.wantStatus == 401 {
				if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="registrytest"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			}
		})
	}
}

// tokenResp is the token server's JSON answer.
type tokenResp struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

// getToken asks the token server by GET; auth is an Authorization header
// or "".
func getToken(t *testing.T, reg *registrytest.Registry, auth string, q url.Values) (int, tokenResp) {
	t.Helper()
	if q.Get("service") == "" {
		q.Set("service", registrytest.Service)
	}
	var hdr http.Header
	if auth != "" {
		hdr = h("Authorization", auth)
	}
	resp, body := do(t, reg.Client(), http.MethodGet, reg.TokenURL()+"?"+q.Encode(), hdr, "")
	var tr tokenResp
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token GET body %q: %v", body, err)
	}
	return resp.StatusCode, tr
}

// postToken asks the token server by POST with form f.
func postToken(t *testing.T, reg *registrytest.Registry, f url.Values) (int, tokenResp) {
	t.Helper()
	resp, body := do(t, reg.Client(), http.MethodPost, reg.TokenURL(), h("Content-Type", "application/x-www-form-urlencoded"), f.Encode())
	var tr tokenResp
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token POST body %q: %v", body, err)
	}
	return resp.StatusCode, tr
}

// bearerGet sends GET path to the registry with the token, or none.
func bearerGet(t *testing.T, reg *registrytest.Registry, method, path, tok string) (*http.Response, []byte) {
	t.Helper()
	var hdr http.Header
	if tok != "" {
		hdr = h("Authorization", "Bearer "+tok)
	}
	return do(t, reg.Client(), method, reg.URL()+path, hdr, "")
}

func scopeQ(scopes ...string) url.Values { return url.Values{"scope": scopes} }

func TestTokenChallenge(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "pw"))
	reg.PushImage("team/app", "v1", registrytest.RandomImage(1, 1, 10))
	if !strings.HasSuffix(reg.TokenURL(), "/token") || strings.HasPrefix(reg.TokenURL(), reg.URL()) {
		t.Fatalf("TokenURL() = %q", reg.TokenURL())
	}
	realm := `Bearer realm="` + reg.TokenURL() + `",service="registrytest"`
	tests := []struct {
		name, method, path, tok string
		wantStatus              int
		wantChallenge           string
	}{
		{"ping", "GET", "/v2/", "", 401, realm},
		{"ping with an unknown token", "GET", "/v2/", "nope", 401, realm + `,error="invalid_token"`},
		{"manifest", "GET", "/v2/team/app/manifests/v1", "", 401, realm + `,scope="repository:team/app:pull"`},
		{"blob head", "HEAD", "/v2/team/app/blobs/sha256:" + strings.Repeat("0", 64), "", 401, realm + `,scope="repository:team/app:pull"`},
		{"upload", "POST", "/v2/team/app/blobs/uploads/", "", 401, realm + `,scope="repository:team/app:pull,push"`},
		{"unknown token", "GET", "/v2/team/app/manifests/v1", "nope", 401, realm + `,scope="repository:team/app:pull",error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := bearerGet(t, reg, tt.method, tt.path, tt.tok)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %s\nwant                %s", got, tt.wantChallenge)
			}
			if tt.method != "HEAD" && errCode(t, body) != "UNAUTHORIZED" {
				t.Errorf("body = %s", body)
			}
		})
	}
}

func TestTokenGET(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "pw"), registrytest.WithAnonymousPull("pub/lic"))
	img := registrytest.RandomImage(1, 1, 10)
	for _, repo := range []string{"team/a", "team/b", "pub/lic"} {
		reg.PushImage(repo, "v1", img)
	}

	status, tr := getToken(t, reg, basic("alice", "pw"), scopeQ("repository:team/a:pull"))
	if status != 200 || tr.Token == "" || tr.Token != tr.AccessToken || tr.ExpiresIn != 300 || tr.RefreshToken != "" || tr.Scope != "repository:team/a:pull" {
		t.Fatalf("GET token = %d %+v", status, tr)
	}
	if issued, err := time.Parse(time.RFC3339, tr.IssuedAt); err != nil || time.Since(issued) > time.Hour {
		t.Errorf("issued_at = %q (%v)", tr.IssuedAt, err)
	}
	if resp, _ := bearerGet(t, reg, "GET", "/v2/", tr.Token); resp.StatusCode != 200 {
		t.Errorf("ping with a token = %d", resp.StatusCode)
	}
	if resp, _ := bearerGet(t, reg, "GET", "/v2/team/a/manifests/v1", tr.Token); resp.StatusCode != 200 {
		t.Errorf("GET team/a with its token = %d", resp.StatusCode)
	}
	// Scopes are enforced: a token for team/a does not read team/b, nor push to team/a.
	resp, body := bearerGet(t, reg, "GET", "/v2/team/b/manifests/v1", tr.Token)
	if resp.StatusCode != 401 || errCode(t, body) != "UNAUTHORIZED" ||
		!strings.HasSuffix(resp.Header.Get("WWW-Authenticate"), `,scope="repository:team/b:pull",error="insufficient_scope"`) {
		t.Errorf("GET team/b with team/a's token = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, _ = bearerGet(t, reg, "POST", "/v2/team/a/blobs/uploads/", tr.Token)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("push with a pull token = %d", resp.StatusCode)
	}

	// Several scopes, in one parameter or several; push needs it asked.
	status, tr = getToken(t, reg, basic("alice", "pw"), scopeQ("repository:team/a:pull,push repository:team/b:pull", "registry:catalog:*"))
	if status != 200 || tr.Scope != "repository:team/a:pull,push repository:team/b:pull" {
		t.Fatalf("GET token for several scopes = %d %+v", status, tr)
	}
	if resp, _ := bearerGet(t, reg, "POST", "/v2/team/a/blobs/uploads/", tr.Token); resp.StatusCode != 202 {
		t.Errorf("push with a push token = %d", resp.StatusCode)
	}
	if resp, _ := bearerGet(t, reg, "GET", "/v2/team/b/manifests/v1", tr.Token); resp.StatusCode != 200 {
		t.Errorf("GET team/b = %d", resp.StatusCode)
	}

	// offline_token asks for a refresh token.
	q := scopeQ("repository:team/a:pull")
	q.Set("offline_token", "true")
	if status, tr = getToken(t, reg, basic("alice", "pw"), q); status != 200 || tr.RefreshToken == "" {
		t.Errorf("GET token with offline_token = %d %+v", status, tr)
	}

	// Anonymous clients get tokens, with only what WithAnonymousPull allows.
	status, tr = getToken(t, reg, "", scopeQ("repository:pub/lic:pull,push", "repository:team/a:pull"))
	if status != 200 || tr.Scope != "repository:pub/lic:pull" || tr.RefreshToken != "" {
		t.Fatalf("anonymous GET token = %d %+v", status, tr)
	}
	if resp, _ := bearerGet(t, reg, "GET", "/v2/pub/lic/manifests/v1", tr.Token); resp.StatusCode != 200 {
		t.Errorf("anonymous GET pub/lic = %d", resp.StatusCode)
	}
	if resp, _ := bearerGet(t, reg, "GET", "/v2/team/a/manifests/v1", tr.Token); resp.StatusCode != 401 {
		t.Errorf("anonymous GET team/a = %d, want 401", resp.StatusCode)
	}

	// Refusals.
	if status, tr = getToken(t, reg, basic("alice", "wrong"), scopeQ("repository:team/a:pull")); status != 401 || tr.Error != "invalid_grant" {
		t.Errorf("GET token with a bad password = %d %+v", status, tr)
	}
	if status, _ = getToken(t, reg, "Bearer x", scopeQ("repository:team/a:pull")); status != 401 {
		t.Errorf("GET token with a bearer header = %d", status)
	}
	if status, tr = getToken(t, reg, basic("alice", "pw"), url.Values{"service": {"other"}}); status != 400 || tr.Error != "invalid_request" {
		t.Errorf("GET token for another service = %d %+v", status, tr)
	}
}

func TestTokenPOST(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "pw"))
	reg.PushImage("team/a", "v1", registrytest.RandomImage(1, 1, 10))
	form := func(kv ...string) url.Values {
		f := url.Values{"service": {registrytest.Service}, "client_id": {"test"}, "scope": {"repository:team/a:pull"}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				f.Del(kv[i])
			} else {
				f.Set(kv[i], kv[i+1])
			}
		}
		return f
	}

	status, tr := postToken(t, reg, form("grant_type", "password", "username", "alice", "password", "pw"))
	if status != 200 || tr.AccessToken == "" || tr.Token != tr.AccessToken || tr.RefreshToken == "" || tr.ExpiresIn != 300 {
		t.Fatalf("POST password = %d %+v", status, tr)
	}
	if resp, _ := bearerGet(t, reg, "GET", "/v2/team/a/manifests/v1", tr.AccessToken); resp.StatusCode != 200 {
		t.Errorf("GET with the POSTed token = %d", resp.StatusCode)
	}

	// Expired tokens are refused; the refresh token gets a new one.
	reg.ExpireTokens()
	resp, _ := bearerGet(t, reg, "GET", "/v2/team/a/manifests/v1", tr.AccessToken)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("GET with an expired token = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	status, tr2 := postToken(t, reg, form("grant_type", "refresh_token", "refresh_token", tr.RefreshToken))
	if status != 200 || tr2.AccessToken == "" || tr2.AccessToken == tr.AccessToken || tr2.RefreshToken != tr.RefreshToken {
		t.Fatalf("POST refresh_token = %d %+v", status, tr2)
	}
	if resp, _ := bearerGet(t, reg, "GET", "/v2/team/a/manifests/v1", tr2.AccessToken); resp.StatusCode != 200 {
		t.Errorf("GET with the refreshed token = %d", resp.StatusCode)
	}

	tests := []struct {
		name       string
		form       url.Values
		wantStatus int
		wantError  string
	}{
		{"bad password", form("grant_type", "password", "username", "alice", "password", "x"), 401, "invalid_grant"},
		{"unknown refresh token", form("grant_type", "refresh_token", "refresh_token", "nope"), 401, "invalid_grant"},
		{"no grant type", form(), 400, "unsupported_grant_type"},
		{"authorization code", form("grant_type", "authorization_code"), 400, "unsupported_grant_type"},
		{"no client_id", form("grant_type", "password", "username", "alice", "password", "pw", "client_id", ""), 400, "invalid_request"},
		{"other service", form("grant_type", "password", "username", "alice", "password", "pw", "service", "x"), 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, tr := postToken(t, reg, tt.form)
			if status != tt.wantStatus || tr.Error != tt.wantError || tr.AccessToken != "" {
				t.Errorf("POST = %d %+v, want %d %s", status, tr, tt.wantStatus, tt.wantError)
			}
		})
	}

	// A JSON body is not a form.
	resp, _ = do(t, reg.Client(), http.MethodPost, reg.TokenURL(), h("Content-Type", "application/json"), `{"grant_type":"password"}`)
	if resp.StatusCode != 400 {
		t.Errorf("POST JSON = %d, want 400", resp.StatusCode)
	}
	resp, _ = do(t, reg.Client(), http.MethodPut, reg.TokenURL(), nil, "")
	if resp.StatusCode != 405 {
		t.Errorf("PUT /token = %d, want 405", resp.StatusCode)
	}
	resp, _ = do(t, reg.Client(), http.MethodGet, strings.TrimSuffix(reg.TokenURL(), "/token")+"/other", nil, "")
	if resp.StatusCode != 404 {
		t.Errorf("GET /other = %d, want 404", resp.StatusCode)
	}

	// Passwords in POST forms are never recorded.
	for _, r := range reg.Requests() {
		if r.Server == registrytest.ServerToken && (strings.Contains(r.Query, "pw") || strings.Contains(r.Query, tr.RefreshToken)) {
			t.Errorf("recorded a secret: %+v", r)
		}
	}
}

func TestTokenDenied(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "pw"), registrytest.WithDeniedRepos("team/secret"))
	reg.PushImage("team/secret", "v1", registrytest.RandomImage(1, 1, 10))
	status, tr := getToken(t, reg, basic("alice", "pw"), scopeQ("repository:team/secret:pull"))
	if status != 200 || tr.Scope != "" {
		t.Fatalf("GET token for a denied repository = %d %+v, want a token without scope", status, tr)
	}
	resp, body := bearerGet(t, reg, "GET", "/v2/team/secret/manifests/v1", tr.Token)
	if resp.StatusCode != 403 || errCode(t, body) != "DENIED" {
		t.Errorf("GET denied repository = %d %s, want 403 DENIED", resp.StatusCode, body)
	}
	// Anonymous tokens are not authenticated users: 401, not 403.
	_, anon := getToken(t, reg, "", scopeQ("repository:team/secret:pull"))
	if resp, _ := bearerGet(t, reg, "GET", "/v2/team/secret/manifests/v1", anon.Token); resp.StatusCode != 401 {
		t.Errorf("anonymous GET denied repository = %d, want 401", resp.StatusCode)
	}
}

func TestTokenTTL(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "pw"), registrytest.WithTokenTTL(time.Nanosecond))
	reg.PushImage("a", "v1", registrytest.RandomImage(1, 1, 10))
	status, tr := getToken(t, reg, basic("alice", "pw"), scopeQ("repository:a:pull"))
	if status != 200 || tr.ExpiresIn != 1 {
		t.Fatalf("GET token = %d %+v, want expires_in 1 (rounded up)", status, tr)
	}
	resp, _ := bearerGet(t, reg, "GET", "/v2/a/manifests/v1", tr.Token)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("GET with an expired token = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestTokenPOSTStatus(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "pw"), registrytest.WithTokenPOSTStatus(http.StatusNotFound))
	f := url.Values{"service": {registrytest.Service}, "client_id": {"c"}, "grant_type": {"password"}, "username": {"alice"}, "password": {"pw"}}
	if status, tr := postToken(t, reg, f); status != 404 || tr.AccessToken != "" {
		t.Errorf("POST = %d %+v, want 404", status, tr)
	}
	if status, tr := getToken(t, reg, basic("alice", "pw"), url.Values{}); status != 200 || tr.Token == "" {
		t.Errorf("GET = %d %+v, want a token", status, tr)
	}
	reqs := reg.Requests()
	if len(reqs) != 2 || reqs[0].Server != registrytest.ServerToken || reqs[0].Method != "POST" || reqs[0].Authorization ||
		reqs[1].AuthScheme != "Basic" || reqs[1].Query != "service=registrytest" {
		t.Errorf("Requests() = %+v", reqs)
	}
}
