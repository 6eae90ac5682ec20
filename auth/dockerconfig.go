package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// ConfigFile is a [Keychain] backed by a docker CLI config.json: its
// "auths", "credHelpers" and "credsStore" entries.
//
// For a host, a helper named in "credHelpers" (or else the "credsStore"
// helper) is run first as `docker-credential-<name> get`, following the
// docker credential-helpers protocol. When the helper has no credentials for
// the host, or no helper is configured, the host's "auths" entry is used.
// Keys may carry a scheme and a path; Docker Hub's aliases match each other.
//
// The file is read again whenever its size or modification time changes, so
// a long-lived ConfigFile sees a later `docker login`. A missing file means
// anonymous access. A ConfigFile is safe for concurrent use.
type ConfigFile struct {
	path string

	mu      sync.Mutex
	loaded  bool
	modTime time.Time
	size    int64
	cfg     dockerConfig
	loadErr error
}

var _ Keychain = (*ConfigFile)(nil)

type dockerConfig struct {
	Auths       map[string]dockerAuth `json:"auths"`
	CredHelpers map[string]string     `json:"credHelpers"`
	CredsStore  string                `json:"credsStore"`
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// DockerConfig returns the keychain of the docker CLI's config file:
// $DOCKER_CONFIG/config.json when DOCKER_CONFIG is set, otherwise
// ~/.docker/config.json. The environment is read now; the file is read on
// first use. When no home directory is known the keychain is anonymous.
func DockerConfig() *ConfigFile {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			return &ConfigFile{}
		}
		dir = filepath.Join(home, ".docker")
	}
	return &ConfigFile{path: filepath.Join(dir, "config.json")}
}

// LoadDockerConfig reads the docker config file at path now, so that a
// malformed file is reported at once (errdefs.ErrInvalidArgument), and
// returns its keychain. A missing file is not an error: the keychain is
// anonymous until the file appears.
func LoadDockerConfig(path string) (*ConfigFile, error) {
	cf := &ConfigFile{path: path}
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if _, err := cf.loadLocked(); err != nil {
		return nil, err
	}
	return cf, nil
}

// Path returns the file cf reads, or "" when it has none.
func (cf *ConfigFile) Path() string { return cf.path }

// loadLocked returns the parsed file, re-reading it when it changed.
func (cf *ConfigFile) loadLocked() (dockerConfig, error) {
	if cf.path == "" {
		return dockerConfig{}, nil
	}
	st, err := os.Stat(cf.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cf.loaded, cf.cfg, cf.loadErr = false, dockerConfig{}, nil
		return dockerConfig{}, nil
	case err != nil:
		return dockerConfig{}, fmt.Errorf("auth: read docker config %s: %w", cf.path, err)
	}
	if cf.loaded && st.ModTime().Equal(cf.modTime) && st.Size() == cf.size {
		return cf.cfg, cf.loadErr
	}
	b, err := os.ReadFile(cf.path)
	if errors.Is(err, fs.ErrNotExist) {
		return dockerConfig{}, nil
	}
	if err != nil {
		return dockerConfig{}, fmt.Errorf("auth: read docker config %s: %w", cf.path, err)
	}
	var cfg dockerConfig
	cf.loadErr = nil
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &cfg); err != nil {
			// json's messages quote offsets and types, never the document's strings.
			cf.loadErr = fmt.Errorf("auth: parse docker config %s: %w: %w", cf.path, errdefs.ErrInvalidArgument, err)
		}
	}
	cf.loaded, cf.modTime, cf.size, cf.cfg = true, st.ModTime(), st.Size(), cfg
	return cf.cfg, cf.loadErr
}

