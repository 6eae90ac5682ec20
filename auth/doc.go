// Package auth authenticates requests to OCI and Docker registries.
//
// # Credentials
//
// A [Keychain] gives the [Credential] for one registry host; the zero
// Credential means anonymous. Sources:
//
//   - [Static] binds one credential to one host.
//   - [FromAuthConfig] takes the CRI [AuthConfig] that kubelet sends, bound
//     to its ServerAddress or else to the image's host.
//   - [DockerConfig] and [LoadDockerConfig] read a docker CLI config.json:
//     "auths", "credHelpers" and "credsStore", whose helpers run as
//     `docker-credential-<name> get`.
//   - [Chain] asks several keychains in order; [Anonymous] has nothing.
//
// Host names are compared with [CanonicalHost]: no scheme or path, lower
// case, and Docker Hub's aliases (docker.io, index.docker.io,
// registry-1.docker.io, https://index.docker.io/v1/) as one.
//
// # Challenges and tokens
//
// [ParseChallenges] reads WWW-Authenticate headers. [Client] answers Bearer
// challenges with tokens (the OAuth2 POST protocol with a password or a
// refresh token, falling back to the distribution GET protocol with Basic
// auth, or an anonymous GET) and Basic challenges with the credentials.
// Tokens are cached by registry, realm, service and scopes, shared by
// concurrent requests (one token request for any number of waiters),
// renewed before they expire, and sent with later requests without waiting
// for a 401. A 401 is answered once per request: an expired token or an
// insufficient_scope error leads to one new token and one retry, never a
// loop.
//
// # Scopes
//
// A registry's challenge may not name the repository a request is for, so
// callers say it with the request's context:
//
//	ctx = auth.WithScopes(ctx, auth.RepositoryScope("library/alpine", auth.ActionPull))
//	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
//	resp, err := client.Do(req)
//
// # Safety
//
// Credentials go only to the host the keychain gave them for and to the
// token realm that host's challenge names; over https they never go to a
// plain-http realm. [Client] follows redirects itself and sends no
// Authorization header to another scheme, host or port, such as a blob CDN.
// Nothing in this package logs, and errors name hosts, URLs without their
// query, and statuses, never credentials or tokens. Errors are classified
// with github.com/containerd/errdefs: a token server's 401 is
// errdefs.ErrUnauthenticated, 403 errdefs.ErrPermissionDenied, 429 and 5xx
// errdefs.ErrUnavailable (see [ResponseError]).
package auth
