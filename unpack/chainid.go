package unpack

import (
	digest "github.com/opencontainers/go-digest"
)

// ChainID returns the chainID of the layers whose diffIDs are given,
// bottom first, as the OCI image spec defines it:
//
//	ChainID(L0)     = DiffID(L0)
//	ChainID(L0..Ln) = SHA256(ChainID(L0..Ln-1) + " " + DiffID(Ln))
//
// It names the filesystem those layers make when applied in order, and so
// the committed snapshot that holds it. It returns "" for no layers.
// The diffIDs are used as they are: validate them first.
func ChainID(diffIDs []digest.Digest) digest.Digest {
	var chain digest.Digest
	for i, d := range diffIDs {
		chain = nextChainID(chain, d, i)
	}
	return chain
}

// ChainIDs returns the chainID of each prefix of diffIDs: element i is
// ChainID(diffIDs[:i+1]), the name of the snapshot that holds layers 0 to
// i. It returns nil for no layers.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	if len(diffIDs) == 0 {
		return nil
	}
	out := make([]digest.Digest, len(diffIDs))
	var chain digest.Digest
	for i, d := range diffIDs {
		chain = nextChainID(chain, d, i)
		out[i] = chain
	}
	return out
}

func nextChainID(parent, diffID digest.Digest, i int) digest.Digest {
	if i == 0 {
		return diffID
	}
	return digest.FromString(parent.String() + " " + diffID.String())
}
