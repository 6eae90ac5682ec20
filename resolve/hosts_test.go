package resolve_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// brief is what tests compare of a Host.
type brief struct {
	Scheme, Host, Path string
	Caps               resolve.Capability
	Client             bool
}

func briefs(hosts []resolve.Host) []brief {
	out := make([]brief, len(hosts))
	for i, h := range hosts {
		out[i] = brief{h.Scheme, h.Host, h.Path, h.Capabilities, h.Client != nil}
	}
	return out
}

const pullResolve = resolve.CapabilityPull | resolve.CapabilityResolve

func TestHostsDefaults(t *testing.T) {
	all := resolve.CapabilityAll
	tests := []struct {
		name, registry string
		opts           []resolve.HostOption
		want           []brief
	}{
		{"docker hub", "docker.io", nil, []brief{{"https", "registry-1.docker.io", "/v2", all, false}}},
		{"other registry", "ghcr.io", nil, []brief{{"https", "ghcr.io", "/v2", all, false}}},
		{"registry with port", "registry.example:5000", nil, []brief{{"https", "registry.example:5000", "/v2", all, false}}},
		{"localhost with port", "localhost:5000", nil, []brief{{"http", "localhost:5000", "/v2", all, false}}},
		{"localhost", "localhost", nil, []brief{{"http", "localhost", "/v2", all, false}}},
		{"localhost on 443", "localhost:443", nil, []brief{{"https", "localhost:443", "/v2", all, false}}},
		{"IPv4 loopback", "127.0.0.1:5000", nil, []brief{{"http", "127.0.0.1:5000", "/v2", all, false}}},
		{"other IPv4 loopback", "127.1.2.3:5000", nil, []brief{{"http", "127.1.2.3:5000", "/v2", all, false}}},
		{"IPv6 loopback", "[::1]:5000", nil, []brief{{"http", "[::1]:5000", "/v2", all, false}}},
		{"plain HTTP option", "registry.example:5000", []resolve.HostOption{resolve.WithPlainHTTP("Registry.Example:5000")},
			[]brief{{"http", "registry.example:5000", "/v2", all, false}}},
		{"options by registry name apply to Docker Hub's host", "docker.io", []resolve.HostOption{resolve.WithInsecureSkipVerify("docker.io")},
			[]brief{{"https", "registry-1.docker.io", "/v2", all, true}}},
		{"TLS settings make a loopback host https", "127.0.0.1:5000", []resolve.HostOption{resolve.WithInsecureSkipVerify("127.0.0.1:5000")},
			[]brief{{"https", "127.0.0.1:5000", "/v2", all, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts, err := resolve.Hosts(tt.opts...)(tt.registry)
			if err != nil {
				t.Fatal(err)
			}
			if got := briefs(hosts); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Hosts()(%q) = %+v, want %+v", tt.registry, got, tt.want)
			}
		})
	}
	if _, err := resolve.Hosts()(""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Hosts()(\"\") error = %v, want InvalidArgument", err)
	}
}

