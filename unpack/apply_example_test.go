package unpack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/unpack"
)

func ExampleApply() {
	// A gzip-compressed layer with one file, as a registry would serve it.
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	body := "hello from a layer\n"
	if err := tw.WriteHeader(&tar.Header{Name: "etc/motd", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0)}); err != nil {
		log.Fatal(err)
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		log.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}
	diffID := digest.FromBytes(tarball.Bytes()) // what the image config lists
	var blob bytes.Buffer
	zw := gzip.NewWriter(&blob)
	if _, err := zw.Write(tarball.Bytes()); err != nil {
		log.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}

	root, err := os.MkdirTemp("", "rootfs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)

	res, err := unpack.Apply(context.Background(), root, &blob, unpack.WithDiffID(diffID))
	if err != nil {
		log.Fatal(err)
	}
	motd, err := os.ReadFile(filepath.Join(root, "etc", "motd"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(motd))
	fmt.Println("diffID verified:", res.DiffID == diffID)
	fmt.Println("uncompressed bytes:", res.Size)
	// Output:
	// hello from a layer
	// diffID verified: true
	// uncompressed bytes: 2048
}
