package chunks_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"strings"

	"github.com/pullkit/pullkit/internal/chunks"
)

// A stream read on one goroutine and hashed on another, in chunks of 4
// bytes of which at most 2 are in flight, while the caller reads it.
func Example() {
	src := strings.NewReader("a stream read ahead, hashed and read back")
	p := chunks.New(2, 4)
	p.Source(func(buf []byte) (int, error) {
		n, err := io.ReadFull(src, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return n, err
	})
	h := sha256.New()
	p.Then(func(b []byte) { h.Write(b) })

	got, err := io.ReadAll(p)
	if err != nil {
		panic(err)
	}
	p.Wait()
	fmt.Println(string(got))
	fmt.Println(fmt.Sprintf("%x", h.Sum(nil)) == fmt.Sprintf("%x", sha256.Sum256(got)))
	// Output:
	// a stream read ahead, hashed and read back
	// true
}
