package httpx_test

import (
	"fmt"
	"net/url"

	"github.com/pullkit/pullkit/internal/httpx"
)

func ExampleRedactURL() {
	u, _ := url.Parse("https://cdn.example/blobs/abc?X-Amz-Signature=secret")
	fmt.Println(httpx.RedactURL(u))
	// Output: https://cdn.example/blobs/abc
}
