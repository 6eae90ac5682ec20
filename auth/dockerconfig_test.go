package auth_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/auth"
)

// installHelper writes a fake docker-credential-test into a directory put
// first on PATH, and returns the file where it logs the server URLs it is
// asked about.
func installHelper(t *testing.T) (logFile string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake credential helper is a shell script")
	}
	dir := t.TempDir()
	logFile = filepath.Join(dir, "asked.log")
	script := `#!/bin/sh
[ "$1" = get ] || { echo "unexpected command $1"; exit 9; }
url=$(cat)
printf '%s\n' "$url" >> '` + logFile + `'
case "$url" in
https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hubuser","Secret":"hubpass"}' ;;
helper.example) echo '{"ServerURL":"helper.example","Username":"helperuser","Secret":"helperpass"}' ;;
token.example) echo '{"ServerURL":"token.example","Username":"<token>","Secret":"refresh-xyz"}' ;;
garbage.example) echo 'not json' ;;
fail.example) echo "keychain is locked"; exit 3 ;;
*) echo "credentials not found in native keychain"; exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-test"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-other"), []byte("#!/bin/sh\necho '{\"Username\":\"otheruser\",\"Secret\":\"otherpass\"}'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return logFile
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadDockerConfig(t *testing.T) {
	logFile := installHelper(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name    string
		config  string
		host    string
		want    auth.Credential
		wantErr error
		asked   string // the server URL the helper must have been asked about
	}{
		{"auth field", `{"auths":{"reg.example":{"auth":"` + b64("u:p") + `"}}}`, "reg.example", auth.Credential{Username: "u", Password: "p"}, nil, ""},
		{"auth field beats username", `{"auths":{"reg.example":{"auth":"` + b64("u:p") + `","username":"x","password":"y"}}}`, "reg.example", auth.Credential{Username: "u", Password: "p"}, nil, ""},
		{"username and password", `{"auths":{"reg.example":{"username":"u","password":"p"}}}`, "reg.example", auth.Credential{Username: "u", Password: "p"}, nil, ""},
		{"identity token", `{"auths":{"reg.example":{"identitytoken":"idt"}}}`, "reg.example", auth.Credential{IdentityToken: "idt"}, nil, ""},
		{"key with scheme and path", `{"auths":{"https://reg.example/v2/":{"username":"u","password":"p"}}}`, "reg.example", auth.Credential{Username: "u", Password: "p"}, nil, ""},
		{"key with port", `{"auths":{"localhost:5000":{"username":"u","password":"p"}}}`, "localhost:5000", auth.Credential{Username: "u", Password: "p"}, nil, ""},
		{"port must match", `{"auths":{"localhost:5000":{"username":"u","password":"p"}}}`, "localhost:5001", auth.Credential{}, nil, ""},
		{"docker hub legacy key", `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("hub:pw") + `"}}}`, "registry-1.docker.io", auth.Credential{Username: "hub", Password: "pw"}, nil, ""},
		{"docker hub short key", `{"auths":{"docker.io":{"auth":"` + b64("hub:pw") + `"}}}`, "index.docker.io", auth.Credential{Username: "hub", Password: "pw"}, nil, ""},
		{"exact key preferred", `{"auths":{"https://reg.example":{"username":"a","password":"1"},"reg.example":{"username":"b","password":"2"}}}`, "reg.example", auth.Credential{Username: "b", Password: "2"}, nil, ""},
		{"other host", `{"auths":{"reg.example":{"username":"u","password":"p"}}}`, "evil.example", auth.Credential{}, nil, ""},
		{"empty entry", `{"auths":{"reg.example":{}}}`, "reg.example", auth.Credential{}, nil, ""},
		{"bad base64", `{"auths":{"reg.example":{"auth":"%%%SECRET"}}}`, "reg.example", auth.Credential{}, errdefs.ErrInvalidArgument, ""},
		{"bad base64 elsewhere", `{"auths":{"reg.example":{"auth":"%%%"},"ok.example":{"username":"u","password":"p"}}}`, "ok.example", auth.Credential{Username: "u", Password: "p"}, nil, ""},
		{"credHelpers", `{"credHelpers":{"helper.example":"test"}}`, "helper.example", auth.Credential{Username: "helperuser", Password: "helperpass"}, nil, "helper.example"},
		{"credHelpers key with scheme", `{"credHelpers":{"https://helper.example":"test"}}`, "helper.example", auth.Credential{Username: "helperuser", Password: "helperpass"}, nil, "helper.example"},
		{"credHelpers for another host", `{"credHelpers":{"helper.example":"test"},"auths":{"reg.example":{"username":"u","password":"p"}}}`, "reg.example", auth.Credential{Username: "u", Password: "p"}, nil, ""},
		{"credHelpers beat credsStore", `{"credHelpers":{"helper.example":"test"},"credsStore":"other"}`, "helper.example", auth.Credential{Username: "helperuser", Password: "helperpass"}, nil, "helper.example"},
		{"credsStore", `{"credsStore":"other"}`, "any.example", auth.Credential{Username: "otheruser", Password: "otherpass"}, nil, ""},
		{"credsStore docker hub", `{"credsStore":"test"}`, "registry-1.docker.io", auth.Credential{Username: "hubuser", Password: "hubpass"}, nil, "https://index.docker.io/v1/"},
		{"identity token from helper", `{"credsStore":"test"}`, "token.example", auth.Credential{IdentityToken: "refresh-xyz"}, nil, "token.example"},
		{"helper not found falls back to auths", `{"credsStore":"test","auths":{"plain.example":{"username":"u","password":"p"}}}`, "plain.example", auth.Credential{Username: "u", Password: "p"}, nil, "plain.example"},
		{"helper not found is anonymous", `{"credsStore":"test"}`, "nothing.example", auth.Credential{}, nil, "nothing.example"},
		{"helper fails", `{"credsStore":"test"}`, "fail.example", auth.Credential{}, errdefs.ErrUnknown, "fail.example"},
		{"helper prints garbage", `{"credsStore":"test"}`, "garbage.example", auth.Credential{}, errdefs.ErrInvalidArgument, "garbage.example"},
		{"helper missing", `{"credsStore":"missing"}`, "reg.example", auth.Credential{}, errdefs.ErrNotFound, ""},
		{"helper name with a path", `{"credsStore":"../test"}`, "reg.example", auth.Credential{}, errdefs.ErrInvalidArgument, ""},
		{"empty file", ``, "reg.example", auth.Credential{}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = os.Remove(logFile)
			cf, err := auth.LoadDockerConfig(writeConfig(t, tt.config))
			if err != nil {
				t.Fatal(err)
			}
			got, err := cf.Resolve(t.Context(), tt.host)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Resolve(%q) = %v, %v; want %v, %v", tt.host, got, err, tt.want, tt.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), "SECRET") {
					t.Fatalf("error %q contains the auth field", err)
				}
				if !strings.Contains(err.Error(), auth.CanonicalHost(tt.host)) {
					t.Fatalf("error %q does not name the host", err)
				}
			}
			if tt.asked != "" {
				b, _ := os.ReadFile(logFile)
				if got := strings.TrimSpace(string(b)); got != tt.asked {
					t.Fatalf("helper asked about %q, want %q", got, tt.asked)
				}
			}
		})
	}
}

