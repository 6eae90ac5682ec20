package schema1

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/internal/compresstest"
)

func TestDigestLayer(t *testing.T) {
	plain := bytes.Repeat([]byte("tar!"), 3000)
	gz := compresstest.Gzip(plain)
	twoMembers := append(compresstest.Gzip(plain[:5000]), compresstest.Gzip(plain[5000:])...)
	bomb := compresstest.Gzip(make([]byte, 1<<20))

	tests := []struct {
		name           string
		stream         []byte
		limit          int64
		want           digest.Digest
		wantCompressed bool
		wantErr        error
	}{
		{"gzip", gz, 1 << 20, digest.FromBytes(plain), true, nil},
		{"gzip, two members", twoMembers, 1 << 20, digest.FromBytes(plain), true, nil},
		{"plain tar", plain, 1, digest.FromBytes(plain), false, nil},
		{"empty", nil, 1, digest.FromBytes(nil), false, nil},
		{"one byte", []byte{0x1f}, 1, digest.FromBytes([]byte{0x1f}), false, nil},
		{"Docker's empty layer", emptyLayerGzip, 1024, digest.FromBytes(make([]byte, 1024)), true, nil},
		{"truncated gzip", gz[:len(gz)/2], 1 << 20, "", false, errdefs.ErrInvalidArgument},
		{"gzip header only", []byte{0x1f, 0x8b, 0x08}, 3, "", false, errdefs.ErrInvalidArgument},
		{"gzip then garbage", append(append([]byte{}, gz...), "garbage"...), 1 << 20, "", false, errdefs.ErrInvalidArgument},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}, 6, "", false, errdefs.ErrNotImplemented},
		{"expands past the limit", bomb, 1<<20 - 1, "", false, content.ErrTooLarge},
		{"expands to the limit", bomb, 1 << 20, digest.FromBytes(make([]byte, 1<<20)), true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := digestLayer(bytes.NewReader(tt.stream), tt.limit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("digestLayer() error = %v, want %v", err, tt.wantErr)
			}
			if res.diffID != tt.want || (err == nil && res.compressed != tt.wantCompressed) {
				t.Errorf("digestLayer() = %s compressed %v, want %s compressed %v", res.diffID, res.compressed, tt.want, tt.wantCompressed)
			}
		})
	}
}

// emptyLayerGzip is the blob whose digest is EmptyLayer.
var emptyLayerGzip = []byte{
	0x1f, 0x8b, 0x08, 0x00, 0x00, 0x09, 0x6e, 0x88, 0x00, 0xff, 0x62, 0x18, 0x05, 0xa3, 0x60, 0x14,
	0x8c, 0x58, 0x00, 0x08, 0x00, 0x00, 0xff, 0xff, 0x2e, 0xaf, 0xb5, 0xef, 0x00, 0x04, 0x00, 0x00,
}

func TestUncompressedLimit(t *testing.T) {
	tests := []struct{ size, want int64 }{
		{-1, 16 << 20},
		{0, 16 << 20},
		{1000, 16<<20 + 500*1000},
		{1 << 30, 64 << 30},
		{1 << 62, 64 << 30}, // no overflow
	}
	for _, tt := range tests {
		if got := uncompressedLimit(tt.size); got != tt.want {
			t.Errorf("uncompressedLimit(%d) = %d, want %d", tt.size, got, tt.want)
		}
	}
}

func TestEmptyLayerDigest(t *testing.T) {
	if got := digest.FromBytes(emptyLayerGzip); got != EmptyLayer {
		t.Errorf("digest of Docker's empty layer = %s, want EmptyLayer %s", got, EmptyLayer)
	}
}

// The tee hands over a diff ID only for a stream read whole, to its end.
func TestTeeFetcher(t *testing.T) {
	blob := compresstest.Gzip(bytes.Repeat([]byte("x"), 100000))
	desc := ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	src := fetch.FetcherFunc(func(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	})
	tests := []struct {
		name   string
		read   int64 // bytes read before Close; -1 reads to EOF
		wantOK bool
	}{
		{"whole", -1, true},
		{"all bytes but no EOF seen", int64(len(blob)), false},
		{"half", int64(len(blob)) / 2, false},
		{"nothing", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tee := &teeFetcher{f: src}
			rc, err := tee.Fetch(context.Background(), desc)
			if err != nil {
				t.Fatal(err)
			}
			if tt.read < 0 {
				_, err = io.Copy(io.Discard, rc)
			} else {
				_, err = io.CopyN(io.Discard, rc, tt.read)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			res, ok := tee.result()
			if ok != tt.wantOK {
				t.Fatalf("result() ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && (res.diffID != digest.FromBytes(bytes.Repeat([]byte("x"), 100000)) || !res.compressed) {
				t.Errorf("result() = %+v, want the digest of the gunzipped stream", res)
			}
		})
	}

	// A stream that does not decompress fails the read itself, so the
	// download stops.
	bad := append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{0xff}, 1<<20)...)
	tee := &teeFetcher{f: fetch.FetcherFunc(func(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(bad)), nil
	})}
	rc, err := tee.Fetch(context.Background(), ocispec.Descriptor{Digest: digest.FromBytes(bad), Size: int64(len(bad))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); !errdefs.IsInvalidArgument(err) {
		t.Errorf("reading a corrupt gzip stream: error = %v, want invalid argument", err)
	}
	rc.Close()
	if _, ok := tee.result(); ok {
		t.Error("result() ok after a corrupt stream")
	}
}