// Resolve returns the credentials the config file holds for host.
func (cf *ConfigFile) Resolve(ctx context.Context, host string) (Credential, error) {
	host = CanonicalHost(host)
	if host == "" {
		return Credential{}, nil
	}
	cf.mu.Lock()
	cfg, err := cf.loadLocked()
	cf.mu.Unlock()
	if err != nil {
		return Credential{}, err
	}

	helper := ""
	for _, k := range sortedKeys(cfg.CredHelpers) {
		if CanonicalHost(k) == host {
			helper = cfg.CredHelpers[k]
			break
		}
	}
	if helper == "" {
		helper = cfg.CredsStore
	}
	if helper != "" {
		cred, err := runCredentialHelper(ctx, helper, host)
		if err != nil {
			return Credential{}, err
		}
		if !cred.IsEmpty() {
			return cred, nil
		}
	}

	// Prefer the key spelled exactly as the host, then the others in order.
	keys := sortedKeys(cfg.Auths)
	sort.SliceStable(keys, func(i, j int) bool { return keys[i] == host && keys[j] != host })
	for _, k := range keys {
		if CanonicalHost(k) != host {
			continue
		}
		a := cfg.Auths[k]
		cred := Credential{
			Username:      a.Username,
			Password:      a.Password,
			IdentityToken: a.IdentityToken,
			RegistryToken: a.RegistryToken,
		}
		if a.Auth != "" {
			u, p, err := decodeAuth(a.Auth)
			if err != nil {
				return Credential{}, fmt.Errorf("auth: docker config %s: entry for %s: %w", cf.path, host, err)
			}
			cred.Username, cred.Password = u, p
		}
		if !cred.IsEmpty() {
			return cred, nil
		}
	}
	return Credential{}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// helperServerURL is the server URL a credential helper is asked about:
// Docker Hub's legacy index address (as `docker login` stores it), or the
// host itself.
func helperServerURL(host string) string {
	if host == DockerHub {
		return "https://index.docker.io/v1/"
	}
	return host
}

// helperTokenUser is the user name a credential helper returns when the
// secret is an identity token rather than a password.
const helperTokenUser = "<token>"

// runCredentialHelper runs `docker-credential-<name> get` for host. A helper
// that reports "credentials not found" gives the zero Credential. Errors
// name the helper and the host, and quote at most the first line of the
// helper's own message.
func runCredentialHelper(ctx context.Context, name, host string) (Credential, error) {
	if strings.ContainsAny(name, `/\`) || strings.TrimSpace(name) != name || name == "" {
		return Credential{}, fmt.Errorf("auth: credential helper %q for %s: invalid helper name: %w", name, host, errdefs.ErrInvalidArgument)
	}
	prog := "docker-credential-" + name
	cmd := exec.CommandContext(ctx, prog, "get")
	cmd.Stdin = strings.NewReader(helperServerURL(host))
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stdout.String() + "\n" + stderr.String())
		if strings.Contains(strings.ToLower(msg), "credentials not found") {
			return Credential{}, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Credential{}, fmt.Errorf("auth: credential helper %s for %s: %w", prog, host, ctxErr)
		}
		if errors.Is(err, exec.ErrNotFound) {
			return Credential{}, fmt.Errorf("auth: credential helper %s for %s: %w: %w", prog, host, errdefs.ErrNotFound, err)
		}
		return Credential{}, fmt.Errorf("auth: credential helper %s for %s: %w%s: %w", prog, host, err, helperMessage(msg), errdefs.ErrUnknown)
	}
	var out struct {
		ServerURL string
		Username  string
		Secret    string
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return Credential{}, fmt.Errorf("auth: credential helper %s for %s: malformed output: %w", prog, host, errdefs.ErrInvalidArgument)
	}
	if out.Username == helperTokenUser {
		return Credential{IdentityToken: out.Secret}, nil
	}
	if out.Username == "" && out.Secret == "" {
		return Credential{}, nil
	}
	return Credential{Username: out.Username, Password: out.Secret}, nil
}

// helperMessage returns ": <first line>" of a failed helper's message, cut
// to a safe length, or "" when the message looks like structured output
// (which could hold a secret).
func helperMessage(msg string) string {
	line, _, _ := strings.Cut(msg, "\n")
	line = strings.TrimSpace(line)
	if line == "" || strings.ContainsAny(line, "{}") {
		return ""
	}
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return ": " + line
}
