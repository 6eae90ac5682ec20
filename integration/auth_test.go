package integration

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/distribution/v3/configuration"
	"golang.org/x/crypto/bcrypt"

	"github.com/pullkit/pullkit"
	"github.com/pullkit/pullkit/auth"
	"github.com/pullkit/pullkit/handlers/platforms"
)

// TestPullHtpasswd pulls from a registry that requires Basic auth checked
// against an htpasswd file of bcrypt hashes.
func TestPullHtpasswd(t *testing.T) {
	const user, password = "alice", "correct horse battery staple"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t, nil, withAuth("htpasswd", configuration.Parameters{
		"realm": "pullkit integration",
		"path":  htpasswd,
	}))
	push := pusher{base: reg.URL, authorize: func(req *http.Request, _ string) { req.SetBasicAuth(user, password) }}
	img := buildImage("htpasswd", linuxAMD64, true)
	push.image(t, "private/app", "v1", img)
	ref := reg.Host + "/private/app:v1"

	tests := []struct {
		name string
		opts []pullkit.Option
		ok   bool
	}{
		{"credentials", []pullkit.Option{pullkit.WithCredentials(user, password)}, true},
		{"keychain", []pullkit.Option{pullkit.WithKeychain(auth.Static(reg.Host, auth.Credential{Username: user, Password: password}))}, true},
		{"wrong password", []pullkit.Option{pullkit.WithCredentials(user, "tr0ub4dor&3")}, false},
		{"unknown user", []pullkit.Option{pullkit.WithCredentials("mallory", password)}, false},
		{"anonymous", nil, false},
		{"keychain for another host", []pullkit.Option{pullkit.WithKeychain(auth.Static("registry.example", auth.Credential{Username: user, Password: password}))}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			store, names := stores[1].open(t)
			got, err := pullkit.Pull(ctx, ref, store, names, tt.opts...)
			if tt.ok {
				if err != nil {
					t.Fatalf("Pull(%q) error = %v", ref, err)
				}
				checkPulled(t, got, store, names, ref, img.Manifest, img)
				return
			}
			if !errdefs.IsUnauthorized(err) {
				t.Fatalf("Pull(%q) error = %v, want Unauthorized", ref, err)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "tr0ub4dor") {
				t.Errorf("error %q carries the password", err)
			}
			if all, lerr := names.List(ctx); lerr != nil || len(all) != 0 {
				t.Errorf("after a failed Pull, names = %v (%v), want none", all, lerr)
			}
		})
	}
}

// resourceActions is one entry of a token's "access" claim, as distribution
// reads it.
type resourceActions struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// tokenServer issues the JWTs a distribution registry configured with
// "auth: token" accepts: ES256, signed by a key whose certificate (from
// the test CA, the registry's rootcertbundle) is in the x5c header, with
// the claims iss, sub, aud, exp, nbf, iat, jti and access.
//
// It speaks both token protocols: the OAuth2 password grant (POST) and the
// distribution GET protocol with optional Basic auth; with getOnly it
// answers POST with 405, as servers that know only GET do. Anonymous
// requests get a token with no access.
type tokenServer struct {
	srv     *httptest.Server
	issuer  string
	service string
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	getOnly bool
	// users maps user names to passwords.
	users map[string]string
	// pullable maps user names to the repositories they may pull.
	pullable map[string][]string

	mu    sync.Mutex
	calls map[string]int // by method, token requests answered with a token
}

// startTokenServer starts a token server on 127.0.0.1 that signs with a
// certificate from ca. It stops when the test ends.
func startTokenServer(t *testing.T, ca *testCA, getOnly bool) *tokenServer {
	t.Helper()
	cert, key := ca.issue(t, &x509.Certificate{
		Subject:  pkix.Name{CommonName: "pullkit token signer"},
		KeyUsage: x509.KeyUsageDigitalSignature,
	})
	ts := &tokenServer{
		issuer:   "pullkit-test-issuer",
		service:  "pullkit-test-registry",
		cert:     cert,
		key:      key,
		getOnly:  getOnly,
		users:    map[string]string{"alice": "alice-password"},
		pullable: map[string][]string{"alice": {"team/app"}},
		calls:    map[string]int{},
	}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serveToken))
	t.Cleanup(ts.srv.Close)
	return ts
}

// registryAuth is the "auth: token" configuration of a registry that trusts
// ts: tokens signed under ca, whose certificate is written to a bundle file.
func (ts *tokenServer) registryAuth(t *testing.T, ca *testCA) registryOption {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "token-ca.pem")
	if err := os.WriteFile(bundle, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return withAuth("token", configuration.Parameters{
		"realm":          ts.srv.URL + "/token",
		"service":        ts.service,
		"issuer":         ts.issuer,
		"rootcertbundle": bundle,
	})
}

// count returns how many tokens were issued in answer to method, or to any
// method when method is "".
func (ts *tokenServer) count(method string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if method == "" {
		return ts.calls[http.MethodGet] + ts.calls[http.MethodPost]
	}
	return ts.calls[method]
}

