package reference_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/reference"
)

func ExampleParse() {
	ref, err := reference.Parse("ghcr.io/acme/app:1.2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ref.Registry, ref.Repository, ref.Tag)
	// Output: ghcr.io acme/app 1.2
}

// Docker Hub names are normalized the way docker normalizes them.
func ExampleParse_dockerHub() {
	ref, err := reference.Parse("ubuntu")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ref.Registry, ref.Repository, ref.Tag)
	fmt.Println(ref.String())
	fmt.Println(ref.Familiar())
	// Output:
	// docker.io library/ubuntu latest
	// docker.io/library/ubuntu:latest
	// ubuntu:latest
}

func ExampleParse_invalid() {
	_, err := reference.Parse("Foo")
	fmt.Println(err)
	fmt.Println(errors.Is(err, errdefs.ErrInvalidArgument))
	// Output:
	// parse reference "Foo": repository name must be lowercase: invalid argument
	// true
}

// With both a tag and a digest, both are kept and the digest is what a
// registry is asked for.
func ExampleReference_Object() {
	ref, err := reference.Parse("localhost:5000/app:1.2@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ref.Name())
	fmt.Println(ref.Tag)
	fmt.Println(ref.Object())
	// Output:
	// localhost:5000/app
	// 1.2
	// sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
}

func ExampleReference_WithTag() {
	ref, err := reference.Parse("acme/app:1.2")
	if err != nil {
		log.Fatal(err)
	}
	next, err := ref.WithTag("1.3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(next.Familiar())
	// Output: acme/app:1.3
}
