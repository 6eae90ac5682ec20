package resolve

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/internal/httpx"
)

// Transport defaults of the clients [Hosts] builds.
const (
	// DefaultDialTimeout bounds connecting to a host.
	DefaultDialTimeout = 30 * time.Second
	// DefaultTLSHandshakeTimeout bounds the TLS handshake.
	DefaultTLSHandshakeTimeout = 10 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for a response's headers
	// after a request was sent. Bodies have no time limit: a large layer
	// takes as long as it takes (package fetch drops stalled connections).
	DefaultResponseHeaderTimeout = 2 * time.Minute
	// DefaultMaxIdleConnsPerHost is how many idle connections are kept per
	// host, enough for parallel layer and chunk downloads.
	DefaultMaxIdleConnsPerHost = 32
)

// HostOption configures the [HostsFunc] that [Hosts] returns.
type HostOption func(*hostsConfig)

type hostsConfig struct {
	mirrors    map[string][]string // by lowercase registry
	noFallback map[string]bool     // by lowercase registry
	plain      map[string]bool     // by lowercase host
	headers    map[string]http.Header
	tls        map[string]tlsSettings
	dir        string

	mu      sync.Mutex
	clients map[string]*cachedClient // by tlsSettings.key
}

type cachedClient struct {
	stamp  string // the files' sizes and times when it was built
	client *http.Client
}

// Hosts returns a [HostsFunc] that configures hosts the way docker and
// containerd do, adjusted by opts:
//
//   - The registry's mirrors ([WithMirrors]) come first, in order, then the
//     registry itself, unless [WithoutFallback] leaves it out.
//   - docker.io is served by registry-1.docker.io.
//   - localhost and loopback addresses (127.0.0.1, ::1), with any port but
//     443, are spoken to over plain HTTP unless TLS settings are given for
//     them; every other host over HTTPS unless [WithPlainHTTP] says
//     otherwise. There is no automatic fallback from HTTPS to HTTP.
//   - Hosts with TLS settings ([WithCA], [WithCAFile],
//     [WithClientCertFiles], [WithInsecureSkipVerify], or hosts.toml's ca,
//     client and skip_verify) get an *http.Client of their own, built once
//     per distinct setting (and again when a certificate file changes) and
//     reused, so that connections are pooled. Other hosts get a nil Client:
//     the resolver's shared one.
//   - [WithHostsDir] reads containerd's hosts.toml/certs.d layout, which
//     takes precedence over WithMirrors for a registry that has its own
//     directory.
//
// With no options, Hosts returns one host per registry: the registry
// itself, with every capability. The HostsFunc reads no file until it is
// called, and reads the hosts directory again on every call, so that edits
// take effect without a restart. Its errors match
// errdefs.ErrInvalidArgument and name the setting or file at fault.
func Hosts(opts ...HostOption) HostsFunc {
	c := &hostsConfig{
		mirrors:    map[string][]string{},
		noFallback: map[string]bool{},
		plain:      map[string]bool{},
		headers:    map[string]http.Header{},
		tls:        map[string]tlsSettings{},
		clients:    map[string]*cachedClient{},
	}
	for _, o := range opts {
		o(c)
	}
	return c.hosts
}

// WithMirrors sets the mirrors of registry ("docker.io",
// "registry.example:5000"), tried in order before the registry itself.
// Several calls for one registry add up.
//
// A mirror is written "[scheme://]host[:port][/path]". Without a scheme it
// is https (http for a loopback host or one named by [WithPlainHTTP]). The
// path is the API root: none means "/v2"; a path that starts with "/v2",
// such as "https://harbor.example/v2/proxy" for a pull-through cache that
// keeps the registry's repositories under proxy/, is used as written; any
// other path gets "/v2" appended, as containerd does. Mirrors resolve tags
// and serve content (CapabilityPull|CapabilityResolve). An invalid mirror
// makes the HostsFunc fail for that registry.
func WithMirrors(registry string, mirrors ...string) HostOption {
	return func(c *hostsConfig) {
		k := strings.ToLower(registry)
		c.mirrors[k] = append(c.mirrors[k], mirrors...)
	}
}

// WithoutFallback leaves registry itself out of its hosts, so that only
// its mirrors are asked ([WithMirrors]), as in an air-gapped network. The
// default is to ask the registry last.
func WithoutFallback(registry string) HostOption {
	return func(c *hostsConfig) { c.noFallback[strings.ToLower(registry)] = true }
}