func TestHostsMirrors(t *testing.T) {
	up := brief{"https", "registry.example", "/v2", resolve.CapabilityAll, false}
	tests := []struct {
		name    string
		opts    []resolve.HostOption
		want    []brief
		wantErr error
	}{
		{"host only", []resolve.HostOption{resolve.WithMirrors("registry.example", "mirror.example")},
			[]brief{{"https", "mirror.example", "/v2", pullResolve, false}, up}, nil},
		{"in order, several calls", []resolve.HostOption{
			resolve.WithMirrors("registry.example", "b.example", "a.example"),
			resolve.WithMirrors("Registry.Example", "c.example"),
		}, []brief{
			{"https", "b.example", "/v2", pullResolve, false},
			{"https", "a.example", "/v2", pullResolve, false},
			{"https", "c.example", "/v2", pullResolve, false},
			up,
		}, nil},
		{"scheme and port", []resolve.HostOption{resolve.WithMirrors("registry.example", "http://mirror.example:5000")},
			[]brief{{"http", "mirror.example:5000", "/v2", pullResolve, false}, up}, nil},
		{"path under /v2", []resolve.HostOption{resolve.WithMirrors("registry.example", "https://harbor.example/v2/proxy/")},
			[]brief{{"https", "harbor.example", "/v2/proxy", pullResolve, false}, up}, nil},
		{"other path", []resolve.HostOption{resolve.WithMirrors("registry.example", "https://mirror.example/sub")},
			[]brief{{"https", "mirror.example", "/sub/v2", pullResolve, false}, up}, nil},
		{"loopback mirror", []resolve.HostOption{resolve.WithMirrors("registry.example", "127.0.0.1:5000")},
			[]brief{{"http", "127.0.0.1:5000", "/v2", pullResolve, false}, up}, nil},
		{"plain HTTP mirror", []resolve.HostOption{resolve.WithMirrors("registry.example", "mirror.example:5000"), resolve.WithPlainHTTP("mirror.example:5000")},
			[]brief{{"http", "mirror.example:5000", "/v2", pullResolve, false}, up}, nil},
		{"explicit scheme wins", []resolve.HostOption{resolve.WithMirrors("registry.example", "https://mirror.example:5000"), resolve.WithPlainHTTP("mirror.example:5000")},
			[]brief{{"https", "mirror.example:5000", "/v2", pullResolve, false}, up}, nil},
		{"without fallback", []resolve.HostOption{resolve.WithMirrors("registry.example", "mirror.example"), resolve.WithoutFallback("registry.example")},
			[]brief{{"https", "mirror.example", "/v2", pullResolve, false}}, nil},
		{"mirrors of another registry", []resolve.HostOption{resolve.WithMirrors("other.example", "mirror.example")}, []brief{up}, nil},
		{"bad scheme", []resolve.HostOption{resolve.WithMirrors("registry.example", "ftp://mirror.example")}, nil, errdefs.ErrInvalidArgument},
		{"no host", []resolve.HostOption{resolve.WithMirrors("registry.example", "https://")}, nil, errdefs.ErrInvalidArgument},
		{"user info", []resolve.HostOption{resolve.WithMirrors("registry.example", "https://u:p@mirror.example")}, nil, errdefs.ErrInvalidArgument},
		{"query", []resolve.HostOption{resolve.WithMirrors("registry.example", "https://mirror.example/?x=1")}, nil, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts, err := resolve.Hosts(tt.opts...)("registry.example")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), "u:p") {
					t.Errorf("error %q shows the mirror's password", err)
				}
				return
			}
			if got := briefs(hosts); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("hosts = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHostsHeader(t *testing.T) {
	hosts, err := resolve.Hosts(
		resolve.WithMirrors("registry.example", "mirror.example"),
		resolve.WithHeader("mirror.example", http.Header{"X-Mirror": {"1"}}),
		resolve.WithHeader("mirror.example", http.Header{"X-Mirror": {"2"}}),
		resolve.WithHeader("registry.example", http.Header{"User-Agent": {"test"}}),
	)("registry.example")
	if err != nil {
		t.Fatal(err)
	}
	if got := hosts[0].Header["X-Mirror"]; !reflect.DeepEqual(got, []string{"1", "2"}) {
		t.Errorf("mirror X-Mirror = %q, want [1 2]", got)
	}
	if hosts[0].Header.Get("User-Agent") != "" || hosts[1].Header.Get("User-Agent") != "test" || hosts[1].Header.Get("X-Mirror") != "" {
		t.Errorf("headers = %v and %v, want each host's own", hosts[0].Header, hosts[1].Header)
	}
}

func TestHostHeaderOnTheWire(t *testing.T) {
	reg := registrytest.NewT(t)
	img, _ := pushImage(reg, "acme/app", "1.0", 1)
	var mu sync.Mutex
	seen := map[string]string{}
	srv := front(t, reg.URL(), func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		seen[r.Method+" "+r.URL.Path] = r.Header.Get("X-Mirror-Token")
		return false
	}, nil)
	mirror := hostOf(srv.URL)
	r := resolve.New(resolve.WithHosts(resolve.Hosts(
		resolve.WithMirrors("registry.example", srv.URL),
		resolve.WithoutFallback("registry.example"),
		resolve.WithHeader(mirror, http.Header{"X-Mirror-Token": {"t1"}}),
	)))
	pullAll(t, r, "registry.example/acme/app:1.0", img)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 3 {
		t.Fatalf("the mirror saw %v, want the manifest and the blobs", seen)
	}
	for req, v := range seen {
		if v != "t1" {
			t.Errorf("%s carried X-Mirror-Token %q, want t1", req, v)
		}
	}
}

func TestCapability(t *testing.T) {
	tests := []struct {
		c         resolve.Capability
		want      string
		pull, res bool
	}{
		{0, "pull|resolve|push", true, true},
		{resolve.CapabilityPull, "pull", true, false},
		{pullResolve, "pull|resolve", true, true},
		{resolve.CapabilityPush, "push", false, false},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("Capability(%d).String() = %q, want %q", tt.c, got, tt.want)
		}
		if tt.c.Has(resolve.CapabilityPull) != tt.pull || tt.c.Has(resolve.CapabilityResolve) != tt.res {
			t.Errorf("Capability(%d).Has() wrong", tt.c)
		}
	}
}

