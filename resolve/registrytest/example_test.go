package registrytest_test

import (
	"fmt"
	"io"
	"log"
	"net/http"

	"github.com/pullkit/pullkit/resolve/registrytest"
)

// Start a registry, push a random image, and read its manifest back with a
// plain HTTP client.
func Example() {
	reg := registrytest.New()
	defer reg.Close()

	img := registrytest.RandomImage(1, 2, 4096)
	reg.PushImage("demo/app", "v1", img)

	req, err := http.NewRequest(http.MethodGet, reg.URL()+"/v2/demo/app/manifests/v1", nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := reg.Client().Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}

	fmt.Println(resp.Status)
	fmt.Println(resp.Header.Get("Content-Type"))
	fmt.Println(resp.Header.Get("Docker-Content-Digest") == img.Manifest.Digest.String())
	fmt.Println(string(body) == string(img.ManifestBytes))
	// Output:
	// 200 OK
	// application/vnd.oci.image.manifest.v1+json
	// true
	// true
}

// Make the next request for a blob fail with 429, then succeed.
func ExampleRegistry_Inject() {
	reg := registrytest.New()
	defer reg.Close()
	blob := reg.PushBlob("demo/app", []byte("hello"))

	reg.Inject(registrytest.Fault{
		Kind:   registrytest.FaultTooManyRequests,
		Digest: blob.Digest,
		Times:  1,
	})

	url := reg.URL() + "/v2/demo/app/blobs/" + blob.Digest.String()
	for range 2 {
		resp, err := reg.Client().Get(url)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Printf("%d Retry-After=%q\n", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	fmt.Println(reg.BlobBytesServed(blob.Digest))
	// Output:
	// 429 Retry-After="0"
	// 200 Retry-After=""
	// 5
}

// With token auth, the registry points clients at its token server.
func ExampleWithTokenAuth() {
	reg := registrytest.New(registrytest.WithTokenAuth("alice", "s3cret"))
	defer reg.Close()
	reg.PushImage("demo/app", "v1", registrytest.RandomImage(1, 1, 16))

	resp, err := reg.Client().Get(reg.URL() + "/v2/demo/app/manifests/v1")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	fmt.Println(resp.Header.Get("WWW-Authenticate") ==
		`Bearer realm="`+reg.TokenURL()+`",service="registrytest",scope="repository:demo/app:pull"`)
	// Output:
	// 401
	// true
}
