package unpack_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pullkit/pullkit/unpack"
)

func ExampleDirectory() {
	ctx := context.Background()
	root, err := os.MkdirTemp("", "snapshots")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	sn, err := unpack.NewDirectory(root)
	if err != nil {
		log.Fatal(err)
	}

	// A layer: prepare an empty snapshot, fill its directory, commit it.
	mounts, err := sn.Prepare(ctx, "build", "")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mounts[0].Source, "greeting"), []byte("hello"), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := sn.Commit(ctx, "base", "build"); err != nil {
		log.Fatal(err)
	}

	// A container's root: a writable copy of the committed snapshot.
	mounts, err = sn.Prepare(ctx, "container", "base")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(mounts[0].Type, mounts[0].Options)
	b, err := os.ReadFile(filepath.Join(mounts[0].Source, "greeting"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))

	for _, key := range []string{"base", "container"} {
		info, err := sn.Stat(ctx, key)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s, parent %q\n", info.Name, info.Kind, info.Parent)
	}
	// The parent stays while a snapshot is built on it.
	fmt.Println(sn.Remove(ctx, "base") != nil)
	// Output:
	// bind [rbind rw]
	// hello
	// base: committed, parent ""
	// container: active, parent "base"
	// true
}
