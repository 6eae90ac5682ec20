package schema1

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
)

// EmptyLayer is the digest of the 32-byte gzipped empty tar (1024 zero
// bytes) that Docker pushed for every schema 1 layer that changes no file,
// such as those of ENV or CMD instructions. A layer with this digest is
// empty whatever its history says.
const EmptyLayer digest.Digest = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"

// parsed is what the converter keeps of a schema 1 manifest.
type parsed struct {
	name, tag    string
	architecture string
	// layers are the manifest's fsLayers with their history, top first as
	// the manifest lists them.
	layers []entry
	// top is the newest v1Compatibility object, history[0].
	top []byte
}

// entry is one fsLayer with its history.
type entry struct {
	blob  digest.Digest
	v1    v1Compat
	empty bool
}

// v1Compat is what the converter reads of a v1Compatibility object.
type v1Compat struct {
	Created         *time.Time `json:"created,omitempty"`
	Author          string     `json:"author,omitempty"`
	Comment         string     `json:"comment,omitempty"`
	Throwaway       bool       `json:"throwaway,omitempty"`
	ContainerConfig *struct {
		Cmd []string `json:"Cmd,omitempty"`
	} `json:"container_config,omitempty"`
}

// wireManifest is a schema 1 manifest as it is encoded.
type wireManifest struct {
	SchemaVersion int    `json:"schemaVersion"`
	Name          string `json:"name"`
	Tag           string `json:"tag"`
	Architecture  string `json:"architecture"`
	FSLayers      []struct {
		BlobSum string `json:"blobSum"`
	} `json:"fsLayers"`
	History []struct {
		V1Compatibility string `json:"v1Compatibility"`
	} `json:"history"`
	// Members of the other manifest kinds, which a schema 1 manifest must
	// not have, so that a document cannot read as two kinds.
	Config    json.RawMessage `json:"config,omitempty"`
	Layers    json.RawMessage `json:"layers,omitempty"`
	Manifests json.RawMessage `json:"manifests,omitempty"`
}

// invalid returns an error that matches errdefs.ErrInvalidArgument.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// payloadOf returns the payload of a schema 1 manifest body: the body
// itself when it has no "signatures" member, else the body without its
// JWS signatures, rebuilt as libtrust's "pretty signatures" define it: the
// first formatLength bytes of the body followed by the base64url-decoded
// formatTail, both named by the protected header of every signature, which
// must agree. The payload must not itself carry signatures. Errors match
// errdefs.ErrInvalidArgument.
func payloadOf(body []byte) ([]byte, error) {
	var top struct {
		Signatures json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, invalid("decode: %v", err)
	}
	if len(top.Signatures) == 0 || bytes.Equal(top.Signatures, []byte("null")) {
		return body, nil
	}
	var sigs []struct {
		Protected string `json:"protected"`
	}
	if err := json.Unmarshal(top.Signatures, &sigs); err != nil {
		return nil, invalid("decode signatures: %v", err)
	}
	if len(sigs) == 0 {
		return nil, invalid("empty signatures")
	}
	length, tail := -1, []byte(nil)
	for i, sig := range sigs {
		raw, err := decodeBase64URL(sig.Protected)
		if err != nil {
			return nil, invalid("signature %d: protected header: %v", i, err)
		}
		var ph struct {
			FormatLength *int    `json:"formatLength"`
			FormatTail   *string `json:"formatTail"`
		}
		if err := json.Unmarshal(raw, &ph); err != nil {
			return nil, invalid("signature %d: protected header: %v", i, err)
		}
		if ph.FormatLength == nil || ph.FormatTail == nil {
			return nil, invalid("signature %d: protected header has no formatLength or formatTail", i)
		}
		t, err := decodeBase64URL(*ph.FormatTail)
		if err != nil {
			return nil, invalid("signature %d: formatTail: %v", i, err)
		}
		if i == 0 {
			length, tail = *ph.FormatLength, t
			continue
		}
		if *ph.FormatLength != length || !bytes.Equal(t, tail) {
			return nil, invalid("signatures %d and 0 disagree on the payload", i)
		}
	}
	if length < 0 || length > len(body) {
		return nil, invalid("formatLength %d outside the body's %d bytes", length, len(body))
	}
	payload := make([]byte, 0, length+len(tail))
	payload = append(append(payload, body[:length]...), tail...)
	var again struct {
		Signatures json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(payload, &again); err != nil {
		return nil, invalid("decode payload: %v", err)
	}
	if len(again.Signatures) != 0 {
		return nil, invalid("payload carries signatures")
	}
	return payload, nil
}

// decodeBase64URL decodes JOSE base64url, with or without padding.
func decodeBase64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// decodePayload decodes a schema 1 payload (signatures stripped). Errors
// match errdefs.ErrInvalidArgument, except more than handlers.MaxLayers
// layers, a *content.LimitError.
func decodePayload(payload []byte) (*parsed, error) {
	var w wireManifest
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, invalid("decode: %v", err)
	}
	switch {
	case w.SchemaVersion != 1:
		return nil, invalid("schemaVersion %d, want 1", w.SchemaVersion)
	case len(w.Config) != 0 || len(w.Layers) != 0 || len(w.Manifests) != 0:
		return nil, invalid(`a schema 1 manifest with "config", "layers" or "manifests"`)
	case len(w.FSLayers) == 0:
		return nil, invalid("no fsLayers")
	case len(w.FSLayers) > handlers.MaxLayers:
		return nil, &content.LimitError{What: "schema 1 layers", Limit: handlers.MaxLayers, Got: int64(len(w.FSLayers))}
	case len(w.FSLayers) != len(w.History):
		return nil, invalid("%d fsLayers but %d history entries", len(w.FSLayers), len(w.History))
	}
	p := &parsed{name: w.Name, tag: w.Tag, architecture: w.Architecture, layers: make([]entry, len(w.FSLayers))}
	for i, l := range w.FSLayers {
		d, err := digest.Parse(l.BlobSum)
		if err != nil {
			return nil, invalid("fsLayers[%d]: blobSum %q: %v", i, l.BlobSum, err)
		}
		var v1 v1Compat
		if err := json.Unmarshal([]byte(w.History[i].V1Compatibility), &v1); err != nil {
			return nil, invalid("history[%d]: v1Compatibility: %v", i, err)
		}
		p.layers[i] = entry{blob: d, v1: v1, empty: v1.Throwaway || d == EmptyLayer}
	}
	p.top = []byte(w.History[0].V1Compatibility)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(p.top, &obj); err != nil || obj == nil {
		return nil, invalid("history[0]: v1Compatibility is not a JSON object")
	}
	return p, nil
}

// verify checks body, whose payload is payload, against want: either
// digest, computed with want's algorithm, must be want. It returns a
// *content.MismatchError otherwise. want must be valid.
func verify(body, payload []byte, want digest.Digest) error {
	alg := want.Algorithm()
	if alg.FromBytes(body) == want {
		return nil
	}
	got := alg.FromBytes(payload)
	if got == want {
		return nil
	}
	return &content.MismatchError{Expected: want, Actual: got, ActualSize: int64(len(body))}
}
