package resolve

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/pullkit/pullkit/internal/httpx"
)

// hostsFile is the name of a host directory's configuration file.
const hostsFile = "hosts.toml"

// defaultDir is the directory that applies to registries without one.
const defaultDir = "_default"

// WithHostsDir reads host configuration from dir in containerd's layout
// (/etc/containerd/certs.d, docs/hosts.md in containerd), so that an
// existing node configuration works unchanged:
//
//	<dir>/<registry>/hosts.toml    for example docker.io/hosts.toml
//	<dir>/<host>_<port>_/hosts.toml  or <dir>/<host>:<port>/hosts.toml
//	<dir>/_default/hosts.toml      for registries with no directory
//
// A hosts.toml lists mirrors as [host."<url>"] tables, tried in the order
// they are written, then the registry given by server (the registry itself
// when server is absent). Each table, and the top level for server, may
// set:
//
//   - capabilities: a list of "pull", "resolve" and "push"; absent or
//     empty means all.
//   - ca: a CA certificate file, or a list of them, trusted in addition to
//     the system's.
//   - client: a client certificate file holding its key, a list of them,
//     or a list of [cert, key] file pairs.
//   - skip_verify: true to accept any server certificate.
//   - [header] (or header = {...}): headers, each a string or a list.
//   - override_path: true when the URL's path is the API root as it is;
//     otherwise "/v2" is appended unless the path already ends in "/v2".
//   - dial_timeout: a Go duration such as "5s".
//
// A URL without a scheme is https. Relative file paths are relative to the
// host directory. A directory without hosts.toml is read the way docker
// reads /etc/docker/certs.d: *.crt files are CA certificates, and each
// *.cert file is a client certificate with its key in the *.key file of
// the same name (or in the .cert file when there is none); they apply to
// the registry itself, after its [WithMirrors].
//
// Precedence: a registry's own hosts.toml decides its hosts and
// [WithMirrors] is ignored for it; _default applies only to registries
// with neither a directory nor WithMirrors/[WithoutFallback]. Per-host
// options ([WithCA], [WithPlainHTTP], [WithHeader], ...) add to what the
// files say, except that a scheme written in a file wins.
//
// Unlike containerd, which logs a hosts.toml it cannot parse and falls
// back to the certificate files, the HostsFunc fails with an error that
// names the file and matches errdefs.ErrInvalidArgument: a broken mirror
// configuration should not silently send every pull upstream. Unknown keys
// are ignored. The files are read on every call of the HostsFunc; the
// default, "", reads nothing.
func WithHostsDir(dir string) HostOption {
	return func(c *hostsConfig) { c.dir = dir }
}

