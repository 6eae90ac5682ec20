package registrytest

import (
	"crypto/subtle"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
)

// identity is who made a registry request.
type identity struct {
	user string // "" for anonymous
	tok  *token // the Bearer token presented, with token auth
}

// token is an access token the token server issued.
type token struct {
	user    string                     // "" for anonymous
	grants  map[string]map[string]bool // repository → actions
	expires time.Time
}

// checkPass reports whether user and pass are the configured credentials.
func (r *Registry) checkPass(user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(r.cfg.user))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(r.cfg.pass))
	return u&p == 1
}

// authorizePing checks the credentials of GET /v2/ and answers 401 when
// they are missing or wrong.
func (r *Registry) authorizePing(w *recorder, req *http.Request) bool {
	switch r.cfg.auth {
	case authBasic:
		if u, p, ok := req.BasicAuth(); ok && r.checkPass(u, p) {
			return true
		}
		r.challenge(w, "", nil, "")
		return false
	case authToken:
		if tok, state := r.bearer(req); state != bearerValid || tok == nil {
			r.challenge(w, "", nil, state.errorParam())
			return false
		}
		return true
	}
	return true
}

// authorize checks that the request may do actions ("pull", "push") on
// repo, and answers 401 or 403 when it may not.
func (r *Registry) authorize(w *recorder, req *http.Request, repo string, actions ...string) (identity, bool) {
	switch r.cfg.auth {
	case authNone:
		if r.denied(repo) {
			r.deny(w, repo, actions)
			return identity{}, false
		}
		return identity{}, true
	case authBasic:
		if u, p, ok := req.BasicAuth(); ok {
			if !r.checkPass(u, p) {
				r.challenge(w, repo, actions, "")
				return identity{}, false
			}
			if r.denied(repo) {
				r.deny(w, repo, actions)
				return identity{}, false
			}
			return identity{user: u}, true
		}
		if r.anonymousMay(repo, actions) {
			return identity{}, true
		}
		r.challenge(w, repo, actions, "")
		return identity{}, false
	default: // authToken
		tok, state := r.bearer(req)
		if state != bearerValid {
			r.challenge(w, repo, actions, state.errorParam())
			return identity{}, false
		}
		id := identity{user: tok.user, tok: tok}
		if r.can(id, repo, actions...) {
			return id, true
		}
		if tok.user != "" && r.denied(repo) {
			r.deny(w, repo, actions)
			return identity{}, false
		}
		r.challenge(w, repo, actions, "insufficient_scope")
		return identity{}, false
	}
}

// anonymousMay reports whether anonymous clients may do actions on repo.
func (r *Registry) anonymousMay(repo string, actions []string) bool {
	for _, a := range actions {
		if a != "pull" {
			return false
		}
	}
	return r.anonymous(repo) && !r.denied(repo)
}

// can reports whether id may do actions on repo: with a token, whether the
// token grants them; otherwise by the registry's policy.
func (r *Registry) can(id identity, repo string, actions ...string) bool {
	if id.tok != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, a := range actions {
			if !id.tok.grants[repo][a] {
				return false
			}
		}
		return true
	}
	return r.allowed(id.user, repo, actions...)
}

// allowed is the registry's policy: whether user ("" for anonymous) may do
// actions on repo.
func (r *Registry) allowed(user, repo string, actions ...string) bool {
	switch {
	case r.denied(repo):
		return false
	case r.cfg.auth == authNone:
		return true
	case user == "":
		return r.anonymousMay(repo, actions)
	}
	return true
}