func (ts *tokenServer) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" {
		http.NotFound(w, r)
		return
	}
	var (
		user, password string
		authenticated  bool
		scopes         []string
		service        string
	)
	switch r.Method {
	case http.MethodPost:
		if ts.getOnly {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("grant_type") != "password" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		user, password, authenticated = r.PostForm.Get("username"), r.PostForm.Get("password"), true
		scopes = strings.Fields(r.PostForm.Get("scope"))
		service = r.PostForm.Get("service")
	case http.MethodGet:
		user, password, authenticated = r.BasicAuth()
		for _, s := range r.URL.Query()["scope"] {
			scopes = append(scopes, strings.Fields(s)...)
		}
		service = r.URL.Query().Get("service")
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if service != ts.service {
		http.Error(w, `{"error":"invalid_request","error_description":"unknown service"}`, http.StatusBadRequest)
		return
	}
	if authenticated && (ts.users[user] == "" || ts.users[user] != password) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}`)
		return
	}
	if !authenticated {
		user = ""
	}

	// Grant the pull scopes asked for on repositories the user may pull;
	// ask for anything else and the token simply lacks it.
	access := []resourceActions{}
	for _, s := range scopes {
		typ, rest, _ := strings.Cut(s, ":")
		i := strings.LastIndex(rest, ":")
		if typ != "repository" || i < 0 {
			continue
		}
		name, actions := rest[:i], strings.Split(rest[i+1:], ",")
		if slices.Contains(actions, "pull") && slices.Contains(ts.pullable[user], name) {
			access = append(access, resourceActions{Type: "repository", Name: name, Actions: []string{"pull"}})
		}
	}
	token, err := ts.mint(user, access, 5*time.Minute)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.mu.Lock()
	ts.calls[r.Method]++
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token":        token,
		"access_token": token,
		"expires_in":   300,
		"issued_at":    time.Now().UTC().Format(time.RFC3339),
	})
}

// mint returns a signed JWT for subject with access, valid for ttl.
func (ts *tokenServer) mint(subject string, access []resourceActions, ttl time.Duration) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := time.Now()
	header := map[string]any{
		"typ": "JWT",
		"alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(ts.cert.Raw)},
	}
	claims := map[string]any{
		"iss":    ts.issuer,
		"sub":    subject,
		"aud":    ts.service,
		"exp":    now.Add(ttl).Unix(),
		"nbf":    now.Unix(),
		"iat":    now.Unix(),
		"jti":    hex.EncodeToString(jti),
		"access": access,
	}
	var parts []string
	for _, v := range []any{header, claims} {
		b, err := json.Marshal(v)
		if err != nil {
			return "", err
		}
		parts = append(parts, base64.RawURLEncoding.EncodeToString(b))
	}
	signingInput := strings.Join(parts, ".")
	sum := sha256.Sum256([]byte(signingInput))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64) // JWS ES256: R and S, 32 bytes each, big-endian
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// TestPullToken pulls from a registry with token auth: the client is sent
// to the test's token server, gets a JWT for the repository, and pulls with
// it, over either token protocol.
func TestPullToken(t *testing.T) {
	for _, mode := range []struct {
		name    string
		getOnly bool
		method  string // the protocol that issues the tokens
	}{
		{"oauth2", false, http.MethodPost},
		{"get only", true, http.MethodGet},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ca := newCA(t, "pullkit token CA")
			ts := startTokenServer(t, ca, mode.getOnly)
			reg := startRegistry(t, nil, ts.registryAuth(t, ca))
			push := pusher{base: reg.URL, authorize: func(req *http.Request, repo string) {
				token, err := ts.mint("pusher", []resourceActions{{Type: "repository", Name: repo, Actions: []string{"pull", "push"}}}, time.Minute)
				if err != nil {
					t.Errorf("mint: %v", err)
				}
				req.Header.Set("Authorization", "Bearer "+token)
			}}
			idx := buildIndex(false, buildImage("token-amd64", linuxAMD64, false), buildImage("token-arm64", linuxARM64, false))
			push.index(t, "team/app", "v1", idx)
			push.index(t, "team/private", "v1", idx)

			preminted, err := ts.mint("ci", []resourceActions{{Type: "repository", Name: "team/app", Actions: []string{"pull"}}}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}

			tests := []struct {
				name      string
				repo      string
				opts      []pullkit.Option
				ok        bool
				viaServer bool // a token comes from the token server
			}{
				{"granted", "team/app", []pullkit.Option{pullkit.WithCredentials("alice", "alice-password")}, true, true},
				{"registry token", "team/app", []pullkit.Option{pullkit.WithKeychain(auth.Static(reg.Host, auth.Credential{RegistryToken: preminted}))}, true, false},
				{"not granted", "team/private", []pullkit.Option{pullkit.WithCredentials("alice", "alice-password")}, false, true},
				{"wrong password", "team/app", []pullkit.Option{pullkit.WithCredentials("alice", "wrong")}, false, false},
				{"anonymous", "team/app", nil, false, true},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ctx := testCtx(t)
					store, names := stores[1].open(t)
					ref := reg.Host + "/" + tt.repo + ":v1"
					before, beforeMode := ts.count(""), ts.count(mode.method)
					got, err := pullkit.Pull(ctx, ref, store, names, append(tt.opts, pullkit.WithPlatforms(platforms.OnlyStrict(linuxARM64)))...)
					if issued := ts.count("") - before; tt.viaServer != (issued > 0) {
						t.Errorf("token server issued %d tokens, want some: %v", issued, tt.viaServer)
					}
					if tt.ok {
						if err != nil {
							t.Fatalf("Pull(%q) error = %v", ref, err)
						}
						// With a password, the token comes by the protocol
						// the server speaks: POST when it can, else GET.
						if issued := ts.count(mode.method) - beforeMode; tt.viaServer && issued == 0 {
							t.Errorf("no token issued by %s", mode.method)
						}
						checkPulled(t, got, store, names, ref, idx.Desc, idx.Images[1])
						return
					}
					// distribution answers a token that lacks the scope
					// with 401 insufficient_scope (never 403), and the
					// token server refuses a wrong password with 401.
					if !errdefs.IsUnauthorized(err) {
						t.Fatalf("Pull(%q) error = %v, want Unauthorized", ref, err)
					}
					if all, lerr := names.List(ctx); lerr != nil || len(all) != 0 {
						t.Errorf("after a failed Pull, names = %v (%v), want none", all, lerr)
					}
				})
			}
		})
	}
}
