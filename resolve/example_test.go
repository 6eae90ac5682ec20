package resolve_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/pullkit/pullkit/resolve"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// Resolve a tag on a registry, then read the manifest it points at.
func Example() {
	reg := registrytest.New()
	defer reg.Close()
	img := registrytest.RandomImage(1, 1, 1024)
	reg.PushImage("library/hello", "1.0", img)

	ctx := context.Background()
	r := resolve.New() // 127.0.0.1 speaks plain HTTP by default
	name, desc, err := r.Resolve(ctx, reg.Host()+"/library/hello:1.0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.TrimPrefix(name, reg.Host()+"/"))
	fmt.Println(desc.MediaType)
	fmt.Println(desc.Digest.Algorithm(), desc.Digest == img.Manifest.Digest)

	f, err := r.Fetcher(ctx, name)
	if err != nil {
		log.Fatal(err)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		log.Fatal(err)
	}
	defer rc.Close()
	manifest, err := io.ReadAll(rc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(int64(len(manifest)) == desc.Size)
	// Output:
	// library/hello:1.0
	// application/vnd.oci.image.manifest.v1+json
	// sha256 true
	// true
}

// Mirrors come first, in order; the registry itself is asked last.
func ExampleHosts() {
	hosts, err := resolve.Hosts(
		resolve.WithMirrors("docker.io", "mirror.example", "https://harbor.example/v2/proxy"),
	)("docker.io")
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range hosts {
		fmt.Println(h.Scheme, h, h.Capabilities)
	}
	// Output:
	// https mirror.example pull|resolve
	// https harbor.example/v2/proxy pull|resolve
	// https registry-1.docker.io pull|resolve|push
}

// Read containerd's hosts.toml layout, as in /etc/containerd/certs.d.
func ExampleWithHostsDir() {
	dir, err := os.MkdirTemp("", "certs.d")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	config := `server = "https://registry-1.docker.io"

[host."https://mirror-b.example"]
  capabilities = ["pull"]

[host."http://mirror-a.example:5000"]
  capabilities = ["pull", "resolve"]
`
	if err := os.MkdirAll(filepath.Join(dir, "docker.io"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "docker.io", "hosts.toml"), []byte(config), 0o644); err != nil {
		log.Fatal(err)
	}

	hosts, err := resolve.Hosts(resolve.WithHostsDir(dir))("docker.io")
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range hosts {
		fmt.Println(h.Scheme, h, h.Capabilities)
	}
	// Output:
	// https mirror-b.example pull
	// http mirror-a.example:5000 pull|resolve
	// https registry-1.docker.io pull|resolve|push
}
