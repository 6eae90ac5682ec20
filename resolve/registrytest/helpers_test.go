package registrytest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// do sends a request with the given headers and returns the response with
// its body read.
func do(t *testing.T, c *http.Client, method, url string, hdr http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

// errCode returns the code of the first error of a distribution error body.
func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not a distribution error body: %q (%v)", body, err)
	}
	return e.Errors[0].Code
}

// h builds a header from key, value pairs.
func h(kv ...string) http.Header {
	hdr := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		hdr.Add(kv[i], kv[i+1])
	}
	return hdr
}
