package resolve

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	toml "github.com/pelletier/go-toml/v2"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
)

func TestHostEndpoint(t *testing.T) {
	tests := []struct {
		path, wantPrefix, wantRepo string
	}{
		{"", "/v2", "library/alpine"},
		{"/v2", "/v2", "library/alpine"},
		{"/v2/", "/v2", "library/alpine"},
		{"/v2/proxy", "/v2", "proxy/library/alpine"},
		{"/v2/proxy-cache/hub/", "/v2", "proxy-cache/hub/library/alpine"},
		{"v2/proxy", "/v2", "proxy/library/alpine"},
		{"/api/registry", "/api/registry", "library/alpine"},
		{"/mirror/v2", "/mirror/v2", "library/alpine"},
		{"/", "/", "library/alpine"},
	}
	for _, tt := range tests {
		prefix, repo := Host{Host: "m.example", Path: tt.path}.endpoint("library/alpine")
		if prefix != tt.wantPrefix || repo != tt.wantRepo {
			t.Errorf("endpoint with Path %q = %q, %q; want %q, %q", tt.path, prefix, repo, tt.wantPrefix, tt.wantRepo)
		}
	}
}

func TestParseHostsFileTLS(t *testing.T) {
	dir := t.TempDir()
	specs, err := parseHostsFile(dir, []byte(`
ca = "root.pem"
client = "/abs/both.pem"

[host."https://a.example"]
  ca = ["a1.pem", "/abs/a2.pem"]
  client = ["c1.pem", ["c2.cert", "c2.key"]]
  skip_verify = false
  dial_timeout = "1500ms"

[host."https://b.example"]
  skip_verify = true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []tlsSettings{
		{
			caFiles:     []string{filepath.Join(dir, "a1.pem"), "/abs/a2.pem"},
			clientPairs: [][2]string{{filepath.Join(dir, "c1.pem"), ""}, {filepath.Join(dir, "c2.cert"), filepath.Join(dir, "c2.key")}},
			dialTimeout: 1500 * time.Millisecond,
		},
		{skipVerify: true},
		{caFiles: []string{filepath.Join(dir, "root.pem")}, clientPairs: [][2]string{{"/abs/both.pem", ""}}},
	}
	if len(specs) != len(want) {
		t.Fatalf("%d hosts, want %d", len(specs), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(specs[i].tls, want[i]) {
			t.Errorf("host %d TLS = %+v, want %+v", i, specs[i].tls, want[i])
		}
	}
	if specs[2].host != "" || specs[2].caps != CapabilityAll {
		t.Errorf("server entry = %+v, want the default upstream with every capability", specs[2])
	}
}

func TestLoadCertFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"ca.crt", "b.crt", "client.cert", "client.key", "lonely.cert", "readme.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.crt"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := loadCertFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := tlsSettings{
		caFiles: []string{filepath.Join(dir, "b.crt"), filepath.Join(dir, "ca.crt")},
		clientPairs: [][2]string{
			{filepath.Join(dir, "client.cert"), filepath.Join(dir, "client.key")},
			{filepath.Join(dir, "lonely.cert"), ""},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("loadCertFiles() = %+v, want %+v", s, want)
	}
}

func TestFindHostDirRefusesPaths(t *testing.T) {
	for _, name := range []string{"../etc", "a/b", `a\b`, "..", "_default"} {
		if _, err := findHostDir(t.TempDir(), name); !errdefs.IsInvalidArgument(err) {
			t.Errorf("findHostDir(%q) error = %v, want InvalidArgument", name, err)
		}
	}
}

func TestManifestDigest(t *testing.T) {
	body := []byte(`{"schemaVersion":2,"config":{}}`)
	whole := digest.FromBytes(body)
	tests := []struct {
		name    string
		want    digest.Digest
		wantD   digest.Digest
		wantErr error
	}{
		{"no expectation", "", whole, nil},
		{"match", whole, whole, nil},
		{"sha512 match", digest.SHA512.FromBytes(body), digest.SHA512.FromBytes(body), nil},
		{"mismatch", digest.FromString("other"), "", content.ErrDigestMismatch},
	}
	for _, tt := range tests {
		got, err := manifestDigest(body, handlers.MediaTypeImageManifest, tt.want)
		if got != tt.wantD || !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: manifestDigest() = %s, %v; want %s, %v", tt.name, got, err, tt.wantD, tt.wantErr)
		}
	}
}

func TestDetectMediaType(t *testing.T) {
	tests := []struct {
		body, want string
		wantErr    error
	}{
		{`{"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}`, "application/vnd.oci.artifact.manifest.v1+json", nil},
		{`{"schemaVersion":2,"manifests":[]}`, handlers.MediaTypeImageIndex, nil},
		{`{"schemaVersion":2,"config":{},"layers":[]}`, handlers.MediaTypeImageManifest, nil},
		{`{"schemaVersion":1,"fsLayers":[]}`, handlers.MediaTypeDockerSchema1Manifest, nil},
		{`{"schemaVersion":1,"fsLayers":[],"signatures":[]}`, handlers.MediaTypeDockerSchema1SignedManifest, nil},
		{`{"schemaVersion":2}`, "", errdefs.ErrNotImplemented},
		{`<html>captive portal</html>`, "", errdefs.ErrNotImplemented},
	}
	for _, tt := range tests {
		got, err := detectMediaType([]byte(tt.body), "text/plain")
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("detectMediaType(%s) = %q, %v; want %q, %v", tt.body, got, err, tt.want, tt.wantErr)
		}
	}
}

// FuzzParseHostsFile checks that any hosts.toml is either refused with
// InvalidArgument or yields each [host] table exactly once, in an order
// hostOrder finds, followed by the server entry.
func FuzzParseHostsFile(f *testing.F) {
	for _, s := range []string{
		``,
		`server = "https://r.example"`,
		"[host.\"https://b\"]\n[host.\"https://a\"]\ncapabilities=[\"pull\"]",
		`host = { "https://x" = {}, "https://y" = { skip_verify = true } }`,
		"[host]\n\"https://w\".ca = \"c.pem\"\n\"https://v\" = {}",
		"host.\"https://q\".header.x = \"1\"\n[host.\"https://p\"]",
		"[host.\"https://m\"]\nclient = [[\"a\", \"b\"]]\noverride_path = true",
		"[[host]]\nx = 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		specs, err := parseHostsFile("/hosts", []byte(s))
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("parseHostsFile() error = %v, want InvalidArgument", err)
			}
			return
		}
		var doc struct {
			Host map[string]any `toml:"host"`
		}
		if toml.Unmarshal([]byte(s), &doc) != nil {
			t.Fatal("parseHostsFile accepted a file that does not decode")
		}
		if got, want := len(specs), len(doc.Host)+1; got != want {
			t.Fatalf("%d hosts, want %d ([host] tables and the server)", got, want)
		}
		order, err := hostOrder([]byte(s))
		if err != nil {
			t.Fatalf("hostOrder() error = %v after a successful parse", err)
		}
		for _, k := range order {
			if _, ok := doc.Host[k]; !ok {
				t.Fatalf("hostOrder() found %q, which is not a host table", k)
			}
		}
		if seen := slices.Compact(slices.Sorted(slices.Values(order))); len(seen) != len(order) {
			t.Fatalf("hostOrder() = %q has duplicates", order)
		}
		if len(order) != len(doc.Host) {
			t.Fatalf("hostOrder() = %q, tables %q", order, slices.Sorted(maps.Keys(doc.Host)))
		}
	})
}

// FuzzManifestDigest checks that the digest manifestDigest computes is
// one it accepts back, for any body and media type.
func FuzzManifestDigest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2}`), handlers.MediaTypeImageManifest)
	f.Add([]byte(`{"signatures":[{"protected":"eyJmb3JtYXRMZW5ndGgiOjEsImZvcm1hdFRhaWwiOiJmUSJ9"}]}`), handlers.MediaTypeDockerSchema1SignedManifest)
	f.Add([]byte(`{"signatures":[{"protected":"!!"}]}`), handlers.MediaTypeDockerSchema1SignedManifest)
	f.Fuzz(func(t *testing.T, body []byte, mt string) {
		d, err := manifestDigest(body, mt, "")
		if err != nil {
			t.Fatalf("manifestDigest(no expectation) error = %v", err)
		}
		if got, err := manifestDigest(body, mt, d); err != nil || got != d {
			t.Fatalf("manifestDigest(%s) = %s, %v; want it accepted", d, got, err)
		}
		if got, err := manifestDigest(body, mt, digest.FromBytes(body)); err != nil || got != digest.FromBytes(body) {
			t.Fatalf("the digest of the whole body was refused: %v", err)
		}
	})
}
