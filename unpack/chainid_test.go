package unpack

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

func TestChainID(t *testing.T) {
	// Computed outside Go, with Python's hashlib, from the definition.
	var (
		a   = digest.Digest("sha256:8a74c5338f1ca6b4b751802e195c85cd48c6d54e5f38d19a4e5ea902baa60af7") // sha256("layer a")
		b   = digest.Digest("sha256:4660645c73f48eb8f67e661ea54842f9fabb1ae261238e0538d1b952b00863f9") // sha256("layer b")
		c   = digest.Digest("sha256:63faee8dfdaa1586f6f474a3e8b27d8aeb7ebde13392b7af762889d51793799a") // sha256("layer c")
		ab  = digest.Digest("sha256:96097a2f877d2a7d46e93242c3e704909aa0d4486b8e4a03c8d91739d51f35c8")
		abc = digest.Digest("sha256:eb60e3bb7bee074fb571fcbd9d3494f1ab5477da651e899915c6ee6bfb985b4f")
	)
	tests := []struct {
		name    string
		diffIDs []digest.Digest
		want    digest.Digest
		chain   []digest.Digest
	}{
		{"no layers", nil, "", nil},
		{"one layer is its diffID", []digest.Digest{a}, a, []digest.Digest{a}},
		{"two layers", []digest.Digest{a, b}, ab, []digest.Digest{a, ab}},
		{"three layers", []digest.Digest{a, b, c}, abc, []digest.Digest{a, ab, abc}},
		{"order matters", []digest.Digest{b, a}, fromDefinition(b, a), []digest.Digest{b, fromDefinition(b, a)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ChainID(tt.diffIDs); got != tt.want {
				t.Errorf("ChainID() = %s, want %s", got, tt.want)
			}
			if got := ChainIDs(tt.diffIDs); !slices.Equal(got, tt.chain) {
				t.Errorf("ChainIDs() = %v, want %v", got, tt.chain)
			}
		})
	}
	if ab == fromDefinition(b, a) {
		t.Fatal("the vectors do not tell the order of layers apart")
	}
}

// fromDefinition computes the chainID of two layers with crypto/sha256.
func fromDefinition(lower, upper digest.Digest) digest.Digest {
	sum := sha256.Sum256([]byte(string(lower) + " " + string(upper)))
	return digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
}
