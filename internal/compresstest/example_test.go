package compresstest_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/pullkit/pullkit/internal/compresstest"
)

func Example() {
	layer := bytes.Repeat([]byte("a tar stream, say. "), 100)

	zr, err := gzip.NewReader(bytes.NewReader(compresstest.Gzip(layer)))
	if err != nil {
		panic(err)
	}
	fromGzip, err := io.ReadAll(zr)
	if err != nil {
		panic(err)
	}

	zd, err := zstd.NewReader(nil)
	if err != nil {
		panic(err)
	}
	defer zd.Close()
	fromZstd, err := zd.DecodeAll(compresstest.Zstd(layer), nil)
	if err != nil {
		panic(err)
	}

	fmt.Println(bytes.Equal(fromGzip, layer), bytes.Equal(fromZstd, layer))
	// Output: true true
}