// findHostDir returns the directory of registry under root, or "" when
// there is none: "<host>_<port>_" first, then the registry as written.
func findHostDir(root, registry string) (string, error) {
	if registry == defaultDir || registry == "." || registry == ".." || strings.ContainsAny(registry, `/\`) {
		return "", fmt.Errorf("registry %q is not a host name: %w", registry, errdefs.ErrInvalidArgument)
	}
	var names []string
	if i := strings.LastIndexByte(registry, ':'); i > 0 && !strings.HasSuffix(registry, "]") {
		names = append(names, registry[:i]+"_"+registry[i+1:]+"_")
	}
	names = append(names, registry)
	for _, n := range names {
		d := filepath.Join(root, n)
		ok, err := isDir(d)
		if err != nil {
			return "", err
		}
		if ok {
			return d, nil
		}
	}
	return "", nil
}

// findDefaultDir returns root/_default, or "" when it does not exist.
func findDefaultDir(root string) (string, error) {
	d := filepath.Join(root, defaultDir)
	ok, err := isDir(d)
	if !ok {
		return "", err
	}
	return d, nil
}

func isDir(p string) (bool, error) {
	fi, err := os.Stat(p)
	switch {
	case err == nil:
		return fi.IsDir(), nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// loadHostDir reads a host directory. It returns the hosts of its
// hosts.toml, or nil and the certificates of a directory without one.
func loadHostDir(dir string) ([]hostSpec, tlsSettings, error) {
	file := filepath.Join(dir, hostsFile)
	b, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, tlsSettings{}, err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		certs, err := loadCertFiles(dir)
		return nil, certs, err
	}
	specs, err := parseHostsFile(dir, b)
	if err != nil {
		return nil, tlsSettings{}, fmt.Errorf("%s: %w", file, err)
	}
	return specs, tlsSettings{}, nil
}

// loadCertFiles reads docker's certs.d layout: *.crt CA files, *.cert
// client certificates with their *.key.
func loadCertFiles(dir string) (tlsSettings, error) {
	var s tlsSettings
	entries, err := os.ReadDir(dir)
	if err != nil {
		return s, err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".crt"):
			s.caFiles = append(s.caFiles, filepath.Join(dir, name))
		case strings.HasSuffix(name, ".cert"):
			pair := [2]string{filepath.Join(dir, name), ""}
			key := filepath.Join(dir, strings.TrimSuffix(name, ".cert")+".key")
			if _, err := os.Stat(key); err == nil {
				pair[1] = key
			} else if !errors.Is(err, fs.ErrNotExist) {
				return s, err
			}
			s.clientPairs = append(s.clientPairs, pair)
		}
	}
	return s, nil
}

// hostEntry is a [host."..."] table, or the top level of hosts.toml.
type hostEntry struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`
	Client       any            `toml:"client"`
	SkipVerify   *bool          `toml:"skip_verify"`
	Header       map[string]any `toml:"header"`
	OverridePath bool           `toml:"override_path"`
	DialTimeout  string         `toml:"dial_timeout"`
}

// parseHostsFile parses a hosts.toml: the [host] tables in file order,
// then the server.
func parseHostsFile(dir string, b []byte) ([]hostSpec, error) {
	var doc struct {
		hostEntry
		Server string               `toml:"server"`
		Host   map[string]hostEntry `toml:"host"`
	}
	if err := toml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	order, err := hostOrder(b)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	// Keys the scan missed, if any, go last in a stable order.
	for _, k := range slices.Sorted(maps.Keys(doc.Host)) {
		if !slices.Contains(order, k) {
			order = append(order, k)
		}
	}
	specs := make([]hostSpec, 0, len(order)+1)
	for _, k := range order {
		e, ok := doc.Host[k]
		if !ok {
			continue
		}
		if k == "" {
			return nil, fmt.Errorf(`[host.""]: empty host: %w`, errdefs.ErrInvalidArgument)
		}
		s, err := parseHostEntry(dir, k, e)
		if err != nil {
			return nil, fmt.Errorf("[host.%q]: %w", shownURL(k), err)
		}
		specs = append(specs, s)
	}
	s, err := parseHostEntry(dir, doc.Server, doc.hostEntry)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", shownURL(doc.Server), err)
	}
	return append(specs, s), nil
}

