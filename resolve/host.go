package resolve

import (
	"net"
	"net/http"
	"path"
	"strings"
)

// Capability is what a [Host] may be asked to do, as bit flags.
type Capability uint8

// Capabilities of a host, as hosts.toml names them.
const (
	// CapabilityPull: the host serves blobs, and manifests by digest.
	CapabilityPull Capability = 1 << iota
	// CapabilityResolve: the host turns tags into digests. A mirror that
	// may serve stale tags should not have it.
	CapabilityResolve
	// CapabilityPush: the host accepts uploads. pullkit never pushes; the
	// flag is kept so that hosts.toml files round-trip.
	CapabilityPush

	// CapabilityAll is every capability, what a Host with zero
	// Capabilities has.
	CapabilityAll = CapabilityPull | CapabilityResolve | CapabilityPush
)

// Has reports whether c includes every capability of want. A zero c
// counts as [CapabilityAll].
func (c Capability) Has(want Capability) bool {
	if c == 0 {
		c = CapabilityAll
	}
	return c&want == want
}

// String returns the capabilities as hosts.toml lists them, joined by
// "|": "pull|resolve". Zero is "pull|resolve|push".
func (c Capability) String() string {
	if c == 0 {
		c = CapabilityAll
	}
	var parts []string
	for _, f := range []struct {
		c    Capability
		name string
	}{{CapabilityPull, "pull"}, {CapabilityResolve, "resolve"}, {CapabilityPush, "push"}} {
		if c&f.c != 0 {
			parts = append(parts, f.name)
		}
	}
	return strings.Join(parts, "|")
}

// Host is one endpoint that serves a registry's content: the registry
// itself or a mirror.
type Host struct {
	// Scheme is "https" or "http". "" means "https".
	Scheme string
	// Host is the host, with an optional port, that requests go to:
	// "registry-1.docker.io", "mirror.example:5000", "[::1]:5000".
	Host string
	// Path is the root of the registry API on the host. "" means "/v2".
	// A path below /v2, such as "/v2/proxy" for a pull-through cache that
	// keeps Docker Hub under a project, puts repositories under that
	// prefix: library/alpine is proxy/library/alpine on that host, in the
	// URLs and in the token scopes asked for. Any other path, such as
	// "/api/registry", is the API root as it is.
	Path string
	// Capabilities says what the host is used for. Zero means all of
	// them ([CapabilityAll]).
	Capabilities Capability
	// Header is added to every request sent to the host, never to another
	// host a request is redirected to. Nil means no extra headers.
	Header http.Header
	// Client sends the host's requests, with its own transport and TLS
	// settings; the resolver adds authentication (see [WithKeychain]).
	// Nil means the resolver's shared client: see [WithClient]. Reuse one
	// Client across calls of a [HostsFunc], so that connections and
	// tokens are reused.
	Client *http.Client
}

// String returns the host as errors name it: its Host, followed by its
// Path when that is not "/v2", as in "mirror.example/v2/proxy".
func (h Host) String() string {
	if p := h.apiPath(); p != "/v2" {
		return h.Host + p
	}
	return h.Host
}

// apiPath returns Path cleaned, with "" meaning "/v2".
func (h Host) apiPath() string {
	if h.Path == "" {
		return "/v2"
	}
	return path.Clean("/" + h.Path)
}

// endpoint returns the path prefix to give package fetch and the
// repository name on this host for repo: "/v2" and "proxy/library/alpine"
// for a Path of "/v2/proxy".
func (h Host) endpoint(repo string) (prefix, hostRepo string) {
	p := h.apiPath()
	if sub, ok := strings.CutPrefix(p, "/v2/"); ok {
		return "/v2", sub + "/" + repo
	}
	return p, repo
}

// plainHTTP reports whether the host is spoken to without TLS.
func (h Host) plainHTTP() bool { return strings.EqualFold(h.Scheme, "http") }

// HostsFunc returns the hosts that serve registry (the registry part of a
// reference, such as "docker.io" or "localhost:5000"), in the order they
// are tried: mirrors first, the registry itself last. [Hosts] makes one.
// An empty list means no host serves the registry; hosts with an empty
// Host are skipped. A HostsFunc is called
// for every Resolve and Fetcher call and must be safe for concurrent use.
type HostsFunc func(registry string) ([]Host, error)

// dockerHubHost is the host that serves Docker Hub's registry API.
const dockerHubHost = "registry-1.docker.io"

// isLoopback reports whether hostport ("localhost:5000", "127.0.0.1",
// "[::1]:5000") names this machine: localhost or a loopback address.
func isLoopback(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// portOf returns the port of hostport, or "".
func portOf(hostport string) string {
	if _, port, err := net.SplitHostPort(hostport); err == nil {
		return port
	}
	return ""
}
