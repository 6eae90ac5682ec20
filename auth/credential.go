package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// Credential is what a [Keychain] returns for one registry host.
//
// The zero Credential means anonymous access. Username and Password are
// used for Basic auth and for the OAuth2 password grant; IdentityToken is
// an OAuth2 refresh token (what `docker login` stores for some registries);
// RegistryToken is a bearer token sent to the registry as is, without asking
// a token server. Formatting a Credential with the fmt package never prints
// the secrets.
type Credential struct {
	Username      string
	Password      string
	IdentityToken string
	RegistryToken string
}

// IsEmpty reports whether c carries no credentials at all (anonymous).
func (c Credential) IsEmpty() bool {
	return c == Credential{}
}

// String describes c without its secrets, so that a Credential that ends up
// in a log line or an error message leaks nothing but the user name.
func (c Credential) String() string {
	var b strings.Builder
	b.WriteString("auth.Credential{")
	if c.Username != "" {
		fmt.Fprintf(&b, "Username: %q", c.Username)
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"Password", c.Password != ""},
		{"IdentityToken", c.IdentityToken != ""},
		{"RegistryToken", c.RegistryToken != ""},
	} {
		if !f.set {
			continue
		}
		if b.Len() > len("auth.Credential{") {
			b.WriteString(", ")
		}
		b.WriteString(f.name + ": <redacted>")
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String, so that %#v redacts the secrets too.
func (c Credential) GoString() string { return c.String() }

// Keychain finds the credentials for a registry host.
//
// host is a host name with an optional port ("ghcr.io", "localhost:5000"),
// lower case, without scheme or path. Docker Hub's names ("docker.io",
// "index.docker.io", "registry-1.docker.io") are equivalent. Resolve returns
// the zero Credential, not an error, when it has nothing for host; an error
// means a real failure (an unreadable config, a credential helper that
// crashed). Implementations must be safe for concurrent use.
type Keychain interface {
	Resolve(ctx context.Context, host string) (Credential, error)
}

// KeychainFunc adapts a function to a [Keychain].
type KeychainFunc func(ctx context.Context, host string) (Credential, error)

// Resolve calls f(ctx, host).
func (f KeychainFunc) Resolve(ctx context.Context, host string) (Credential, error) {
	return f(ctx, host)
}

// Anonymous is the Keychain that has no credentials for any host.
var Anonymous Keychain = KeychainFunc(func(context.Context, string) (Credential, error) {
	return Credential{}, nil
})

// Static returns a Keychain that gives cred for host and nothing for any
// other host. host may carry a scheme and a path ("https://ghcr.io/v2/"),
// which are ignored; Docker Hub's aliases all match one another. An empty
// host matches no host.
func Static(host string, cred Credential) KeychainFunc {
	want := CanonicalHost(host)
	return KeychainFunc(func(_ context.Context, host string) (Credential, error) {
		if want == "" || CanonicalHost(host) != want {
			return Credential{}, nil
		}
		return cred, nil
	})
}

// Chain returns a Keychain that asks each keychain in order and returns the
// first non-empty Credential. An error from any keychain stops the search
// and is returned. Nil keychains are skipped; an empty chain is anonymous.
func Chain(keychains ...Keychain) KeychainFunc {
	ks := make([]Keychain, 0, len(keychains))
	for _, k := range keychains {
		if k != nil {
			ks = append(ks, k)
		}
	}
	return KeychainFunc(func(ctx context.Context, host string) (Credential, error) {
		for _, k := range ks {
			cred, err := k.Resolve(ctx, host)
			if err != nil {
				return Credential{}, err
			}
			if !cred.IsEmpty() {
				return cred, nil
			}
		}
		return Credential{}, nil
	})
}

// AuthConfig is the credential message of the CRI image service
// (runtime.v1.AuthConfig), as kubelet sends it with a PullImage request.
//
// Username and Password, when Username is set, take precedence over Auth,
// which is base64("user:password"). ServerAddress names the registry the
// credentials belong to, with or without a scheme and path.
type AuthConfig struct {
	Username      string
	Password      string
	Auth          string
	ServerAddress string
	IdentityToken string
	RegistryToken string
}

// FromAuthConfig returns a Keychain that gives the credentials in ac to one
// host only: ac.ServerAddress when it is set, otherwise imageHost (the
// registry host of the image being pulled). Every other host, and every host
// when both are empty, gets anonymous access. A malformed ac.Auth is reported
// by Resolve for the bound host as an errdefs.ErrInvalidArgument error that
// does not contain the field's value.
func FromAuthConfig(ac AuthConfig, imageHost string) KeychainFunc {
	bound := CanonicalHost(ac.ServerAddress)
	if bound == "" {
		bound = CanonicalHost(imageHost)
	}
	cred := Credential{
		Username:      ac.Username,
		Password:      ac.Password,
		IdentityToken: ac.IdentityToken,
		RegistryToken: ac.RegistryToken,
	}
	var decodeErr error
	if ac.Username == "" && ac.Auth != "" {
		cred.Username, cred.Password, decodeErr = decodeAuth(ac.Auth)
	}
	return KeychainFunc(func(_ context.Context, host string) (Credential, error) {
		if bound == "" || CanonicalHost(host) != bound {
			return Credential{}, nil
		}
		if decodeErr != nil {
			return Credential{}, fmt.Errorf("auth: credentials for %s: %w", bound, decodeErr)
		}
		return cred, nil
	})
}

// decodeAuth decodes the base64 "user:password" of an auth field. Trailing
// NUL bytes (left by some encoders) are trimmed. Errors never include the
// field's value.
func decodeAuth(s string) (user, pass string, err error) {
	s = strings.TrimSpace(s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	if err != nil {
		return "", "", fmt.Errorf("auth field is not valid base64: %w", errdefs.ErrInvalidArgument)
	}
	b = bytes.TrimRight(b, "\x00")
	u, p, ok := bytes.Cut(b, []byte{':'})
	if !ok || len(u) == 0 {
		return "", "", fmt.Errorf("auth field is not base64 of user:password: %w", errdefs.ErrInvalidArgument)
	}
	return string(u), string(p), nil
}

// DockerHub is the canonical name CanonicalHost gives Docker Hub.
const DockerHub = "docker.io"

// CanonicalHost reduces a registry address to the host name a [Keychain]
// is asked about: the scheme, user info, path, query and any trailing dot
// are dropped, the rest is lower-cased, and Docker Hub's aliases
// ("docker.io", "index.docker.io", "registry-1.docker.io",
// "registry.hub.docker.com", "https://index.docker.io/v1/") become
// [DockerHub]. A port is kept as given. An empty or blank address gives "".
func CanonicalHost(addr string) string {
	s := strings.TrimSpace(addr)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.ToLower(s)
	s = strings.TrimSuffix(s, ".")
	switch s {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return DockerHub
	}
	return s
}
