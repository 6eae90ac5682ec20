package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/internal/httpx"
)

// Doer sends an HTTP request and returns its response, as *http.Client
// and *Client do.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

var (
	_ Doer = (*Client)(nil)
	_ Doer = (*http.Client)(nil)
)

// maxRedirects is how many redirects Client follows when the HTTP client it
// was given has no CheckRedirect policy of its own (the net/http default).
const maxRedirects = 10

// Client sends registry requests and answers their authentication
// challenges. It is safe for concurrent use, and meant to be shared: its
// token cache lives as long as it does.
//
// For each request, Client asks its [Keychain] for the credentials of the
// request's host (and that host only), answers a 401 with a Bearer or Basic
// challenge once, and sends the request again. Tokens are cached by
// registry, realm, service and scopes, fetched once for any number of
// concurrent requests, renewed shortly before they expire, and sent with
// later requests to the same registry without waiting for a 401.
//
// Client follows redirects itself. Authorization, Cookie and
// WWW-Authenticate headers, ours and the caller's, are sent only to the
// scheme, host and port of the original request: never to a blob CDN on
// another host, nor to another port of the same host (which net/http's own
// redirect policy would allow).
type Client struct {
	http          *http.Client // a copy of the caller's, redirects off
	checkRedirect func(*http.Request, []*http.Request) error
	keychain      Keychain
	userAgent     string
	clientID      string
	scopes        []string
	now           func() time.Time

	mu      sync.Mutex
	hosts   map[string]*hostAuth // by origin
	tokens  map[tokenKey]*token
	flights map[tokenKey]*flight
	refresh map[refreshKey]string
}

// hostAuth is what Client learned about a registry from its last challenge.
type hostAuth struct {
	scheme         string // SchemeBearer or SchemeBasic
	realm, service string // bearer
	basic          string // basic: the Authorization header value
}

// Option configures a [Client].
type Option func(*clientConfig)

type clientConfig struct {
	httpClient *http.Client
	keychain   Keychain
	userAgent  string
	clientID   string
	scopes     []string
}

// WithKeychain sets where credentials come from. The default, and nil, is
// [Anonymous]: challenges are answered with anonymous tokens only.
func WithKeychain(k Keychain) Option {
	return func(c *clientConfig) { c.keychain = k }
}

// WithHTTPClient sets the HTTP client that sends requests, to registries
// and to token servers alike. The default, and nil, is http.DefaultClient.
// Its Transport, Jar and Timeout are used as they are (Timeout applies to
// each request of a redirect chain); its CheckRedirect, if set, is consulted
// before each redirect, as net/http would, but Client follows redirects
// itself so that credentials never leave their host.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *clientConfig) { c.httpClient = hc }
}

// WithUserAgent sets the User-Agent sent to token servers and to registries
// when a request has none. The default is "pullkit"; "" keeps the default.
func WithUserAgent(ua string) Option {
	return func(c *clientConfig) { c.userAgent = ua }
}

// WithClientID sets the OAuth2 client_id sent to token servers. The default
// is "pullkit"; "" keeps the default.
func WithClientID(id string) Option {
	return func(c *clientConfig) { c.clientID = id }
}

// WithDefaultScopes adds scopes (see [RepositoryScope]) to the token
// requests of every request the Client sends, in addition to those of the
// request's context ([WithScopes]) and of the registry's challenge. The
// default is none.
func WithDefaultScopes(scopes ...string) Option {
	return func(c *clientConfig) { c.scopes = append(c.scopes, scopes...) }
}

