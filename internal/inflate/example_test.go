package inflate_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/pullkit/pullkit/internal/inflate"
)

// A gzip stream of two members, decompressed as one.
func Example() {
	var gz bytes.Buffer
	for _, part := range []string{"first member, ", "second member"} {
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(part))
		zw.Close()
	}

	zr, err := inflate.NewReader(&gz)
	if err != nil {
		panic(err)
	}
	b, err := io.ReadAll(zr)
	fmt.Printf("%q %v\n", b, err)
	// Output: "first member, second member" <nil>
}
