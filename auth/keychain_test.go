package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/auth"
)

func TestCanonicalHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ghcr.io", "ghcr.io"},
		{"GHCR.io", "ghcr.io"},
		{"https://ghcr.io/v2/", "ghcr.io"},
		{"http://localhost:5000", "localhost:5000"},
		{"user@registry.example.com:443/path?q#f", "registry.example.com:443"},
		{"registry.example.com.", "registry.example.com"},
		{"docker.io", auth.DockerHub},
		{"index.docker.io", auth.DockerHub},
		{"registry-1.docker.io", auth.DockerHub},
		{"https://index.docker.io/v1/", auth.DockerHub},
		{"registry.hub.docker.com", auth.DockerHub},
		{"  ", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := auth.CanonicalHost(tt.in); got != tt.want {
			t.Errorf("CanonicalHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStatic(t *testing.T) {
	cred := auth.Credential{Username: "u", Password: "p"}
	kc := auth.Static("https://index.docker.io/v1/", cred)
	for host, want := range map[string]auth.Credential{
		"registry-1.docker.io": cred,
		"docker.io":            cred,
		"ghcr.io":              {},
	} {
		got, err := kc.Resolve(t.Context(), host)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %v, %v; want %v", host, got, err, want)
		}
	}
	if got, _ := auth.Static("", cred).Resolve(t.Context(), ""); !got.IsEmpty() {
		t.Errorf("Static(\"\") resolved %v for the empty host", got)
	}
}

func TestChain(t *testing.T) {
	a := auth.Static("a.example", auth.Credential{Username: "a1"})
	a2 := auth.Static("a.example", auth.Credential{Username: "a2"})
	b := auth.Static("b.example", auth.Credential{Username: "b"})
	boom := errors.New("boom")
	failing := auth.KeychainFunc(func(context.Context, string) (auth.Credential, error) { return auth.Credential{}, boom })

	tests := []struct {
		name    string
		kc      auth.Keychain
		host    string
		want    string
		wantErr error
	}{
		{"first wins", auth.Chain(a, a2), "a.example", "a1", nil},
		{"falls through", auth.Chain(b, nil, a2), "a.example", "a2", nil},
		{"none", auth.Chain(a, b), "c.example", "", nil},
		{"empty chain", auth.Chain(), "a.example", "", nil},
		{"error stops", auth.Chain(failing, a), "a.example", "", boom},
		{"found before error", auth.Chain(a, failing), "a.example", "a1", nil},
		{"anonymous", auth.Anonymous, "a.example", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.kc.Resolve(t.Context(), tt.host)
			if !errors.Is(err, tt.wantErr) || got.Username != tt.want {
				t.Fatalf("Resolve() = %v, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFromAuthConfig(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	up := auth.Credential{Username: "user", Password: "pa:ss"}
	tests := []struct {
		name      string
		ac        auth.AuthConfig
		imageHost string
		host      string
		want      auth.Credential
		wantErr   error
	}{
		{"username and password", auth.AuthConfig{Username: "user", Password: "pa:ss", ServerAddress: "reg.example"}, "", "reg.example", up, nil},
		{"auth field", auth.AuthConfig{Auth: b64("user:pa:ss"), ServerAddress: "reg.example"}, "", "reg.example", up, nil},
		{"auth field with trailing NULs", auth.AuthConfig{Auth: b64("user:pa:ss\x00\x00"), ServerAddress: "reg.example"}, "", "reg.example", up, nil},
		{"auth field without padding", auth.AuthConfig{Auth: strings.TrimRight(b64("user:pa:ss"), "="), ServerAddress: "reg.example"}, "", "reg.example", up, nil},
		{"username wins over auth", auth.AuthConfig{Username: "user", Password: "pa:ss", Auth: b64("other:x"), ServerAddress: "reg.example"}, "", "reg.example", up, nil},
		{"server address with scheme and path", auth.AuthConfig{Username: "user", Password: "pa:ss", ServerAddress: "https://reg.example/v2/"}, "", "reg.example", up, nil},
		{"docker hub alias", auth.AuthConfig{Username: "user", Password: "pa:ss", ServerAddress: "https://index.docker.io/v1/"}, "", "registry-1.docker.io", up, nil},
		{"bound to the image host", auth.AuthConfig{Username: "user", Password: "pa:ss"}, "reg.example", "reg.example", up, nil},
		{"not for another host", auth.AuthConfig{Username: "user", Password: "pa:ss"}, "reg.example", "evil.example", auth.Credential{}, nil},
		{"server address beats image host", auth.AuthConfig{Username: "user", Password: "pa:ss", ServerAddress: "other.example"}, "reg.example", "reg.example", auth.Credential{}, nil},
		{"bound to nothing", auth.AuthConfig{Username: "user", Password: "pa:ss"}, "", "reg.example", auth.Credential{}, nil},
		{"tokens", auth.AuthConfig{IdentityToken: "id", RegistryToken: "rt", ServerAddress: "reg.example"}, "", "reg.example", auth.Credential{IdentityToken: "id", RegistryToken: "rt"}, nil},
		{"bad base64", auth.AuthConfig{Auth: "!!not-base64-SECRET", ServerAddress: "reg.example"}, "", "reg.example", auth.Credential{}, errdefs.ErrInvalidArgument},
		{"no colon", auth.AuthConfig{Auth: b64("SECRET"), ServerAddress: "reg.example"}, "", "reg.example", auth.Credential{}, errdefs.ErrInvalidArgument},
		{"bad base64 for another host", auth.AuthConfig{Auth: "!!not-base64", ServerAddress: "reg.example"}, "", "other.example", auth.Credential{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.FromAuthConfig(tt.ac, tt.imageHost).Resolve(t.Context(), tt.host)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Resolve(%q) = %v, %v; want %v, %v", tt.host, got, err, tt.want, tt.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), b64("SECRET"))) {
				t.Fatalf("error %q contains the auth field", err)
			}
		})
	}
}

func TestCredentialFormatRedacts(t *testing.T) {
	c := auth.Credential{Username: "me", Password: "PW-SECRET", IdentityToken: "ID-SECRET", RegistryToken: "RT-SECRET"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		s := fmt.Sprintf(verb, c)
		if strings.Contains(s, "SECRET") || !strings.Contains(s, "me") || !strings.Contains(s, "<redacted>") {
			t.Errorf("Sprintf(%s) = %q, want the user name and redacted secrets", verb, s)
		}
	}
	if got := (auth.Credential{}).String(); got != "auth.Credential{}" {
		t.Errorf("zero String() = %q", got)
	}
}

func TestScopes(t *testing.T) {
	if got := auth.RepositoryScope("library/alpine"); got != "repository:library/alpine:pull" {
		t.Errorf("RepositoryScope() = %q", got)
	}
	if got := auth.RepositoryScope("a/b", auth.ActionPull, auth.ActionPush); got != "repository:a/b:pull,push" {
		t.Errorf("RepositoryScope(pull, push) = %q", got)
	}
	ctx := auth.WithScopes(t.Context(), "repository:a:pull", " ")
	ctx = auth.WithScopes(ctx, "repository:b:pull")
	if got := auth.ScopesFromContext(ctx); strings.Join(got, " ") != "repository:a:pull repository:b:pull" {
		t.Errorf("ScopesFromContext() = %q", got)
	}
	if got := auth.ScopesFromContext(t.Context()); got != nil {
		t.Errorf("ScopesFromContext(empty) = %q, want nil", got)
	}
}