// challenge answers 401 with the challenge of the registry's auth mode.
// errParam is the Bearer error parameter ("invalid_token",
// "insufficient_scope"), or "".
func (r *Registry) challenge(w *recorder, repo string, actions []string, errParam string) {
	if r.cfg.auth == authToken {
		c := fmt.Sprintf(`Bearer realm=%q,service=%q`, r.TokenURL(), Service)
		if repo != "" {
			c += fmt.Sprintf(`,scope="repository:%s:%s"`, repo, strings.Join(actions, ","))
		}
		if errParam != "" {
			c += fmt.Sprintf(`,error=%q`, errParam)
		}
		w.Header().Set("WWW-Authenticate", c)
	} else {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q`, Service))
	}
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", accessDetail(repo, actions))
}

// deny answers 403 DENIED.
func (r *Registry) deny(w *recorder, repo string, actions []string) {
	writeError(w, http.StatusForbidden, "DENIED", "requested access to the resource is denied", accessDetail(repo, actions))
}

func accessDetail(repo string, actions []string) any {
	if repo == "" {
		return nil
	}
	type access struct {
		Type   string
		Name   string
		Action string
	}
	var out []access
	for _, a := range actions {
		out = append(out, access{"repository", repo, a})
	}
	return out
}

type bearerState int

const (
	bearerMissing bearerState = iota
	bearerInvalid
	bearerValid
)

// errorParam is the Bearer challenge's error parameter for s.
func (s bearerState) errorParam() string {
	if s == bearerInvalid {
		return "invalid_token"
	}
	return ""
}

// bearer finds the request's Bearer token among those issued.
func (r *Registry) bearer(req *http.Request) (*token, bearerState) {
	scheme, tokstr, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, bearerMissing
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tok := r.access[strings.TrimSpace(tokstr)]
	if tok == nil || !time.Now().Before(tok.expires) {
		return nil, bearerInvalid
	}
	return tok, bearerValid
}

// ExpireTokens makes every access token issued so far expired, so that
// clients must fetch new ones (refresh tokens stay valid). It has no
// effect without [WithTokenAuth].
func (r *Registry) ExpireTokens() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, tok := range r.access {
		tok.expires = time.Time{}
	}
}

// scope is one requested "repository:<name>:<actions>" scope.
type scope struct {
	repo    string
	actions []string
}

// parseScopes parses scope parameters; each may hold several scopes
// separated by spaces. Scopes of other resource types are skipped.
func parseScopes(values []string) []scope {
	var out []scope
	for _, v := range values {
		for _, s := range strings.Fields(v) {
			typ, rest, ok := strings.Cut(s, ":")
			i := strings.LastIndex(rest, ":")
			if !ok || typ != "repository" || i <= 0 {
				continue
			}
			out = append(out, scope{repo: rest[:i], actions: strings.Split(rest[i+1:], ",")})
		}
	}
	return out
}

// issue records and returns a new access token for user ("" for anonymous)
// with the scopes the policy allows among those requested.
func (r *Registry) issue(user string, scopes []scope) (string, *token) {
	tok := &token{user: user, grants: map[string]map[string]bool{}, expires: time.Now().Add(r.cfg.tokenTTL)}
	for _, s := range scopes {
		for _, a := range s.actions {
			acts := []string{a}
			if a == "*" {
				acts = []string{"pull", "push"}
			}
			for _, a := range acts {
				if (a == "pull" || a == "push") && r.allowed(user, s.repo, a) {
					if tok.grants[s.repo] == nil {
						tok.grants[s.repo] = map[string]bool{}
					}
					tok.grants[s.repo][a] = true
				}
			}
		}
	}
	id := randomHex(24)
	r.mu.Lock()
	r.access[id] = tok
	r.mu.Unlock()
	return id, tok
}

// grantedScope formats a token's grants as an OAuth2 scope.
func grantedScope(tok *token) string {
	var parts []string
	for _, repo := range sortedKeys(tok.grants) {
		parts = append(parts, "repository:"+repo+":"+strings.Join(sortedKeys(tok.grants[repo]), ","))
	}
	return strings.Join(parts, " ")
}

// tokenResponse is the token server's answer, in the shape of both the
// Docker token protocol (token) and OAuth2 (access_token).
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

func (r *Registry) respondToken(w *recorder, user string, scopes []scope, refresh string) {
	id, tok := r.issue(user, scopes)
	writeJSON(w, http.StatusOK, tokenResponse{
		Token:        id,
		AccessToken:  id,
		ExpiresIn:    int64((r.cfg.tokenTTL + time.Second - 1) / time.Second),
		IssuedAt:     time.Now().UTC().Format(time.RFC3339),
		Scope:        grantedScope(tok),
		RefreshToken: refresh,
	})
}

// serveToken is the token server's handler, at /token.
func (r *Registry) serveToken(w http.ResponseWriter, req *http.Request) {
	rw := r.begin(ServerToken, w, req)
	if r.answerFault(rw, target{server: ServerToken, method: req.Method, path: req.URL.Path}) {
		return
	}
	if req.URL.Path != "/token" {
		writeJSON(rw, http.StatusNotFound, oauthError{"not_found", "no such endpoint"})
		return
	}
	switch req.Method {
	case http.MethodGet:
		r.tokenGET(rw, req)
	case http.MethodPost:
		r.tokenPOST(rw, req)
	default:
		rw.Header().Set("Allow", "GET, POST")
		writeJSON(rw, http.StatusMethodNotAllowed, oauthError{"invalid_request", "use GET or POST"})
	}
}

// oauthError is an OAuth2 error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// tokenGET implements the Docker token protocol: GET with Basic
// credentials, or none for anonymous access.
func (r *Registry) tokenGET(w *recorder, req *http.Request) {
	q := req.URL.Query()
	if q.Get("service") != Service {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", fmt.Sprintf("service must be %q", Service)})
		return
	}
	user := ""
	if req.Header.Get("Authorization") != "" {
		u, p, ok := req.BasicAuth()
		if !ok || !r.checkPass(u, p) {
			writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_grant", "incorrect username or password"})
			return
		}
		user = u
	}
	refresh := ""
	if user != "" && q.Get("offline_token") == "true" {
		refresh = r.newRefresh(user)
	}
	r.respondToken(w, user, parseScopes(q["scope"]), refresh)
}

// tokenPOST implements OAuth2 token requests: grant_type password or
// refresh_token, in a form.
func (r *Registry) tokenPOST(w *recorder, req *http.Request) {
	if r.cfg.tokenPOSTStatus != 0 {
		writeJSON(w, r.cfg.tokenPOSTStatus, oauthError{"unsupported", "POST is not served here"})
		return
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	req.Body = http.MaxBytesReader(w, req.Body, 1<<20)
	if mt != "application/x-www-form-urlencoded" || req.ParseForm() != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "expected an application/x-www-form-urlencoded form"})
		return
	}
	f := req.PostForm
	switch {
	case f.Get("service") != Service:
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", fmt.Sprintf("service must be %q", Service)})
		return
	case f.Get("client_id") == "":
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "client_id is required"})
		return
	}
	var user, refresh string
	switch f.Get("grant_type") {
	case "password":
		if !r.checkPass(f.Get("username"), f.Get("password")) {
			writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_grant", "incorrect username or password"})
			return
		}
		user, refresh = f.Get("username"), r.newRefresh(f.Get("username"))
	case "refresh_token":
		refresh = f.Get("refresh_token")
		r.mu.Lock()
		u, ok := r.refresh[refresh]
		r.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_grant", "unknown refresh token"})
			return
		}
		user = u
	default:
		writeJSON(w, http.StatusBadRequest, oauthError{"unsupported_grant_type", "grant_type must be password or refresh_token"})
		return
	}
	r.respondToken(w, user, parseScopes(f["scope"]), refresh)
}

// newRefresh records and returns a new refresh token for user.
func (r *Registry) newRefresh(user string) string {
	rt := randomHex(24)
	r.mu.Lock()
	r.refresh[rt] = user
	r.mu.Unlock()
	return rt
}