// NewClient returns a Client configured by opts.
func NewClient(opts ...Option) *Client {
	cfg := clientConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.httpClient == nil {
		cfg.httpClient = http.DefaultClient
	}
	if cfg.keychain == nil {
		cfg.keychain = Anonymous
	}
	if cfg.userAgent == "" {
		cfg.userAgent = "pullkit"
	}
	if cfg.clientID == "" {
		cfg.clientID = "pullkit"
	}
	hc := *cfg.httpClient
	c := &Client{
		http:          &hc,
		checkRedirect: hc.CheckRedirect,
		keychain:      cfg.keychain,
		userAgent:     cfg.userAgent,
		clientID:      cfg.clientID,
		scopes:        cfg.scopes,
		now:           time.Now,
		hosts:         map[string]*hostAuth{},
		tokens:        map[tokenKey]*token{},
		flights:       map[tokenKey]*flight{},
		refresh:       map[refreshKey]string{},
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// Do sends req and returns the response, answering at most one
// authentication challenge and following redirects.
//
// The token scopes come from the registry's challenge, from
// [WithScopes] on req's context and from [WithDefaultScopes]. A request
// that already has an Authorization header is sent as it is, and its 401 is
// returned to the caller. When a challenge is answered, a request with a
// body is sent again only if req.GetBody is set (as http.NewRequest does for
// in-memory bodies); otherwise Do fails with errdefs.ErrFailedPrecondition
// (the token is cached, so the caller's own retry is authorized).
//
// Like http.Client.Do, Do returns a response for any status, including a
// 401 it could not answer; an error means the request could not be sent or
// a token could not be obtained (a *ResponseError for a token server's
// status; transport errors are *url.Error with the URL's query left out).
// The caller closes the response body. Do does not modify req.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if req == nil || req.URL == nil || req.URL.Host == "" {
		return nil, fmt.Errorf("auth: request has no URL host: %w", errdefs.ErrInvalidArgument)
	}
	ctx := req.Context()
	origin := originOf(req.URL)
	host := hostOf(req.URL)
	want := scopeSet{}
	want.add(c.scopes...)
	want.add(ScopesFromContext(ctx)...)
	callerAuth := req.Header.Get("Authorization") != ""

	hop := req
	fresh := true // hop.Body has not been sent yet
	retried := false
	forced := ""
	via := []*http.Request{}
	for {
		out := hop.Clone(ctx)
		if !fresh && hasBody(hop) {
			b, err := hop.GetBody()
			if err != nil {
				return nil, fmt.Errorf("auth: %s %s: rewind body: %w", hop.Method, httpx.RedactURL(hop.URL), err)
			}
			out.Body = b
		}
		fresh = false

		sameOrigin := originOf(hop.URL) == origin
		var sent string
		var used *token
		switch {
		case !sameOrigin:
			stripSensitive(out.Header)
		case callerAuth:
		case forced != "":
			sent, forced = forced, ""
		default:
			sent, used = c.authorize(ctx, origin, want)
		}
		if sent != "" {
			out.Header.Set("Authorization", sent)
		}
		if out.Header.Get("User-Agent") == "" {
			out.Header.Set("User-Agent", c.userAgent)
		}

		resp, err := c.http.Do(out)
		if err != nil {
			return nil, redactURLError(err, hop.URL)
		}

		if resp.StatusCode == http.StatusUnauthorized && sameOrigin && !callerAuth && !retried {
			retried = true
			next, err := c.answer(ctx, origin, host, resp, want, sent, used)
			if err != nil {
				discard(resp)
				return nil, err
			}
			if next == "" {
				return resp, nil
			}
			if hasBody(hop) && hop.GetBody == nil {
				discard(resp)
				return nil, fmt.Errorf("auth: %s %s: cannot send the request again after a 401 without Request.GetBody: %w",
					hop.Method, httpx.RedactURL(hop.URL), errdefs.ErrFailedPrecondition)
			}
			discard(resp)
			forced = next
			continue
		}

		via = append(via, hop)
		nextHop, err := c.redirect(ctx, hop, resp, origin, via)
		if err != nil {
			discard(resp)
			return nil, err
		}
		if nextHop == nil {
			return resp, nil
		}
		discard(resp)
		hop, fresh = nextHop, true
	}
}

// authorize returns the Authorization value to send to origin before any
// challenge: the Basic credentials or the cached token learned earlier,
// renewed first when due. It returns "" when it has nothing.
func (c *Client) authorize(ctx context.Context, origin string, want scopeSet) (string, *token) {
	c.mu.Lock()
	ha := c.hosts[origin]
	if ha == nil {
		c.mu.Unlock()
		return "", nil
	}
	if ha.scheme == SchemeBasic {
		c.mu.Unlock()
		return ha.basic, nil
	}
	t := c.findTokenLocked(origin, ha.realm, ha.service, want)
	now := c.now()
	c.mu.Unlock()
	if t == nil {
		return "", nil
	}
	if now.Before(t.refreshAt) {
		return t.header, t
	}
	if nt, err := c.token(ctx, t.key, t.scopes, t); err == nil {
		return nt.header, nt
	}
	if now.Before(t.expires) {
		return t.header, t
	}
	return "", nil
}

// answer handles a 401 from origin: it returns the Authorization value to
// send the request again with, or "" when the challenge cannot be answered
// or the answer would be what was already sent.
func (c *Client) answer(ctx context.Context, origin, host string, resp *http.Response, want scopeSet, sent string, used *token) (string, error) {
	var bearer, basic *Challenge
	challenges := ParseChallenges(resp.Header)
	for i := range challenges {
		switch ch := &challenges[i]; ch.Scheme {
		case SchemeBearer:
			if bearer == nil {
				bearer = ch
			}
		case SchemeBasic:
			if basic == nil {
				basic = ch
			}
		}
	}
	switch {
	case bearer != nil:
		return c.answerBearer(ctx, origin, host, *bearer, want, sent, used)
	case basic != nil:
		return c.answerBasic(ctx, origin, host, sent)
	}
	return "", nil
}