// hostOrder returns the names of the host tables in the order the file
// first mentions them, whatever the form: [host."x"] tables, dotted keys
// (host."x".capabilities = ...) or inline tables (host = { "x" = {...} }).
func hostOrder(b []byte) ([]string, error) {
	var (
		p     unstable.Parser
		order []string
		seen  = map[string]bool{}
		table []string
	)
	add := func(keys []string) {
		if len(keys) >= 2 && strings.EqualFold(keys[0], "host") && !seen[keys[1]] {
			seen[keys[1]] = true
			order = append(order, keys[1])
		}
	}
	var inline func(prefix []string, v *unstable.Node)
	inline = func(prefix []string, v *unstable.Node) {
		if v == nil || v.Kind != unstable.InlineTable {
			return
		}
		for it := v.Children(); it.Next(); {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			full := append(slices.Clip(prefix), keyParts(kv.Key())...)
			add(full)
			if len(full) < 2 {
				inline(full, kv.Value())
			}
		}
	}
	p.Reset(b)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e.Key())
			add(table)
		case unstable.KeyValue:
			full := append(slices.Clip(table), keyParts(e.Key())...)
			add(full)
			if len(full) < 2 {
				inline(full, e.Value())
			}
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return order, nil
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// parseHostEntry turns one entry into a hostSpec. server "" is the
// registry's default upstream.
func parseHostEntry(dir, server string, e hostEntry) (hostSpec, error) {
	var s hostSpec
	if server != "" {
		raw := server
		if !strings.Contains(raw, "://") {
			raw = "https://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil {
			return s, fmt.Errorf("not a URL: %w", errdefs.ErrInvalidArgument)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return s, fmt.Errorf("user info, query and fragment are not allowed: %w", errdefs.ErrInvalidArgument)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return s, fmt.Errorf("scheme must be http or https: %w", errdefs.ErrInvalidArgument)
		}
		if u.Host == "" {
			return s, fmt.Errorf("no host: %w", errdefs.ErrInvalidArgument)
		}
		s.scheme, s.host = u.Scheme, u.Host
		switch {
		case u.Path != "" && u.Path != "/":
			s.path = path.Clean(u.Path)
			if !strings.HasSuffix(s.path, "/v2") && !e.OverridePath {
				s.path += "/v2"
			}
		case e.OverridePath:
			s.path = "/"
		default:
			s.path = "/v2"
		}
	}

	for _, c := range e.Capabilities {
		switch strings.ToLower(strings.TrimSpace(c)) {
		case "pull":
			s.caps |= CapabilityPull
		case "resolve":
			s.caps |= CapabilityResolve
		case "push":
			s.caps |= CapabilityPush
		default:
			return s, fmt.Errorf("unknown capability %q (want pull, resolve or push): %w", c, errdefs.ErrInvalidArgument)
		}
	}
	if s.caps == 0 {
		s.caps = CapabilityAll
	}

	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	switch ca := e.CA.(type) {
	case nil:
	case string:
		s.tls.caFiles = []string{abs(ca)}
	case []any:
		for _, v := range ca {
			f, ok := v.(string)
			if !ok {
				return s, fmt.Errorf("ca: %v is not a file name: %w", v, errdefs.ErrInvalidArgument)
			}
			s.tls.caFiles = append(s.tls.caFiles, abs(f))
		}
	default:
		return s, fmt.Errorf("ca: want a file name or a list of them, not %T: %w", ca, errdefs.ErrInvalidArgument)
	}

	switch cl := e.Client.(type) {
	case nil:
	case string:
		s.tls.clientPairs = [][2]string{{abs(cl), ""}}
	case []any:
		for _, v := range cl {
			switch p := v.(type) {
			case string:
				s.tls.clientPairs = append(s.tls.clientPairs, [2]string{abs(p), ""})
			case []any:
				cert, ok1 := elem(p, 0)
				key, ok2 := elem(p, 1)
				if len(p) != 2 || !ok1 || !ok2 {
					return s, fmt.Errorf("client: %v is not a [cert, key] pair: %w", p, errdefs.ErrInvalidArgument)
				}
				s.tls.clientPairs = append(s.tls.clientPairs, [2]string{abs(cert), abs(key)})
			default:
				return s, fmt.Errorf("client: %v is not a file name or a pair: %w", v, errdefs.ErrInvalidArgument)
			}
		}
	default:
		return s, fmt.Errorf("client: want a file name, a list, or a list of [cert, key] pairs, not %T: %w", cl, errdefs.ErrInvalidArgument)
	}

	if e.SkipVerify != nil {
		s.tls.skipVerify = *e.SkipVerify
	}

	if e.Header != nil {
		s.header = http.Header{}
		for k, v := range e.Header {
			switch v := v.(type) {
			case string:
				s.header.Add(k, v)
			case []any:
				for _, x := range v {
					str, ok := x.(string)
					if !ok {
						return s, fmt.Errorf("header %s: %v is not a string: %w", k, x, errdefs.ErrInvalidArgument)
					}
					s.header.Add(k, str)
				}
			default:
				return s, fmt.Errorf("header %s: want a string or a list of strings, not %T: %w", k, v, errdefs.ErrInvalidArgument)
			}
		}
	}

	if e.DialTimeout != "" {
		d, err := time.ParseDuration(e.DialTimeout)
		if err != nil || d <= 0 {
			return s, fmt.Errorf("dial_timeout %q: want a positive duration such as \"5s\": %w", e.DialTimeout, errdefs.ErrInvalidArgument)
		}
		s.tls.dialTimeout = d
	}
	return s, nil
}

// shownURL returns a host URL from hosts.toml fit for an error message:
// without user info, query or fragment.
func shownURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<not a URL>"
	}
	if u.Scheme == "" && u.Host == "" {
		return s
	}
	return httpx.RedactURL(u)
}

// elem returns p[i] as a non-empty string.
func elem(p []any, i int) (string, bool) {
	if i >= len(p) {
		return "", false
	}
	s, ok := p[i].(string)
	return s, ok && s != ""
}