func TestHostString(t *testing.T) {
	tests := []struct {
		h    resolve.Host
		want string
	}{
		{resolve.Host{Host: "r.example"}, "r.example"},
		{resolve.Host{Host: "r.example", Path: "/v2"}, "r.example"},
		{resolve.Host{Host: "r.example", Path: "/v2/proxy/"}, "r.example/v2/proxy"},
		{resolve.Host{Host: "r.example", Path: "/"}, "r.example/"},
	}
	for _, tt := range tests {
		if got := tt.h.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.h, got, tt.want)
		}
	}
}

// writeHosts writes content as dir/name/hosts.toml.
func writeHosts(t *testing.T, dir, name, content string) {
	t.Helper()
	write(t, filepath.Join(dir, name, "hosts.toml"), []byte(content))
}

func TestHostsDirOrderAndFields(t *testing.T) {
	dir := t.TempDir()
	writeHosts(t, dir, "registry.example", `
server = "https://registry.example"
capabilities = ["pull", "resolve"]

[host."https://z.example"]
  capabilities = ["pull"]

[host."https://m.example"]
  capabilities = ["Pull", "resolve"]
  skip_verify = true
  dial_timeout = "3s"
  [host."https://m.example".header]
    x-custom = "1"
    x-list = ["a", "b"]

[host."https://a.example:8443/mirror"]
  override_path = true

[host."http://b.example/v2"]

[host."c.example/sub"]
`)
	hosts, err := resolve.Hosts(resolve.WithHostsDir(dir))("registry.example")
	if err != nil {
		t.Fatal(err)
	}
	want := []brief{
		{"https", "z.example", "/v2", resolve.CapabilityPull, false},
		{"https", "m.example", "/v2", pullResolve, true},
		{"https", "a.example:8443", "/mirror", resolve.CapabilityAll, false},
		{"http", "b.example", "/v2", resolve.CapabilityAll, false},
		{"https", "c.example", "/sub/v2", resolve.CapabilityAll, false},
		{"https", "registry.example", "/v2", pullResolve, false},
	}
	if got := briefs(hosts); !reflect.DeepEqual(got, want) {
		t.Fatalf("hosts =\n%+v\nwant\n%+v", got, want)
	}
	if got := hosts[1].Header; !reflect.DeepEqual(got, http.Header{"X-Custom": {"1"}, "X-List": {"a", "b"}}) {
		t.Errorf("header = %v", got)
	}
}

