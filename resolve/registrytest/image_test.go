package registrytest_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// untar reads a tar stream into its regular files and the names of all
// entries.
func untar(t *testing.T, r io.Reader) (map[string][]byte, []string) {
	t.Helper()
	files := map[string][]byte{}
	var names []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, names
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		names = append(names, hdr.Name)
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[hdr.Name] = b
		}
	}
}

// decompress returns a layer's tar stream.
func decompress(t *testing.T, l registrytest.Layer) []byte {
	t.Helper()
	comp, err := handlers.LayerCompression(l.Descriptor.MediaType)
	if err != nil {
		t.Fatal(err)
	}
	switch comp {
	case handlers.CompressionGzip:
		zr, err := gzip.NewReader(bytes.NewReader(l.Data))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	case handlers.CompressionZstd:
		zr, err := zstd.NewReader(bytes.NewReader(l.Data))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return l.Data
}

func TestRandomImage(t *testing.T) {
	arm := ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	tests := []struct {
		name           string
		opts           []registrytest.ImageOption
		layers         int
		size           int64
		wantManifest   string
		wantConfig     string
		wantLayerType  string
		wantPlatform   ocispec.Platform
		wantFilesLayer int
	}{
		{"oci gzip", nil, 3, 3000, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 3},
		{"docker gzip", []registrytest.ImageOption{registrytest.WithDockerMediaTypes()}, 2, 100, handlers.MediaTypeDockerSchema2Manifest, handlers.MediaTypeDockerSchema2Config, handlers.MediaTypeDockerSchema2Layer, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 3},
		{"oci zstd", []registrytest.ImageOption{registrytest.WithCompression(handlers.CompressionZstd)}, 2, 100, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerZstd, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 3},
		{"docker zstd", []registrytest.ImageOption{registrytest.WithDockerMediaTypes(), registrytest.WithCompression(handlers.CompressionZstd)}, 1, 10, handlers.MediaTypeDockerSchema2Manifest, handlers.MediaTypeDockerSchema2Config, handlers.MediaTypeDockerSchema2LayerZstd, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 3},
		{"oci plain", []registrytest.ImageOption{registrytest.WithCompression(handlers.CompressionNone)}, 1, 10, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayer, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 3},
		{"docker plain", []registrytest.ImageOption{registrytest.WithDockerMediaTypes(), registrytest.WithCompression(handlers.CompressionNone)}, 1, 10, handlers.MediaTypeDockerSchema2Manifest, handlers.MediaTypeDockerSchema2Config, handlers.MediaTypeDockerSchema2LayerUncompressed, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 3},
		{"platform and files", []registrytest.ImageOption{registrytest.WithPlatform(arm), registrytest.WithFilesPerLayer(5)}, 2, 1001, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip, arm, 5},
		{"files default", []registrytest.ImageOption{registrytest.WithFilesPerLayer(-1)}, 1, 7, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 3},
		{"no layers", nil, 0, 100, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, "", ocispec.Platform{OS: "linux", Architecture: "amd64"}, 0},
		{"empty files", nil, 1, 0, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip, ocispec.Platform{OS: "linux", Architecture: "amd64"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := registrytest.RandomImage(42, tt.layers, tt.size, tt.opts...)
			again := registrytest.RandomImage(42, tt.layers, tt.size, tt.opts...)
			if !bytes.Equal(img.ManifestBytes, again.ManifestBytes) {
				t.Fatal("the same seed made different manifests")
			}
			if other := registrytest.RandomImage(43, tt.layers, tt.size, tt.opts...); tt.layers > 0 && tt.size > 0 && other.Manifest.Digest == img.Manifest.Digest {
				t.Fatal("different seeds made the same manifest")
			}

			var m ocispec.Manifest
			if err := json.Unmarshal(img.ManifestBytes, &m); err != nil {
				t.Fatal(err)
			}
			if img.Manifest.MediaType != tt.wantManifest || m.MediaType != tt.wantManifest || m.SchemaVersion != 2 ||
				img.Manifest.Digest != digest.FromBytes(img.ManifestBytes) || img.Manifest.Size != int64(len(img.ManifestBytes)) {
				t.Errorf("manifest descriptor %+v, media type %q", img.Manifest, m.MediaType)
			}
			if img.Manifest.Platform == nil || img.Manifest.Platform.Architecture != tt.wantPlatform.Architecture || img.Manifest.Platform.Variant != tt.wantPlatform.Variant {
				t.Errorf("manifest platform = %+v", img.Manifest.Platform)
			}
			if m.Config.Digest != img.Config.Digest || img.Config.MediaType != tt.wantConfig || img.Config.Digest != digest.FromBytes(img.ConfigBytes) {
				t.Errorf("config descriptor %+v", img.Config)
			}
			var cfg ocispec.Image
			if err := json.Unmarshal(img.ConfigBytes, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.OS != tt.wantPlatform.OS || cfg.Architecture != tt.wantPlatform.Architecture || cfg.Variant != tt.wantPlatform.Variant ||
				cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != tt.layers || len(cfg.History) != tt.layers {
				t.Errorf("config = %s", img.ConfigBytes)
			}
			if len(m.Layers) != tt.layers || len(img.Layers) != tt.layers {
				t.Fatalf("%d layers in the manifest, %d in the image, want %d", len(m.Layers), len(img.Layers), tt.layers)
			}
			for i, l := range img.Layers {
				if m.Layers[i].Digest != l.Descriptor.Digest || l.Descriptor.MediaType != tt.wantLayerType ||
					l.Descriptor.Digest != digest.FromBytes(l.Data) || l.Descriptor.Size != int64(len(l.Data)) {
					t.Errorf("layer %d descriptor %+v", i, l.Descriptor)
				}
				tarball := decompress(t, l)
				if digest.FromBytes(tarball) != l.DiffID || cfg.RootFS.DiffIDs[i] != l.DiffID {
					t.Errorf("layer %d diffID %s, config says %s, tar is %s", i, l.DiffID, cfg.RootFS.DiffIDs[i], digest.FromBytes(tarball))
				}
				files, names := untar(t, bytes.NewReader(tarball))
				if len(files) != tt.wantFilesLayer || len(l.Files) != tt.wantFilesLayer || len(names) != tt.wantFilesLayer+1 {
					t.Errorf("layer %d: %d files in the tar, %d listed, entries %v", i, len(files), len(l.Files), names)
				}
				var total int64
				for name, data := range files {
					if !bytes.Equal(l.Files[name], data) {
						t.Errorf("layer %d file %s differs from Layer.Files", i, name)
					}
					total += int64(len(data))
				}
				if total != tt.size {
					t.Errorf("layer %d holds %d bytes of files, want %d", i, total, tt.size)
				}
			}
			blobs := img.Blobs()
			if len(blobs) != tt.layers+2 || !bytes.Equal(blobs[img.Config.Digest], img.ConfigBytes) {
				t.Errorf("Blobs() has %d blobs", len(blobs))
			}
			var size int64
			for _, b := range blobs {
				size += int64(len(b))
			}
			if img.Size() != size {
				t.Errorf("Size() = %d, want %d", img.Size(), size)
			}
		})
	}
}

func TestRandomImageAnnotations(t *testing.T) {
	img := registrytest.RandomImage(1, 1, 1, registrytest.WithManifestAnnotations(map[string]string{"org.example": "yes"}))
	var m ocispec.Manifest
	if err := json.Unmarshal(img.ManifestBytes, &m); err != nil || m.Annotations["org.example"] != "yes" {
		t.Errorf("annotations = %v (%v)", m.Annotations, err)
	}
}

func TestPushIndex(t *testing.T) {
	amd := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm := ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	docker := registrytest.WithDockerMediaTypes()
	tests := []struct {
		name   string
		imgs   []registrytest.Image
		wantMT string
	}{
		{"oci", []registrytest.Image{registrytest.RandomImage(1, 1, 10), registrytest.RandomImage(2, 1, 10, registrytest.WithPlatform(arm))}, ocispec.MediaTypeImageIndex},
		{"docker", []registrytest.Image{registrytest.RandomImage(1, 1, 10, docker), registrytest.RandomImage(2, 1, 10, docker, registrytest.WithPlatform(arm))}, handlers.MediaTypeDockerSchema2ManifestList},
		{"mixed", []registrytest.Image{registrytest.RandomImage(1, 1, 10, docker), registrytest.RandomImage(2, 1, 10, registrytest.WithPlatform(arm))}, ocispec.MediaTypeImageIndex},
		{"empty", nil, ocispec.MediaTypeImageIndex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registrytest.NewT(t)
			desc := reg.PushIndex("multi/arch", "latest", tt.imgs...)
			resp, body := do(t, reg.Client(), "GET", reg.URL()+"/v2/multi/arch/manifests/latest", nil, "")
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tt.wantMT || desc.MediaType != tt.wantMT || digest.FromBytes(body) != desc.Digest {
				t.Fatalf("GET index = %d %q, desc %+v", resp.StatusCode, resp.Header.Get("Content-Type"), desc)
			}
			var idx ocispec.Index
			if err := json.Unmarshal(body, &idx); err != nil || idx.MediaType != tt.wantMT || idx.SchemaVersion != 2 || len(idx.Manifests) != len(tt.imgs) || idx.Manifests == nil {
				t.Fatalf("index = %s (%v)", body, err)
			}
			for i, img := range tt.imgs {
				e := idx.Manifests[i]
				want := []ocispec.Platform{amd, arm}[i]
				if e.Digest != img.Manifest.Digest || e.MediaType != img.Manifest.MediaType || e.Platform == nil ||
					e.Platform.Architecture != want.Architecture || e.Platform.Variant != want.Variant {
					t.Errorf("entry %d = %+v", i, e)
				}
				// Every image is served by digest, with its blobs.
				for d, b := range img.Blobs() {
					path := "/blobs/"
					if d == img.Manifest.Digest {
						path = "/manifests/"
					}
					resp, got := do(t, reg.Client(), "GET", reg.URL()+"/v2/multi/arch"+path+d.String(), nil, "")
					if resp.StatusCode != 200 || !bytes.Equal(got, b) {
						t.Errorf("GET %s%s = %d", path, d, resp.StatusCode)
					}
				}
			}
			if tags := reg.Tags("multi/arch"); len(tags) != 1 || tags[0] != "latest" {
				t.Errorf("Tags() = %v: images are pushed by digest only", tags)
			}
		})
	}
}

func TestNestedIndex(t *testing.T) {
	reg := registrytest.NewT(t)
	inner := reg.PushIndex("nest", "", registrytest.RandomImage(1, 1, 10))
	outerBody := registrytest.MarshalIndex(ocispec.MediaTypeImageIndex, inner)
	outer := reg.PushManifest("nest", "v1", ocispec.MediaTypeImageIndex, outerBody)
	resp, body := do(t, reg.Client(), "GET", reg.URL()+"/v2/nest/manifests/v1", nil, "")
	if resp.StatusCode != 200 || !bytes.Equal(body, outerBody) || resp.Header.Get("Docker-Content-Digest") != outer.Digest.String() {
		t.Fatalf("GET outer = %d", resp.StatusCode)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(body, &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != inner.Digest || idx.Manifests[0].MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("outer index = %s", body)
	}
	if resp, _ := do(t, reg.Client(), "GET", reg.URL()+"/v2/nest/manifests/"+inner.Digest.String(), nil, ""); resp.StatusCode != 200 {
		t.Errorf("GET inner = %d", resp.StatusCode)
	}
}

func TestSchema1(t *testing.T) {
	img := registrytest.RandomImage(3, 2, 50, registrytest.WithDockerMediaTypes())
	unsigned, umt := registrytest.Schema1Manifest(img, "old/app", "v1", false)
	signed, smt := registrytest.Schema1Manifest(img, "old/app", "v1", true)
	if umt != handlers.MediaTypeDockerSchema1Manifest || smt != handlers.MediaTypeDockerSchema1SignedManifest {
		t.Fatalf("media types %q, %q", umt, smt)
	}

	var m struct {
		SchemaVersion int    `json:"schemaVersion"`
		Name          string `json:"name"`
		Tag           string `json:"tag"`
		Architecture  string `json:"architecture"`
		FSLayers      []struct {
			BlobSum digest.Digest `json:"blobSum"`
		} `json:"fsLayers"`
		History []struct {
			V1Compatibility string `json:"v1Compatibility"`
		} `json:"history"`
		Signatures []struct {
			Header struct {
				JWK struct {
					Crv, Kty, X, Y string
				} `json:"jwk"`
				Alg string `json:"alg"`
			} `json:"header"`
			Signature string `json:"signature"`
			Protected string `json:"protected"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(signed, &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 1 || m.Name != "old/app" || m.Tag != "v1" || m.Architecture != "amd64" || len(m.FSLayers) != 2 || len(m.History) != 2 {
		t.Fatalf("schema 1 manifest = %s", signed)
	}
	if m.FSLayers[0].BlobSum != img.Layers[1].Descriptor.Digest || m.FSLayers[1].BlobSum != img.Layers[0].Descriptor.Digest {
		t.Errorf("fsLayers are not top first: %+v", m.FSLayers)
	}
	var top, base map[string]any
	if json.Unmarshal([]byte(m.History[0].V1Compatibility), &top) != nil || json.Unmarshal([]byte(m.History[1].V1Compatibility), &base) != nil {
		t.Fatal("v1Compatibility is not JSON")
	}
	if top["parent"] != base["id"] || base["parent"] != nil || top["os"] != "linux" || top["config"] == nil {
		t.Errorf("history: top %v, base %v", top, base)
	}

	// The signature verifies, over the payload, which is the unsigned manifest.
	sig := m.Signatures[0]
	b64 := base64.RawURLEncoding
	prot, err := b64.DecodeString(sig.Protected)
	if err != nil {
		t.Fatal(err)
	}
	var ph struct {
		FormatLength int    `json:"formatLength"`
		FormatTail   string `json:"formatTail"`
	}
	if err := json.Unmarshal(prot, &ph); err != nil {
		t.Fatal(err)
	}
	tail, _ := b64.DecodeString(ph.FormatTail)
	payload := append(append([]byte{}, signed[:ph.FormatLength]...), tail...)
	if !bytes.Equal(payload, unsigned) {
		t.Fatalf("payload differs from the unsigned manifest:\n%s\n%s", payload, unsigned)
	}
	x, _ := b64.DecodeString(sig.Header.JWK.X)
	y, _ := b64.DecodeString(sig.Header.JWK.Y)
	rs, _ := b64.DecodeString(sig.Signature)
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	sum := sha256.Sum256([]byte(sig.Protected + "." + b64.EncodeToString(payload)))
	if sig.Header.Alg != "ES256" || len(rs) != 64 || !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:])) {
		t.Error("the JWS signature does not verify")
	}

	// Served: the signed one under its payload's digest, as registries do.
	reg := registrytest.NewT(t)
	reg.PushImage("old/app", "", img)
	sd := reg.PushManifest("old/app", "signed", smt, signed)
	ud := reg.PushManifest("old/app", "unsigned", umt, unsigned)
	if sd.Digest != digest.FromBytes(unsigned) || ud.Digest != sd.Digest || sd.Size != int64(len(signed)) {
		t.Errorf("digests: signed %s, unsigned %s, want both %s", sd.Digest, ud.Digest, digest.FromBytes(unsigned))
	}
	// Both share a digest: the last pushed bytes are served under it.
	reg.PushManifest("old/app", "signed", smt, signed)
	resp, body := do(t, reg.Client(), http.MethodGet, reg.URL()+"/v2/old/app/manifests/signed", nil, "")
	if resp.StatusCode != 200 || !bytes.Equal(body, signed) || resp.Header.Get("Docker-Content-Digest") != digest.FromBytes(unsigned).String() ||
		resp.Header.Get("Content-Type") != smt {
		t.Errorf("GET signed = %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest"))
	}
	// A "signed" manifest that is not a JWS gets the digest of its bytes.
	if d := reg.PushManifest("old/app", "", smt, []byte(`{"signatures":"no"}`)); d.Digest != digest.FromString(`{"signatures":"no"}`) {
		t.Errorf("digest of a broken JWS = %s", d.Digest)
	}
	if !strings.Contains(string(signed), `"signatures": [`) {
		t.Errorf("signed manifest has no signatures member")
	}
}
