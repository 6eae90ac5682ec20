package integration

import (
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/pullkit/pullkit"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/resolve"
)

// httpsOnly is a HostsFunc that sends every request to the registry itself
// over HTTPS with the resolver's shared client, which trusts the system's
// CAs only: what a loopback registry gets when nothing says to trust it.
func httpsOnly(registry string) ([]resolve.Host, error) {
	return []resolve.Host{{Scheme: "https", Host: registry}}, nil
}

// TestPullTLS pulls from a registry that serves TLS with a certificate from a
// CA generated for the test: the pull succeeds when the CA is trusted through
// resolve.WithCA or WithCAFile (or verification is skipped), and fails with
// an unknown-authority error otherwise.
func TestPullTLS(t *testing.T) {
	ca := newCA(t, "pullkit test CA")
	other := newCA(t, "another CA")
	reg := startRegistry(t, ca.serverTLS(t))
	pushTransport := &http.Transport{TLSClientConfig: ca.clientTLS()}
	t.Cleanup(pushTransport.CloseIdleConnections)
	push := pusher{base: reg.URL, client: &http.Client{Transport: pushTransport}}

	idx := buildIndex(false, buildImage("tls-amd64", linuxAMD64, false), buildImage("tls-arm64", linuxARM64, false))
	push.index(t, "secure/app", "v1", idx)
	ref := reg.Host + "/secure/app:v1"

	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		hosts resolve.HostsFunc
		ok    bool
	}{
		{"CA trusted", resolve.Hosts(resolve.WithCA(reg.Host, ca.PEM)), true},
		{"CA file trusted", resolve.Hosts(resolve.WithCAFile(reg.Host, caFile)), true},
		{"verification skipped", resolve.Hosts(resolve.WithInsecureSkipVerify(reg.Host)), true},
		{"CA not trusted", httpsOnly, false},
		{"another CA trusted", resolve.Hosts(resolve.WithCA(reg.Host, other.PEM)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			store, names := stores[1].open(t)
			img, err := pullkit.Pull(ctx, ref, store, names,
				pullkit.WithHosts(tt.hosts),
				pullkit.WithPlatforms(platforms.OnlyStrict(linuxAMD64)))
			if tt.ok {
				if err != nil {
					t.Fatalf("Pull(%q) error = %v", ref, err)
				}
				checkPulled(t, img, store, names, ref, idx.Desc, idx.Images[0])
				return
			}
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Fatalf("Pull(%q) error = %v, want an x509.UnknownAuthorityError", ref, err)
			}
			if unknown.Cert == nil || unknown.Cert.Issuer.CommonName != "pullkit test CA" {
				t.Errorf("unknown authority for %v, want the server certificate issued by the test CA", unknown.Cert)
			}
			if all, lerr := names.List(ctx); lerr != nil || len(all) != 0 {
				t.Errorf("after a failed Pull, names = %v (%v), want none", all, lerr)
			}
		})
	}
}
