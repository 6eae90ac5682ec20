package unpack_test

import (
	"fmt"

	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/unpack"
)

func ExampleChainID() {
	// The diffIDs of an image's layers, bottom first, as its config lists
	// them in rootfs.diff_ids.
	diffIDs := []digest.Digest{
		digest.FromString("layer a"),
		digest.FromString("layer b"),
	}
	// The bottom layer's chainID is its diffID; each next one hashes the
	// chainID below with the layer's diffID.
	for _, c := range unpack.ChainIDs(diffIDs) {
		fmt.Println(c)
	}
	fmt.Println(unpack.ChainID(diffIDs) == digest.FromString(diffIDs[0].String()+" "+diffIDs[1].String()))
	// Output:
	// sha256:8a74c5338f1ca6b4b751802e195c85cd48c6d54e5f38d19a4e5ea902baa60af7
	// sha256:96097a2f877d2a7d46e93242c3e704909aa0d4486b8e4a03c8d91739d51f35c8
	// true
}