func TestLoadDockerConfigErrors(t *testing.T) {
	if _, err := auth.LoadDockerConfig(writeConfig(t, `{"auths":`)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("malformed JSON: error = %v, want ErrInvalidArgument", err)
	}
	if _, err := auth.LoadDockerConfig(writeConfig(t, `{"auths":{"reg.example":"SECRET"}}`)); !errors.Is(err, errdefs.ErrInvalidArgument) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("wrong shape: error = %v, want ErrInvalidArgument without the file's strings", err)
	}
	cf, err := auth.LoadDockerConfig(filepath.Join(t.TempDir(), "missing", "config.json"))
	if err != nil {
		t.Fatalf("missing file: error = %v, want nil", err)
	}
	if got, err := cf.Resolve(t.Context(), "reg.example"); err != nil || !got.IsEmpty() {
		t.Fatalf("missing file: Resolve() = %v, %v; want anonymous", got, err)
	}
}

func TestDockerConfigReloads(t *testing.T) {
	path := writeConfig(t, `{"auths":{"reg.example":{"username":"u","password":"p"}}}`)
	cf, err := auth.LoadDockerConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := cf.Resolve(t.Context(), "reg.example"); got.Username != "u" {
		t.Fatalf("Resolve() = %v", got)
	}
	if err := os.WriteFile(path, []byte(`{"auths":{"reg.example":{"username":"after-login","password":"p"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := cf.Resolve(t.Context(), "reg.example"); got.Username != "after-login" {
		t.Fatalf("Resolve() after the file changed = %v, want the new user", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got, err := cf.Resolve(t.Context(), "reg.example"); err != nil || !got.IsEmpty() {
		t.Fatalf("Resolve() after the file was removed = %v, %v; want anonymous", got, err)
	}
}

func TestDockerConfigLocation(t *testing.T) {
	const cfg = `{"auths":{"reg.example":{"username":"u","password":"p"}}}`
	t.Run("DOCKER_CONFIG", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("DOCKER_CONFIG", dir)
		cf := auth.DockerConfig()
		if cf.Path() != filepath.Join(dir, "config.json") {
			t.Fatalf("Path() = %q", cf.Path())
		}
		if got, err := cf.Resolve(t.Context(), "reg.example"); err != nil || got.Username != "u" {
			t.Fatalf("Resolve() = %v, %v", got, err)
		}
	})
	t.Run("home", func(t *testing.T) {
		if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
			t.Skip("home directory comes from another variable")
		}
		home := t.TempDir()
		if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("DOCKER_CONFIG", "")
		t.Setenv("HOME", home)
		if got, err := auth.DockerConfig().Resolve(t.Context(), "reg.example"); err != nil || got.Username != "u" {
			t.Fatalf("Resolve() = %v, %v", got, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", t.TempDir())
		if got, err := auth.DockerConfig().Resolve(t.Context(), "reg.example"); err != nil || !got.IsEmpty() {
			t.Fatalf("Resolve() = %v, %v; want anonymous", got, err)
		}
	})
}

func TestDockerConfigWithClient(t *testing.T) {
	installHelper(t)
	br := newBasicRegistry(t, "otheruser", "otherpass")
	other := newBasicRegistry(t, "otheruser", "otherpass")
	cf, err := auth.LoadDockerConfig(writeConfig(t, `{"credHelpers":{"http://`+br.host()+`":"other"}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := auth.NewClient(auth.WithKeychain(cf))
	if status, _ := do(t, t.Context(), c, "GET", br.srv.URL+"/v2/", nil); status != 200 {
		t.Fatalf("GET = %d, want 200 with the helper's credentials", status)
	}
	if status, _ := do(t, t.Context(), c, "GET", other.srv.URL+"/v2/", nil); status != 401 {
		t.Fatalf("GET other = %d, want 401: the helper is configured for one host only", status)
	}
}