func TestHostsDirOrderForms(t *testing.T) {
	tests := []struct {
		name, toml string
		want       []string
	}{
		{"dotted keys and inline tables", `
host."https://y.example".capabilities = ["pull"]
host."https://x.example" = { capabilities = ["resolve"] }
host."https://y.example".skip_verify = true
`, []string{"y.example", "x.example", "registry.example"}},
		{"host table with inline tables", `
[host]
"https://w.example" = { capabilities = ["pull"] }
"https://v.example".capabilities = ["pull"]
"https://u.example" = {}
`, []string{"w.example", "v.example", "u.example", "registry.example"}},
		{"sub-tables first", `
[host."https://q.example".header]
  x = "1"
[host."https://p.example"]
[host."https://q.example"]
  capabilities = ["pull"]
`, []string{"q.example", "p.example", "registry.example"}},
		{"server only", `server = "http://registry.example:5000"`, []string{"registry.example:5000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeHosts(t, dir, "registry.example", tt.toml)
			hosts, err := resolve.Hosts(resolve.WithHostsDir(dir))("registry.example")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hosts {
				got = append(got, h.Host)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("hosts = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHostsDirLookup(t *testing.T) {
	dir := t.TempDir()
	writeHosts(t, dir, "_default", `[host."https://default-mirror.example"]`)
	writeHosts(t, dir, "own.example", `[host."https://own-mirror.example"]`)
	writeHosts(t, dir, "port.example_5000_", `[host."https://underscore.example"]`)
	writeHosts(t, dir, "colon.example:5000", `[host."https://colon.example"]`)
	write(t, filepath.Join(dir, "certs.example", "ca.crt"), []byte("not used: only read when a client is built"))

	tests := []struct {
		name, registry string
		opts           []resolve.HostOption
		want           []string
	}{
		{"own directory", "own.example", nil, []string{"own-mirror.example", "own.example"}},
		{"own directory wins over WithMirrors", "own.example", []resolve.HostOption{resolve.WithMirrors("own.example", "option.example")},
			[]string{"own-mirror.example", "own.example"}},
		{"host_port_ directory", "port.example:5000", nil, []string{"underscore.example", "port.example:5000"}},
		{"host:port directory", "colon.example:5000", nil, []string{"colon.example", "colon.example:5000"}},
		{"_default", "other.example", nil, []string{"default-mirror.example", "other.example"}},
		{"_default for Docker Hub", "docker.io", nil, []string{"default-mirror.example", "registry-1.docker.io"}},
		{"WithMirrors wins over _default", "other.example", []resolve.HostOption{resolve.WithMirrors("other.example", "option.example")},
			[]string{"option.example", "other.example"}},
		{"WithoutFallback wins over _default", "other.example", []resolve.HostOption{resolve.WithoutFallback("other.example")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts, err := resolve.Hosts(append(tt.opts, resolve.WithHostsDir(dir))...)(tt.registry)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hosts {
				got = append(got, h.Host)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("hosts = %q, want %q", got, tt.want)
			}
		})
	}

	// A directory without hosts.toml gives certificates to the registry
	// and keeps the mirrors of the options; here the CA file is not PEM.
	_, err := resolve.Hosts(resolve.WithHostsDir(dir), resolve.WithMirrors("certs.example", "m.example"))("certs.example")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "ca.crt") {
		t.Errorf("error = %v, want InvalidArgument naming ca.crt", err)
	}
}

func TestHostsDirErrors(t *testing.T) {
	tests := []struct {
		name, toml, contains string
	}{
		{"not TOML", `[host."x`, "hosts.toml"},
		{"unknown capability", `capabilities = ["fetch"]`, `unknown capability "fetch"`},
		{"capabilities not a list", `capabilities = "pull"`, "hosts.toml"},
		{"ca not a string", `ca = 1`, "ca:"},
		{"ca list with a number", `ca = ["a.pem", 2]`, "ca:"},
		{"client pair of three", `client = [["a", "b", "c"]]`, "pair"},
		{"client number", `client = 3`, "client:"},
		{"header number", "[header]\nx = 1", "header"},
		{"dial_timeout", `dial_timeout = "soon"`, "dial_timeout"},
		{"bad scheme", `server = "ftp://registry.example"`, "http or https"},
		{"empty host", `[host."https://"]`, "no host"},
		{"missing CA file", `ca = "missing.pem"`, "missing.pem"},
		{"user info", `[host."https://u:secret@mirror.example"]`, "user info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeHosts(t, dir, "registry.example", tt.toml)
			_, err := resolve.Hosts(resolve.WithHostsDir(dir))("registry.example")
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error = %v, want InvalidArgument", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows a password", err)
			}
			if !strings.Contains(err.Error(), tt.contains) || !strings.Contains(err.Error(), "registry.example") {
				t.Errorf("error %q does not name %q and the registry", err, tt.contains)
			}
		})
	}
}

func TestHostsDirIsReadOnEveryCall(t *testing.T) {
	dir := t.TempDir()
	fn := resolve.Hosts(resolve.WithHostsDir(dir))
	hosts, err := fn("registry.example")
	if err != nil || len(hosts) != 1 {
		t.Fatalf("hosts = %v, %v; want the registry alone", hosts, err)
	}
	writeHosts(t, dir, "registry.example", `[host."https://mirror.example"]`)
	hosts, err = fn("registry.example")
	if err != nil || len(hosts) != 2 || hosts[0].Host != "mirror.example" {
		t.Fatalf("hosts after edit = %v, %v; want the mirror first", hosts, err)
	}
}

func TestHostsReuseClients(t *testing.T) {
	reg := registrytest.NewT(t)
	_, caPEM := tlsFront(t, reg, nil)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	write(t, ca, caPEM)
	fn := resolve.Hosts(resolve.WithCAFile("registry.example", ca), resolve.WithMirrors("registry.example", "plain.example"))
	first, err := fn("registry.example")
	if err != nil {
		t.Fatal(err)
	}
	second, err := fn("registry.example")
	if err != nil {
		t.Fatal(err)
	}
	if first[1].Client == nil || first[1].Client != second[1].Client {
		t.Error("the client of a host with TLS settings was built again")
	}
	if first[0].Client != nil {
		t.Error("a host without TLS settings got a client of its own")
	}
	// A changed CA file gives a new client.
	write(t, ca, append(append([]byte{}, caPEM...), caPEM...))
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(ca, future, future); err != nil {
		t.Fatal(err)
	}
	third, err := fn("registry.example")
	if err != nil {
		t.Fatal(err)
	}
	if third[1].Client == first[1].Client {
		t.Error("the client was kept after its CA file changed")
	}
}
