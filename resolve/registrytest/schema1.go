package registrytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/pullkit/pullkit/handlers"
)

// Schema1Manifest returns img as a Docker schema 1 manifest named
// name:tag, as old registries served it, with its media type: fsLayers
// (the layer blobs' digests, top layer first) and a v1Compatibility history
// entry per layer, the top one carrying the image's platform and config.
// Push it with [Registry.PushManifest] after the layers (PushImage pushes
// them too).
//
// Signed, it is a libtrust "pretty JWS" signed with a new ECDSA P-256 key
// (handlers.MediaTypeDockerSchema1SignedManifest); its digest, as
// PushManifest computes it, is that of the payload without the signatures.
// Unsigned, it is the payload alone (handlers.MediaTypeDockerSchema1Manifest).
func Schema1Manifest(img Image, name, tag string, signed bool) (body []byte, mediaType string) {
	var config struct {
		Architecture string          `json:"architecture"`
		OS           string          `json:"os"`
		Config       json.RawMessage `json:"config"`
	}
	must(json.Unmarshal(img.ConfigBytes, &config))

	type fsLayer struct {
		BlobSum string `json:"blobSum"`
	}
	type history struct {
		V1Compatibility string `json:"v1Compatibility"`
	}
	n := len(img.Layers)
	ids := make([]string, n)
	for i, l := range img.Layers { // base first: each ID covers its parent
		parent := ""
		if i > 0 {
			parent = ids[i-1]
		}
		sum := sha256.Sum256([]byte(parent + " " + l.Descriptor.Digest.String()))
		ids[i] = hex.EncodeToString(sum[:])
	}
	m := struct {
		SchemaVersion int       `json:"schemaVersion"`
		Name          string    `json:"name"`
		Tag           string    `json:"tag"`
		Architecture  string    `json:"architecture"`
		FSLayers      []fsLayer `json:"fsLayers"`
		History       []history `json:"history"`
	}{SchemaVersion: 1, Name: name, Tag: tag, Architecture: config.Architecture, FSLayers: []fsLayer{}, History: []history{}}
	for i := n - 1; i >= 0; i-- { // top first
		v1 := map[string]any{
			"id":               ids[i],
			"created":          epoch,
			"container_config": map[string]any{"Cmd": []string{"/bin/sh -c #(nop) ADD layer" + ids[i][:12]}},
		}
		if i > 0 {
			v1["parent"] = ids[i-1]
		}
		if i == n-1 {
			v1["architecture"] = config.Architecture
			v1["os"] = config.OS
			v1["config"] = config.Config
		}
		m.FSLayers = append(m.FSLayers, fsLayer{BlobSum: img.Layers[i].Descriptor.Digest.String()})
		m.History = append(m.History, history{V1Compatibility: string(mustJSON(v1))})
	}
	payload, err := json.MarshalIndent(m, "", "   ")
	must(err)
	if !signed {
		return payload, handlers.MediaTypeDockerSchema1Manifest
	}
	return signJWS(payload), handlers.MediaTypeDockerSchema1SignedManifest
}

// signJWS signs a pretty-printed JSON object the way libtrust does: the
// signatures go in a "signatures" member before the closing brace, and the
// protected header says how to cut them out again.
func signJWS(payload []byte) []byte {
	formatLength := bytes.LastIndexByte(payload, '}')
	for formatLength > 0 && (payload[formatLength-1] == '\n' || payload[formatLength-1] == ' ') {
		formatLength--
	}
	tail := payload[formatLength:]
	b64 := base64.RawURLEncoding

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	ecdh, err := key.PublicKey.ECDH()
	must(err)
	point := ecdh.Bytes() // 0x04 || X || Y
	x, y := point[1:33], point[33:65]
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	must(err)

	protected := b64.EncodeToString(mustJSON(map[string]any{
		"formatLength": formatLength,
		"formatTail":   b64.EncodeToString(tail),
		"time":         epoch.Format("2006-01-02T15:04:05Z"),
	}))
	digest := sha256.Sum256([]byte(protected + "." + b64.EncodeToString(payload)))
	sr, ss, err := ecdsa.Sign(rand.Reader, key, digest[:])
	must(err)
	sig := make([]byte, 64)
	sr.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])

	signatures, err := json.MarshalIndent([]map[string]any{{
		"header": map[string]any{
			"jwk": map[string]string{
				"crv": "P-256",
				"kid": keyID(der),
				"kty": "EC",
				"x":   b64.EncodeToString(x),
				"y":   b64.EncodeToString(y),
			},
			"alg": "ES256",
		},
		"signature": b64.EncodeToString(sig),
		"protected": protected,
	}}, "   ", "   ")
	must(err)

	var buf bytes.Buffer
	buf.Write(payload[:formatLength])
	buf.WriteString(",\n   \"signatures\": ")
	buf.Write(signatures)
	buf.Write(tail)
	return buf.Bytes()
}

// keyID is libtrust's key ID: the first 240 bits of the SHA-256 of the
// DER public key, in base32, in groups of four.
func keyID(der []byte) string {
	sum := sha256.Sum256(der)
	s := base32.StdEncoding.EncodeToString(sum[:30])
	var groups []string
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:i+4])
	}
	return strings.Join(groups, ":")
}
