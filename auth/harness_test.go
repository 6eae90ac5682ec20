package auth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// tokenRequest is one request a tokenServer received.
type tokenRequest struct {
	Method     string
	Values     url.Values // the form of a POST, the query of a GET
	User, Pass string     // Basic auth of a GET
	HasAuth    bool
}

// tokenServer is a distribution-style token server that speaks both the
// OAuth2 POST protocol and the GET protocol.
type tokenServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []tokenRequest
	grants   map[string]map[string]bool // token → granted "repository:name:action"
	refresh  map[string]string          // refresh token → user
	n        int

	// Behaviour, set before use.
	users          map[string]string // user → password
	noAnonymous    bool              // refuse tokens without credentials
	postStatus     int               // when set, every POST fails with it
	status         int               // when set, every request fails with it
	errorBody      string            // body of failures
	expiresIn      int               // 0 omits expires_in
	issueRefresh   bool              // return refresh_token on POST
	useAccessToken bool              // answer with access_token, not token
	gate           chan struct{}     // when set, wait for it before answering (under mu)
	onRequest      func()            // when set, runs as a request arrives (under mu)
}

func newTokenServer(t *testing.T) *tokenServer {
	t.Helper()
	ts := &tokenServer{
		grants:  map[string]map[string]bool{},
		refresh: map[string]string{},
		users:   map[string]string{},
	}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) realm() string { return ts.srv.URL + "/token" }

func (ts *tokenServer) calls() []tokenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]tokenRequest(nil), ts.requests...)
}

func (ts *tokenServer) fail(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := ts.errorBody
	if body == "" {
		body = `{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}`
	}
	fmt.Fprint(w, body)
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	gate, hook := ts.gate, ts.onRequest
	ts.mu.Unlock()
	if hook != nil {
		hook()
	}
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		case <-time.After(30 * time.Second): // a safety net against a hung test, not a timing assumption
		}
	}
	tr := tokenRequest{Method: r.Method}
	var scopes []string
	switch r.Method {
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		tr.Values = r.PostForm
		scopes = strings.Fields(r.PostForm.Get("scope"))
	case http.MethodGet:
		tr.Values = r.URL.Query()
		scopes = r.URL.Query()["scope"]
		tr.User, tr.Pass, tr.HasAuth = r.BasicAuth()
		tr.HasAuth = r.Header.Get("Authorization") != ""
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.requests = append(ts.requests, tr)

	if ts.status != 0 {
		ts.fail(w, ts.status)
		return
	}
	user := ""
	switch {
	case r.Method == http.MethodPost && ts.postStatus != 0:
		ts.fail(w, ts.postStatus)
		return
	case r.Method == http.MethodPost && tr.Values.Get("grant_type") == "password":
		user = tr.Values.Get("username")
		if p, ok := ts.users[user]; !ok || p != tr.Values.Get("password") {
			ts.fail(w, http.StatusUnauthorized)
			return
		}
	case r.Method == http.MethodPost && tr.Values.Get("grant_type") == "refresh_token":
		u, ok := ts.refresh[tr.Values.Get("refresh_token")]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		user = u
	case r.Method == http.MethodPost:
		ts.fail(w, http.StatusBadRequest)
		return
	case tr.HasAuth:
		if p, ok := ts.users[tr.User]; !ok || p != tr.Pass {
			ts.fail(w, http.StatusUnauthorized)
			return
		}
		user = tr.User
	case ts.noAnonymous:
		ts.fail(w, http.StatusUnauthorized)
		return
	}

	ts.n++
	tok := fmt.Sprintf("tok-%d", ts.n)
	grant := map[string]bool{}
	for _, s := range scopes {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			continue
		}
		for _, a := range strings.Split(s[i+1:], ",") {
			grant[s[:i]+":"+a] = true
		}
	}
	ts.grants[tok] = grant
	resp := map[string]any{}
	if ts.useAccessToken {
		resp["access_token"] = tok
	} else {
		resp["token"] = tok
	}
	if ts.expiresIn != 0 {
		resp["expires_in"] = ts.expiresIn
	}
	if ts.issueRefresh && r.Method == http.MethodPost && user != "" {
		rt := fmt.Sprintf("refresh-%d", ts.n)
		ts.refresh[rt] = user
		resp["refresh_token"] = rt
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// allows reports whether tok grants action on repo.
func (ts *tokenServer) allows(tok, repo, action string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.grants[tok]["repository:"+repo+":"+action]
}

// revoke makes the registry reject tok as invalid.
func (ts *tokenServer) revoke(tok string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.grants, tok)
}