// WithPlainHTTP makes requests to host ("registry.example:5000"), as a
// registry or a mirror given without a scheme, use plain HTTP. Like every
// per-host option, it names the host requests go to, or, for the registry
// itself, its name in references: "docker.io" works as well as
// "registry-1.docker.io". Loopback
// hosts use it by default. A scheme written in a mirror or in hosts.toml
// wins.
func WithPlainHTTP(host string) HostOption {
	return func(c *hostsConfig) { c.plain[strings.ToLower(host)] = true }
}

// WithHeader adds h to the headers sent to host, as a registry or a
// mirror. Several calls add up.
func WithHeader(host string, h http.Header) HostOption {
	return func(c *hostsConfig) {
		k := strings.ToLower(host)
		dst := c.headers[k]
		if dst == nil {
			dst = http.Header{}
			c.headers[k] = dst
		}
		for name, vs := range h {
			for _, v := range vs {
				dst.Add(name, v)
			}
		}
	}
}

// WithCA trusts the PEM certificates in pem, in addition to the system's,
// for host's TLS certificate. Certificates that do not parse make the
// HostsFunc fail.
func WithCA(host string, pem []byte) HostOption {
	return withTLS(host, func(s *tlsSettings) { s.caPEM = append(s.caPEM, slices.Clone(pem)) })
}

// WithCAFile is [WithCA] with the certificates read from file, when the
// HostsFunc is called.
func WithCAFile(host, file string) HostOption {
	return withTLS(host, func(s *tlsSettings) { s.caFiles = append(s.caFiles, file) })
}

// WithClientCertFiles makes the TLS client present the certificate in
// certFile, with the private key in keyFile, to host. keyFile "" means the
// key is in certFile too. The files are read when the HostsFunc is called.
func WithClientCertFiles(host, certFile, keyFile string) HostOption {
	return withTLS(host, func(s *tlsSettings) { s.clientPairs = append(s.clientPairs, [2]string{certFile, keyFile}) })
}

// WithInsecureSkipVerify accepts any certificate from host: the connection
// is encrypted but the server is not authenticated. Use it for tests only.
func WithInsecureSkipVerify(host string) HostOption {
	return withTLS(host, func(s *tlsSettings) { s.skipVerify = true })
}

func withTLS(host string, fn func(*tlsSettings)) HostOption {
	return func(c *hostsConfig) {
		k := strings.ToLower(host)
		s := c.tls[k]
		fn(&s)
		c.tls[k] = s
	}
}

// hostSpec is a host before defaults are applied.
type hostSpec struct {
	scheme string // "" until defaults decide
	host   string // "" for the registry's default upstream
	path   string // "" for "/v2"
	caps   Capability
	header http.Header
	tls    tlsSettings
}

