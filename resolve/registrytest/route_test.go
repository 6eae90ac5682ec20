package registrytest

import (
	"fmt"
	"testing"
)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path string
		want route
	}{
		{"/v2/", route{kind: routePing}},
		{"/v2", route{kind: routePing}},
		{"/v2/a/b/c/manifests/latest", route{routeManifest, "a/b/c", "latest"}},
		{"/v2/a/manifests/sha256:abc", route{routeManifest, "a", "sha256:abc"}},
		{"/v2/a/blobs/sha256:abc", route{routeBlob, "a", "sha256:abc"}},
		{"/v2/a/b/blobs/uploads/", route{routeUpload, "a/b", ""}},
		{"/v2/a/b/blobs/uploads", route{routeUpload, "a/b", ""}},
		{"/v2/a/b/blobs/uploads/123-x", route{routeUpload, "a/b", "123-x"}},
		{"/v2/a/b/tags/list", route{routeTags, "a/b", ""}},
		{"/v2/blobs/manifests/x", route{routeManifest, "blobs", "x"}},
		{"/v2/manifests/blobs/sha256:x", route{routeBlob, "manifests", "sha256:x"}},
		{"/v2/a/manifests/", route{}},
		{"/v2/a/manifests/x/y", route{}},
		{"/v2/a/blobs/uploads/x/y", route{}},
		{"/v2/a/blobs/uploadsx", route{}},
		{"/v2/a", route{}},
		{"/v1/a/manifests/x", route{}},
		{"/", route{}},
	}
	for _, tt := range tests {
		if got := parseRoute(tt.path); got != tt.want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "library/alpine": true, "a/b/c": true, "a-b__c.d": true, "a--b": true,
		"": false, "A": false, "a//b": false, "/a": false, "a/": false, "a..b": false, "a___b": false, "-a": false,
	} {
		if got := validName(name); got != want {
			t.Errorf("validName(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzParseRange checks that a range parseRange accepts lies inside the
// body, and that explicit "bytes=a-b" ranges are read back exactly.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=5-", "bytes=-3", "bytes=-0", "bytes=9-2", "bytes=0-1,2-3", "items=1-2", "bytes= 1 - 2 ", "bytes=18446744073709551615-", "bytes=-9223372036854775808"} {
		f.Add(s, int64(10))
	}
	f.Add("bytes=0-0", int64(0))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		first, last, ok, satisfiable := parseRange(header, size)
		if !ok && satisfiable {
			t.Fatalf("parseRange(%q, %d): satisfiable but not ok", header, size)
		}
		if satisfiable && (first < 0 || first > last || last >= size) {
			t.Fatalf("parseRange(%q, %d) = [%d, %d], outside the body", header, size, first, last)
		}
		if satisfiable {
			// The range it found, written out, parses to itself.
			f2, l2, ok2, sat2 := parseRange(fmt.Sprintf("bytes=%d-%d", first, last), size)
			if !ok2 || !sat2 || f2 != first || l2 != last {
				t.Fatalf("round trip of [%d, %d] gave [%d, %d] %v %v", first, last, f2, l2, ok2, sat2)
			}
		}
	})
}

func TestJWSPayload(t *testing.T) {
	for _, body := range []string{
		`{}`,
		`{"signatures":[]}`,
		`{"signatures":[{"protected":"!!"}]}`,
		`{"signatures":[{"protected":"e30"}]}`, // {}: no formatLength
		`{"signatures":[{"protected":"eyJmb3JtYXRMZW5ndGgiOjk5OTl9"}]}`,                    // formatLength 9999 > len
		`{"signatures":[{"protected":"eyJmb3JtYXRMZW5ndGgiOjEsImZvcm1hdFRhaWwiOiIhIn0"}]}`, // bad tail
	} {
		if p, ok := jwsPayload([]byte(body)); ok {
			t.Errorf("jwsPayload(%s) = %q, want no payload", body, p)
		}
	}
}