// registry is a token-protected registry: requests under /v2/<repo>/ need
// a token granting pull (GET, HEAD) or push (other methods) on <repo>.
type registry struct {
	srv *httptest.Server
	ts  *tokenServer

	service string
	// omitScope leaves the scope out of challenges.
	omitScope bool
	// alwaysInsufficient answers every authorized request with
	// insufficient_scope.
	alwaysInsufficient bool
	// onUnauthorized runs after each 401 with the count so far.
	onUnauthorized func(n int)
	// serve answers an authorized request; nil writes "ok".
	serve http.HandlerFunc

	mu     sync.Mutex
	auths  []string // the Authorization header of each request
	bodies []string
	n401   int
}

func newRegistry(t *testing.T, ts *tokenServer) *registry {
	t.Helper()
	reg := &registry{ts: ts, service: "registry.test"}
	reg.srv = httptest.NewServer(http.HandlerFunc(reg.handle))
	t.Cleanup(reg.srv.Close)
	return reg
}

func (reg *registry) host() string { return strings.TrimPrefix(reg.srv.URL, "http://") }

func (reg *registry) seen() []string {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return append([]string(nil), reg.auths...)
}

func (reg *registry) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	reg.mu.Lock()
	reg.auths = append(reg.auths, r.Header.Get("Authorization"))
	reg.bodies = append(reg.bodies, string(body))
	reg.mu.Unlock()

	rest := strings.TrimPrefix(r.URL.Path, "/v2/")
	repo := rest
	for _, sep := range []string{"/manifests/", "/blobs/", "/tags/"} {
		if i := strings.Index(rest, sep); i >= 0 {
			repo = rest[:i]
			break
		}
	}
	action := "pull"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		action = "push"
	}
	scope := "repository:" + repo + ":" + action
	tok, hasTok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	challenge := fmt.Sprintf(`Bearer realm=%q,service=%q`, reg.ts.realm(), reg.service)
	if !reg.omitScope {
		challenge += fmt.Sprintf(`,scope=%q`, scope)
	}
	unauthorized := func(errCode string) {
		if errCode != "" {
			challenge += fmt.Sprintf(`,error=%q`, errCode)
		}
		w.Header().Set("WWW-Authenticate", challenge)
		w.WriteHeader(http.StatusUnauthorized)
		reg.mu.Lock()
		reg.n401++
		n, hook := reg.n401, reg.onUnauthorized
		reg.mu.Unlock()
		if hook != nil {
			hook(n)
		}
	}
	switch {
	case !hasTok:
		unauthorized("")
	case reg.alwaysInsufficient:
		unauthorized("insufficient_scope")
	case !reg.ts.allows(tok, repo, action):
		reg.ts.mu.Lock()
		_, known := reg.ts.grants[tok]
		reg.ts.mu.Unlock()
		if known {
			unauthorized("insufficient_scope")
		} else {
			unauthorized("invalid_token")
		}
	case reg.serve != nil:
		reg.serve(w, r)
	default:
		fmt.Fprint(w, "ok")
	}
}

// basicRegistry demands Basic auth with user and pass and records every
// Authorization header it gets.
type basicRegistry struct {
	srv   *httptest.Server
	mu    sync.Mutex
	auths []string
}

func newBasicRegistry(t *testing.T, user, pass string) *basicRegistry {
	t.Helper()
	br := &basicRegistry{}
	br.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		br.mu.Lock()
		br.auths = append(br.auths, r.Header.Get("Authorization"))
		br.mu.Unlock()
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(br.srv.Close)
	return br
}

func (br *basicRegistry) host() string { return strings.TrimPrefix(br.srv.URL, "http://") }

func (br *basicRegistry) seen() []string {
	br.mu.Lock()
	defer br.mu.Unlock()
	return append([]string(nil), br.auths...)
}