// hosts is the HostsFunc.
func (c *hostsConfig) hosts(registry string) ([]Host, error) {
	if registry == "" {
		return nil, fmt.Errorf("hosts: empty registry name: %w", errdefs.ErrInvalidArgument)
	}
	key := strings.ToLower(registry)
	specs, err := c.specs(registry, key)
	if err != nil {
		return nil, fmt.Errorf("hosts for %s: %w", registry, err)
	}
	out := make([]Host, 0, len(specs))
	for _, s := range specs {
		h, err := c.build(registry, s)
		if err != nil {
			return nil, fmt.Errorf("hosts for %s: %w", registry, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// specs lists the hosts of registry, before defaults. The registry's own
// hosts.toml decides; without one, the mirrors from the options and the
// upstream (with any legacy certificates from the registry's directory);
// with neither, _default's hosts.toml or certificates.
func (c *hostsConfig) specs(registry, key string) ([]hostSpec, error) {
	var legacy *tlsSettings
	if c.dir != "" {
		own, err := findHostDir(c.dir, registry)
		if err != nil {
			return nil, err
		}
		if own != "" {
			specs, certs, err := loadHostDir(own)
			if err != nil {
				return nil, err
			}
			if specs != nil {
				return specs, nil
			}
			legacy = &certs
		} else if _, configured := c.mirrors[key]; !configured && !c.noFallback[key] {
			def, err := findDefaultDir(c.dir)
			if err != nil {
				return nil, err
			}
			if def != "" {
				specs, certs, err := loadHostDir(def)
				if err != nil {
					return nil, err
				}
				if specs != nil {
					return specs, nil
				}
				legacy = &certs
			}
		}
	}
	var specs []hostSpec
	for i, m := range c.mirrors[key] {
		s, err := parseMirror(i+1, m)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	if !c.noFallback[key] {
		up := hostSpec{caps: CapabilityAll}
		if legacy != nil {
			up.tls = *legacy
		}
		specs = append(specs, up)
	}
	return specs, nil
}

// parseMirror parses the n-th mirror, m, as WithMirrors documents it.
func parseMirror(n int, m string) (hostSpec, error) {
	explicit := strings.Contains(m, "://")
	s := m
	if !explicit {
		s = "https://" + m
	}
	u, err := url.Parse(s)
	if err != nil {
		// url's errors repeat the input, which may hold a password.
		return hostSpec{}, fmt.Errorf("mirror #%d is not a URL: %w", n, errdefs.ErrInvalidArgument)
	}
	shown := httpx.RedactURL(u)
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return hostSpec{}, fmt.Errorf("mirror %q: scheme must be http or https: %w", shown, errdefs.ErrInvalidArgument)
	case u.Host == "":
		return hostSpec{}, fmt.Errorf("mirror %q: no host: %w", shown, errdefs.ErrInvalidArgument)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return hostSpec{}, fmt.Errorf("mirror %q: user info, query and fragment are not allowed (give credentials with a keychain): %w", shown, errdefs.ErrInvalidArgument)
	}
	p := "/v2"
	if u.Path != "" {
		switch c := path.Clean(u.Path); {
		case c == "/":
		case c == "/v2" || strings.HasPrefix(c, "/v2/"):
			p = c
		default:
			p = c + "/v2"
		}
	}
	spec := hostSpec{host: u.Host, path: p, caps: CapabilityPull | CapabilityResolve}
	if explicit {
		spec.scheme = u.Scheme
	}
	return spec, nil
}

// build applies defaults and the per-host options to s.
func (c *hostsConfig) build(registry string, s hostSpec) (Host, error) {
	// Per-host options name the host requests go to; for the registry
	// itself they may also name the registry (docker.io for
	// registry-1.docker.io).
	keys := []string{strings.ToLower(s.host)}
	if s.host == "" {
		s.host = registry
		if strings.EqualFold(registry, "docker.io") {
			s.host, s.scheme = dockerHubHost, "https"
		}
		keys = slices.Compact([]string{strings.ToLower(s.host), strings.ToLower(registry)})
	}
	ts, plain := s.tls, false
	var extra http.Header
	for _, k := range keys {
		ts = ts.merge(c.tls[k])
		plain = plain || c.plain[k]
		for name, vs := range c.headers[k] {
			if extra == nil {
				extra = http.Header{}
			}
			extra[name] = append(extra[name], vs...)
		}
	}
	if s.scheme == "" {
		switch {
		case plain:
			s.scheme = "http"
		case ts.secures():
			s.scheme = "https"
		case isLoopback(s.host) && portOf(s.host) != "443":
			s.scheme = "http"
		default:
			s.scheme = "https"
		}
	}
	if s.path == "" {
		s.path = "/v2"
	}
	var header http.Header
	if len(s.header) > 0 || len(extra) > 0 {
		header = s.header.Clone()
		if header == nil {
			header = http.Header{}
		}
		for name, vs := range extra {
			header[name] = append(header[name], vs...)
		}
	}
	client, err := c.client(ts)
	if err != nil {
		return Host{}, fmt.Errorf("host %s: %w", s.host, err)
	}
	return Host{
		Scheme:       s.scheme,
		Host:         s.host,
		Path:         s.path,
		Capabilities: s.caps,
		Header:       header,
		Client:       client,
	}, nil
}

// tlsSettings are a host's TLS and dial settings.
type tlsSettings struct {
	caFiles     []string
	caPEM       [][]byte
	clientPairs [][2]string // cert file, key file ("" for the cert file)
	skipVerify  bool
	dialTimeout time.Duration
}

// secures reports whether s configures TLS.
func (s tlsSettings) secures() bool {
	return len(s.caFiles) > 0 || len(s.caPEM) > 0 || len(s.clientPairs) > 0 || s.skipVerify
}

func (s tlsSettings) empty() bool { return !s.secures() && s.dialTimeout == 0 }

// merge returns s with o's settings added; o's dial timeout wins when set.
func (s tlsSettings) merge(o tlsSettings) tlsSettings {
	return tlsSettings{
		caFiles:     append(slices.Clip(s.caFiles), o.caFiles...),
		caPEM:       append(slices.Clip(s.caPEM), o.caPEM...),
		clientPairs: append(slices.Clip(s.clientPairs), o.clientPairs...),
		skipVerify:  s.skipVerify || o.skipVerify,
		dialTimeout: cmpOr(o.dialTimeout, s.dialTimeout),
	}
}

func cmpOr(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

// key identifies the settings; stamp identifies the files' versions.
func (s tlsSettings) key() (key, stamp string, err error) {
	var k, st strings.Builder
	file := func(f string) error {
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("certificate file: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		fmt.Fprintf(&st, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		return nil
	}
	for _, f := range s.caFiles {
		fmt.Fprintf(&k, "ca=%q;", f)
		if err := file(f); err != nil {
			return "", "", err
		}
	}
	for _, p := range s.caPEM {
		sum := sha256.Sum256(p)
		fmt.Fprintf(&k, "pem=%s;", hex.EncodeToString(sum[:]))
	}
	for _, pair := range s.clientPairs {
		fmt.Fprintf(&k, "client=%q,%q;", pair[0], pair[1])
		for _, f := range pair {
			if f == "" {
				continue
			}
			if err := file(f); err != nil {
				return "", "", err
			}
		}
	}
	fmt.Fprintf(&k, "skip=%t;dial=%s", s.skipVerify, s.dialTimeout)
	return k.String(), st.String(), nil
}

// tlsConfig builds the tls.Config of s, reading its files.
func (s tlsSettings) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.skipVerify}
	if len(s.caFiles) > 0 || len(s.caPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range s.caFiles {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("CA file: %w: %w", err, errdefs.ErrInvalidArgument)
			}
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("CA file %s: no PEM certificate: %w", f, errdefs.ErrInvalidArgument)
			}
		}
		for i, p := range s.caPEM {
			if !pool.AppendCertsFromPEM(p) {
				return nil, fmt.Errorf("CA #%d: no PEM certificate: %w", i+1, errdefs.ErrInvalidArgument)
			}
		}
		cfg.RootCAs = pool
	}
	for _, pair := range s.clientPairs {
		certPEM, err := os.ReadFile(pair[0])
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		keyPEM := certPEM
		if pair[1] != "" {
			if keyPEM, err = os.ReadFile(pair[1]); err != nil {
				return nil, fmt.Errorf("client key: %w: %w", err, errdefs.ErrInvalidArgument)
			}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %v: %w", pair[0], err, errdefs.ErrInvalidArgument)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	return cfg, nil
}

// client returns the cached client for s, building it when s is new or
// its files changed. It returns nil for empty settings.
func (c *hostsConfig) client(s tlsSettings) (*http.Client, error) {
	if s.empty() {
		return nil, nil
	}
	key, stamp, err := s.key()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.clients[key]; cc != nil && cc.stamp == stamp {
		return cc.client, nil
	}
	cfg, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	if old := c.clients[key]; old != nil {
		old.client.CloseIdleConnections()
	}
	hc := &http.Client{Transport: newTransport(cfg, s.dialTimeout)}
	c.clients[key] = &cachedClient{stamp: stamp, client: hc}
	return hc, nil
}

// newTransport returns a pooled transport: HTTP/2 when the server offers
// it, bounded dial, handshake and response-header waits, no limit on how
// long a body takes. cfg nil means the default TLS settings; dial <= 0
// means DefaultDialTimeout.
func newTransport(cfg *tls.Config, dial time.Duration) *http.Transport {
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	d := &net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       cfg,
		TLSHandshakeTimeout:   DefaultTLSHandshakeTimeout,
		ResponseHeaderTimeout: DefaultResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   DefaultMaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// sharedClient is the client of hosts that have none of their own.
var sharedClient = sync.OnceValue(func() *http.Client {
	return &http.Client{Transport: newTransport(nil, 0)}
})