func (c *Client) answerBearer(ctx context.Context, origin, host string, ch Challenge, want scopeSet, sent string, used *token) (string, error) {
	realm, err := url.Parse(ch.Parameters["realm"])
	if err != nil || (realm.Scheme != "http" && realm.Scheme != "https") || realm.Host == "" {
		return "", fmt.Errorf("auth: %s: bearer challenge without a usable realm: %w", host, errdefs.ErrUnauthenticated)
	}
	service := ch.Parameters["service"]
	scopes := scopeSet{}
	for resource, actions := range want {
		m := map[string]bool{}
		for a := range actions {
			m[a] = true
		}
		scopes[resource] = m
	}
	scopes.add(ch.Parameters["scope"])
	key := tokenKey{origin: origin, realm: realm.String(), service: service, scopes: strings.Join(scopes.list(), " ")}

	c.mu.Lock()
	c.hosts[origin] = &hostAuth{scheme: SchemeBearer, realm: key.realm, service: service}
	if used != nil && ch.Parameters["error"] != "insufficient_scope" && c.tokens[used.key] == used {
		// Expired or revoked: drop it so no request sends it again.
		delete(c.tokens, used.key)
	}
	c.mu.Unlock()

	t, err := c.token(ctx, key, scopes, used)
	if err != nil {
		return "", err
	}
	if t.header == sent {
		return "", nil
	}
	return t.header, nil
}

func (c *Client) answerBasic(ctx context.Context, origin, host, sent string) (string, error) {
	cred, err := c.keychain.Resolve(ctx, host)
	if err != nil {
		return "", fmt.Errorf("auth: credentials for %s: %w", host, err)
	}
	if cred.Username == "" && cred.Password == "" {
		return "", nil
	}
	value := "Basic " + base64.StdEncoding.EncodeToString([]byte(cred.Username+":"+cred.Password))
	c.mu.Lock()
	c.hosts[origin] = &hostAuth{scheme: SchemeBasic, basic: value}
	c.mu.Unlock()
	if value == sent {
		return "", nil
	}
	return value, nil
}

// redirect returns the request for the redirect resp asks for, or nil when
// resp is not a redirect Client follows. via lists the requests sent so far,
// oldest first, hop included.
func (c *Client) redirect(ctx context.Context, hop *http.Request, resp *http.Response, origin string, via []*http.Request) (*http.Request, error) {
	method, withBody := hop.Method, false
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther:
		if method != http.MethodGet && method != http.MethodHead {
			method = http.MethodGet
		}
	case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		withBody = hasBody(hop)
		if withBody && hop.GetBody == nil {
			return nil, nil // cannot replay the body: hand the redirect to the caller
		}
	default:
		return nil, nil
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, nil
	}
	u, err := hop.URL.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("auth: %s %s: redirect to a malformed Location: %w", hop.Method, httpx.RedactURL(hop.URL), errdefs.ErrInvalidArgument)
	}
	next, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("auth: %s %s: redirect: %w", hop.Method, httpx.RedactURL(hop.URL), errdefs.ErrInvalidArgument)
	}
	next.Header = hop.Header.Clone()
	if next.Header == nil {
		next.Header = http.Header{}
	}
	if withBody {
		body, err := hop.GetBody()
		if err != nil {
			return nil, fmt.Errorf("auth: %s %s: rewind body: %w", hop.Method, httpx.RedactURL(hop.URL), err)
		}
		next.Body, next.GetBody, next.ContentLength = body, hop.GetBody, hop.ContentLength
	} else {
		for _, h := range []string{"Content-Type", "Content-Encoding", "Content-Language", "Content-Location"} {
			next.Header.Del(h)
		}
	}
	if originOf(u) != origin {
		stripSensitive(next.Header)
	}

	if c.checkRedirect != nil {
		err := c.checkRedirect(next, via)
		if next.Body != nil {
			next.Body.Close()
		}
		if errors.Is(err, http.ErrUseLastResponse) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("auth: %s %s: redirect: %w", hop.Method, httpx.RedactURL(hop.URL), err)
		}
		if withBody {
			// The policy may have read the body; start from a fresh one.
			next.Body, _ = hop.GetBody()
		}
	} else if len(via) >= maxRedirects {
		if next.Body != nil {
			next.Body.Close()
		}
		return nil, fmt.Errorf("auth: %s %s: stopped after %d redirects: %w", hop.Method, httpx.RedactURL(hop.URL), maxRedirects, errdefs.ErrUnavailable)
	}
	return next, nil
}

// redactURLError replaces the URL in a *url.Error, which net/http quotes
// with its query (a CDN's signature, say), by u without query.
func redactURLError(err error, u *url.URL) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: httpx.RedactURL(u), Err: ue.Err}
	}
	return err
}

// stripSensitive deletes the headers that must not leave their origin.
func stripSensitive(h http.Header) {
	for _, k := range []string{"Authorization", "Www-Authenticate", "Cookie", "Cookie2"} {
		h.Del(k)
	}
}

func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody
}

// discard drains a little of an unused response body, so the connection
// can be reused, and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// hostOf returns the host a keychain is asked about for u: lower case,
// without the scheme's default port.
func hostOf(u *url.URL) string {
	h, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		return net.JoinHostPort(h, port)
	}
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// originOf returns scheme://host of u, the unit credentials are bound to.
func originOf(u *url.URL) string {
	return strings.ToLower(u.Scheme) + "://" + hostOf(u)
}
