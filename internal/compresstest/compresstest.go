// Package compresstest compresses bytes for tests: the gzip and zstd
// layers and blobs that the unpack, importer and schema1 tests feed to the
// code under test.
package compresstest

import (
	"bytes"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Gzip returns b as one gzip member, at the default level.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b) // a bytes.Buffer takes it all
	zw.Close()
	return buf.Bytes()
}

// Zstd returns b as one zstd frame, at the default level.
func Zstd(b []byte) []byte {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		panic(err) // only options make it fail, and none are given
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}
