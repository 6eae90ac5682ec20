package schema1

import (
	"bytes"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// FuzzManifest feeds arbitrary bodies to the schema 1 decoding the
// converter does (strip the JWS signatures, verify, decode) and checks:
//
//   - errors are classified: errdefs.ErrInvalidArgument, or
//     content.ErrTooLarge for too many layers;
//   - a payload is a fixed point: it has no signatures left to strip;
//   - the body verifies against its payload's digest and its own, and
//     against no other;
//   - an accepted manifest has between 1 and handlers.MaxLayers layers,
//     each with a valid blobSum and its history, empty exactly when it is
//     marked throwaway or is the well-known empty layer.
func FuzzManifest(f *testing.F) {
	img := registrytest.RandomImage(1, 3, 64, registrytest.WithDockerMediaTypes())
	for _, signed := range []bool{true, false} {
		body, _ := registrytest.Schema1Manifest(img, "fuzz/app", "v1", signed)
		f.Add(body)
	}
	p := []byte(`{"schemaVersion":1,"fsLayers":[{"blobSum":"` + string(EmptyLayer) + `"}],"history":[{"v1Compatibility":"{\"throwaway\":true}"}]}`)
	f.Add(p)
	f.Add(sign(p, header(p), header(p)))
	f.Add(sign(p, b64(`{"formatLength":-1,"formatTail":""}`)))
	f.Add([]byte(`{"signatures":[{"protected":"e30"}]}`))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, body []byte) {
		payload, err := payloadOf(body)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("payloadOf() error = %v, not classified", err)
			}
			return
		}
		again, err := payloadOf(payload)
		if err != nil || !bytes.Equal(again, payload) {
			t.Fatalf("payloadOf(payload) = %q, %v; want the payload itself", again, err)
		}
		for _, d := range []digest.Digest{digest.FromBytes(payload), digest.FromBytes(body), digest.SHA512.FromBytes(payload)} {
			if err := verify(body, payload, d); err != nil {
				t.Fatalf("verify(%s) error = %v, want nil", d, err)
			}
		}
		if err := verify(body, payload, digest.FromString("something else")); !errors.Is(err, content.ErrDigestMismatch) {
			t.Fatalf("verify(another digest) error = %v, want %v", err, content.ErrDigestMismatch)
		}

		m, err := decodePayload(payload)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, content.ErrTooLarge) {
				t.Fatalf("decodePayload() error = %v, not classified", err)
			}
			return
		}
		if n := len(m.layers); n == 0 || n > handlers.MaxLayers {
			t.Fatalf("accepted a manifest of %d layers", n)
		}
		for i, e := range m.layers {
			if err := e.blob.Validate(); err != nil {
				t.Fatalf("layer %d: accepted blobSum %q: %v", i, e.blob, err)
			}
			if e.empty != (e.v1.Throwaway || e.blob == EmptyLayer) {
				t.Fatalf("layer %d: empty = %v, throwaway %v, blob %s", i, e.empty, e.v1.Throwaway, e.blob)
			}
		}
		if _, _, err := buildConfig(m, nil, []digest.Digest{}); err != nil {
			t.Fatalf("buildConfig() of an accepted manifest: %v", err)
		}
	})
}
