package resolve_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// tlsFront starts an HTTPS server on 127.0.0.1, with httptest's
// certificate, that passes requests to reg. With clientCAs it requires a
// client certificate they signed. It returns the server and its
// certificate as PEM.
func tlsFront(t *testing.T, reg *registrytest.Registry, clientCAs *x509.CertPool) (*httptest.Server, []byte) {
	t.Helper()
	u, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(u))
	if clientCAs != nil {
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// clientCA makes a CA and a client certificate it signed, and writes
// client.cert, client.key and combined.pem (certificate and key) to dir.
func clientCA(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "resolve test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "resolve test client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	write(t, filepath.Join(dir, "client.cert"), certPEM)
	write(t, filepath.Join(dir, "client.key"), keyPEM)
	write(t, filepath.Join(dir, "combined.pem"), append(append([]byte{}, certPEM...), keyPEM...))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hostDir returns the directory name containerd uses for host:port.
func hostDir(hostport string) string {
	i := strings.LastIndexByte(hostport, ':')
	return hostport[:i] + "_" + hostport[i+1:] + "_"
}

func TestTLSServerCertificate(t *testing.T) {
	reg := registrytest.NewT(t)
	img, _ := pushImage(reg, "acme/app", "1.0", 1)
	srv, caPEM := tlsFront(t, reg, nil)
	host := hostOf(srv.URL)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	write(t, caFile, caPEM)

	tomlDir := t.TempDir()
	write(t, filepath.Join(tomlDir, host, "my-ca.pem"), caPEM)
	write(t, filepath.Join(tomlDir, host, "hosts.toml"), []byte(`server = "https://`+host+`"
ca = "my-ca.pem"
`))
	legacyDir := t.TempDir()
	write(t, filepath.Join(legacyDir, hostDir(host), "ca.crt"), caPEM)
	skipDir := t.TempDir()
	write(t, filepath.Join(skipDir, host, "hosts.toml"), []byte(`server = "https://`+host+`"
skip_verify = true
`))

	tests := []struct {
		name    string
		hosts   resolve.HostsFunc
		wantErr string
	}{
		{"WithCAFile", resolve.Hosts(resolve.WithCAFile(host, caFile)), ""},
		{"WithCA", resolve.Hosts(resolve.WithCA(host, caPEM)), ""},
		{"WithInsecureSkipVerify", resolve.Hosts(resolve.WithInsecureSkipVerify(host)), ""},
		{"hosts.toml ca", resolve.Hosts(resolve.WithHostsDir(tomlDir)), ""},
		{"hosts.toml skip_verify", resolve.Hosts(resolve.WithHostsDir(skipDir)), ""},
		{"certs.d ca.crt", resolve.Hosts(resolve.WithHostsDir(legacyDir)), ""},
		{"untrusted", func(string) ([]resolve.Host, error) {
			return []resolve.Host{{Scheme: "https", Host: host}}, nil
		}, "is not trusted: add its CA"},
		{"TLS to a plain HTTP server", func(string) ([]resolve.Host, error) {
			return []resolve.Host{{Scheme: "https", Host: reg.Host()}}, nil
		}, "speaks plain HTTP"},
		{"plain HTTP to a TLS server", func(string) ([]resolve.Host, error) {
			return []resolve.Host{{Scheme: "http", Host: host}}, nil
		}, "400 Bad Request (" + host + " was asked in plain HTTP and refused it: if it serves TLS, drop resolve.WithPlainHTTP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resolve.New(resolve.WithHosts(tt.hosts), resolve.WithRetries(0))
			if tt.wantErr == "" {
				pullAll(t, r, host+"/acme/app:1.0", img)
				return
			}
			_, _, err := r.Resolve(testCtx(t), host+"/acme/app:1.0")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Resolve() error = %v, want one that says %q", err, tt.wantErr)
			}
		})
	}
}

func TestTLSClientCertificate(t *testing.T) {
	reg := registrytest.NewT(t)
	img, _ := pushImage(reg, "acme/app", "1.0", 1)
	certs := t.TempDir()
	pool := clientCA(t, certs)
	srv, caPEM := tlsFront(t, reg, pool)
	host := hostOf(srv.URL)
	write(t, filepath.Join(certs, "ca.pem"), caPEM)
	cert, key, combined := filepath.Join(certs, "client.cert"), filepath.Join(certs, "client.key"), filepath.Join(certs, "combined.pem")

	pairDir := t.TempDir()
	write(t, filepath.Join(pairDir, host, "hosts.toml"), []byte(`server = "https://`+host+`"
ca = "`+filepath.Join(certs, "ca.pem")+`"
client = [["`+cert+`", "`+key+`"]]
`))
	combinedDir := t.TempDir()
	write(t, filepath.Join(combinedDir, hostDir(host), "hosts.toml"), []byte(`server = "https://`+host+`"
ca = ["`+filepath.Join(certs, "ca.pem")+`"]
client = "`+combined+`"
`))
	legacyDir := t.TempDir()
	for name, src := range map[string]string{"ca.crt": filepath.Join(certs, "ca.pem"), "client.cert": cert, "client.key": key} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(legacyDir, host, name), b)
	}

	tests := []struct {
		name   string
		hosts  resolve.HostsFunc
		wantOK bool
	}{
		{"no client certificate", resolve.Hosts(resolve.WithCA(host, caPEM)), false},
		{"WithClientCertFiles", resolve.Hosts(resolve.WithCA(host, caPEM), resolve.WithClientCertFiles(host, cert, key)), true},
		{"WithClientCertFiles, key in the certificate file", resolve.Hosts(resolve.WithCA(host, caPEM), resolve.WithClientCertFiles(host, combined, "")), true},
		{"hosts.toml cert and key pair", resolve.Hosts(resolve.WithHostsDir(pairDir)), true},
		{"hosts.toml combined file", resolve.Hosts(resolve.WithHostsDir(combinedDir)), true},
		{"certs.d client.cert and client.key", resolve.Hosts(resolve.WithHostsDir(legacyDir)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resolve.New(resolve.WithHosts(tt.hosts), resolve.WithRetries(0))
			if tt.wantOK {
				pullAll(t, r, host+"/acme/app:1.0", img)
				return
			}
			if _, _, err := r.Resolve(testCtx(t), host+"/acme/app:1.0"); err == nil {
				t.Fatal("Resolve() succeeded without a client certificate")
			}
		})
	}
}
