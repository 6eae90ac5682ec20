package auth

import (
	"context"
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

// Token lifetimes.
const (
	// defaultTokenLifetime is assumed when a token server gives no
	// expires_in, as the distribution token specification says.
	defaultTokenLifetime = 60 * time.Second
	// maxRefreshMargin is how long before expiry a token is renewed at
	// most; shorter lifetimes renew at 90% of their life.
	maxRefreshMargin = 10 * time.Second
	// registryTokenLifetime is how long a Credential.RegistryToken is used
	// before the keychain is asked again.
	registryTokenLifetime = 5 * time.Minute
	// maxTokenResponse bounds the body read from a token server.
	maxTokenResponse = 1 << 20
)

// tokenKey identifies a cached token: the registry it is for (scheme and
// host, so that a token never reaches another registry that names the same
// realm), the realm, the service and the canonical scope list.
type tokenKey struct {
	origin, realm, service, scopes string
}

// token is a cached Authorization header value with its lifetime.
type token struct {
	key       tokenKey
	header    string // "Bearer ..."
	scopes    scopeSet
	obtained  time.Time
	refreshAt time.Time
	expires   time.Time
}

// refreshKey identifies a stored OAuth2 refresh token.
type refreshKey struct {
	origin, realm, service, username string
}

// flight is one token request that concurrent callers share. It runs with
// a context detached from any one caller's and is canceled only when every
// caller has given up.
type flight struct {
	done    chan struct{}
	tok     *token
	err     error
	waiters int
	cancel  context.CancelFunc
}

// token returns a usable token for key: the cached one unless it is stale
// (the one the caller just saw rejected, or due for renewal), else a new one
// from a single-flight request.
func (c *Client) token(ctx context.Context, key tokenKey, scopes scopeSet, stale *token) (*token, error) {
	c.mu.Lock()
	if cur := c.tokens[key]; cur != nil && cur != stale && c.now().Before(cur.refreshAt) {
		c.mu.Unlock()
		return cur, nil
	}
	f := c.flights[key]
	if f == nil {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[key] = f
		go func() {
			tok, err := c.fetchToken(fctx, key, scopes)
			cancel()
			c.mu.Lock()
			if c.flights[key] == f {
				delete(c.flights, key)
			}
			if err == nil {
				c.storeTokenLocked(tok)
			}
			f.tok, f.err = tok, err
			c.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel()
			if c.flights[key] == f {
				delete(c.flights, key)
			}
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// storeTokenLocked caches t and drops expired tokens.
func (c *Client) storeTokenLocked(t *token) {
	now := c.now()
	for k, old := range c.tokens {
		if !now.Before(old.expires) {
			delete(c.tokens, k)
		}
	}
	c.tokens[t.key] = t
}

// findTokenLocked returns the most recently obtained cached token for the
// origin, realm and service whose scopes cover want, or nil.
func (c *Client) findTokenLocked(origin, realm, service string, want scopeSet) *token {
	var best *token
	for k, t := range c.tokens {
		if k.origin != origin || k.realm != realm || k.service != service || !t.scopes.covers(want) {
			continue
		}
		if best == nil || t.obtained.After(best.obtained) {
			best = t
		}
	}
	return best
}

// tokenResponse is the body of a token server's answer, for both the
// distribution GET protocol and the OAuth2 POST protocol.
type tokenResponse struct {
	Token        string  `json:"token"`
	AccessToken  string  `json:"access_token"`
	ExpiresIn    float64 `json:"expires_in"`
	RefreshToken string  `json:"refresh_token"`
}

// fetchToken asks the realm of key for a token, with the credentials the
// keychain has for the registry.
func (c *Client) fetchToken(ctx context.Context, key tokenKey, scopes scopeSet) (*token, error) {
	host := strings.TrimPrefix(strings.TrimPrefix(key.origin, "https://"), "http://")
	cred, err := c.keychain.Resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("auth: credentials for %s: %w", host, err)
	}
	start := c.now()
	if cred.RegistryToken != "" {
		return &token{
			key:       key,
			header:    "Bearer " + cred.RegistryToken,
			scopes:    scopes,
			obtained:  start,
			refreshAt: start.Add(registryTokenLifetime),
			expires:   start.Add(registryTokenLifetime),
		}, nil
	}
	realm, err := url.Parse(key.realm)
	if err != nil {
		return nil, fmt.Errorf("auth: realm of %s: %w", host, errdefs.ErrInvalidArgument)
	}
	if !cred.IsEmpty() && strings.HasPrefix(key.origin, "https://") && realm.Scheme != "https" {
		return nil, fmt.Errorf("auth: refusing to send credentials for %s to %s over plain http: %w",
			host, httpx.RedactURL(realm), errdefs.ErrPermissionDenied)
	}
	scopeList := scopes.list()
	rk := refreshKey{key.origin, key.realm, key.service, cred.Username}

	var resp *tokenResponse
	c.mu.Lock()
	stored := c.refresh[rk]
	c.mu.Unlock()
	hasPassword := cred.Username != "" || cred.Password != ""
	switch {
	case stored != "" && !cred.IsEmpty():
		resp, err = c.postToken(ctx, realm, key.service, scopeList, url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {stored},
		})
		if err != nil && hasPassword && isStatus(err, http.StatusBadRequest, http.StatusUnauthorized) {
			// The stored refresh token was revoked: start over with the password.
			c.mu.Lock()
			delete(c.refresh, rk)
			c.mu.Unlock()
			resp, err = c.passwordToken(ctx, realm, key.service, scopeList, cred)
		}
	case cred.IdentityToken != "":
		resp, err = c.postToken(ctx, realm, key.service, scopeList, url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {cred.IdentityToken},
		})
	case hasPassword:
		resp, err = c.passwordToken(ctx, realm, key.service, scopeList, cred)
	default:
		resp, err = c.getToken(ctx, realm, key.service, scopeList, nil)
	}
	if err != nil {
		return nil, err
	}
	value := resp.Token
	if value == "" {
		value = resp.AccessToken
	}
	if value == "" {
		return nil, fmt.Errorf("auth: token from %s: response has no token: %w", httpx.RedactURL(realm), errdefs.ErrUnauthenticated)
	}
	if resp.RefreshToken != "" {
		c.mu.Lock()
		c.refresh[rk] = resp.RefreshToken
		c.mu.Unlock()
	}
	lifetime := defaultTokenLifetime
	if resp.ExpiresIn > 0 && resp.ExpiresIn < float64(365*24*time.Hour/time.Second) {
		lifetime = time.Duration(resp.ExpiresIn * float64(time.Second))
	}
	margin := min(maxRefreshMargin, lifetime/10)
	return &token{
		key:       key,
		header:    "Bearer " + value,
		scopes:    scopes,
		obtained:  start,
		refreshAt: start.Add(lifetime - margin),
		expires:   start.Add(lifetime),
	}, nil
}

// passwordToken runs the OAuth2 password grant and, when the server does not
// offer it (400, 401, 404 or 405), the GET protocol with Basic auth.
func (c *Client) passwordToken(ctx context.Context, realm *url.URL, service string, scopes []string, cred Credential) (*tokenResponse, error) {
	resp, err := c.postToken(ctx, realm, service, scopes, url.Values{
		"grant_type":  {"password"},
		"username":    {cred.Username},
		"password":    {cred.Password},
		"access_type": {"offline"},
	})
	if err != nil && isStatus(err, http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusMethodNotAllowed) {
		return c.getToken(ctx, realm, service, scopes, &cred)
	}
	return resp, err
}

// postToken POSTs an OAuth2 token request form to realm.
func (c *Client) postToken(ctx context.Context, realm *url.URL, service string, scopes []string, form url.Values) (*tokenResponse, error) {
	form.Set("client_id", c.clientID)
	if service != "" {
		form.Set("service", service)
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("auth: token from %s: %w", httpx.RedactURL(realm), errdefs.ErrInvalidArgument)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.sendTokenRequest(req, realm)
}

// getToken asks realm for a token with the distribution GET protocol, with
// Basic auth when cred is not nil.
func (c *Client) getToken(ctx context.Context, realm *url.URL, service string, scopes []string, cred *Credential) (*tokenResponse, error) {
	u := *realm
	q := u.Query()
	if service != "" {
		q.Set("service", service)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("auth: token from %s: %w", httpx.RedactURL(realm), errdefs.ErrInvalidArgument)
	}
	if cred != nil {
		req.SetBasicAuth(cred.Username, cred.Password)
	}
	return c.sendTokenRequest(req, realm)
}

// sendTokenRequest sends a token request and decodes the answer. Errors
// name the realm and the status only.
func (c *Client) sendTokenRequest(req *http.Request, realm *url.URL) (*tokenResponse, error) {
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("auth: token from %s: %w", httpx.RedactURL(realm), ctxErr)
		}
		// Transport errors quote the URL, which may carry scopes but never
		// credentials: passwords travel in the body or in a header.
		return nil, fmt.Errorf("auth: token from %s: %w: %w", httpx.RedactURL(realm), errdefs.ErrUnavailable, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxTokenResponse)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error  string `json:"error"`
			Errors []struct {
				Code string `json:"code"`
			} `json:"errors"`
		}
		b, _ := io.ReadAll(body)
		_ = json.Unmarshal(b, &e)
		code := e.Error
		if code == "" && len(e.Errors) > 0 {
			code = e.Errors[0].Code
		}
		return nil, &ResponseError{
			URL:        httpx.RedactURL(realm),
			StatusCode: resp.StatusCode,
			Code:       safeCode(code),
			RetryAfter: retryWait(resp.Header, c.now()),
		}
	}
	var tr tokenResponse
	if err := json.NewDecoder(body).Decode(&tr); err != nil {
		return nil, fmt.Errorf("auth: token from %s: malformed response: %w", httpx.RedactURL(realm), errdefs.ErrUnauthenticated)
	}
	return &tr, nil
}

// unwrapURLError drops the *url.Error wrapper (whose text repeats the full
// URL) and keeps the cause.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// isStatus reports whether err is a *ResponseError with one of codes.
func isStatus(err error, codes ...int) bool {
	var re *ResponseError
	if !errors.As(err, &re) {
		return false
	}
	for _, c := range codes {
		if re.StatusCode == c {
			return true
		}
	}
	return false
}

// retryWait is the wait a Retry-After header asks for, or 0.
func retryWait(h http.Header, now time.Time) time.Duration {
	d, _ := httpx.RetryAfter(h, now)
	return d
}
