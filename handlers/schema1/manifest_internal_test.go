package schema1

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// sign wraps payload in libtrust's pretty-JWS form with one signature
// per protected header given (a fake signature: only the layout matters).
func sign(payload []byte, protected ...string) []byte {
	end := bytes.LastIndexByte(payload, '}')
	var sigs []string
	for _, p := range protected {
		sigs = append(sigs, `{"protected":"`+p+`","signature":"c2ln"}`)
	}
	return []byte(string(payload[:end]) + `,"signatures":[` + strings.Join(sigs, ",") + "]" + string(payload[end:]))
}

// header returns a protected header naming the payload of sign(payload).
func header(payload []byte) string {
	end := bytes.LastIndexByte(payload, '}')
	b, _ := json.Marshal(map[string]any{
		"formatLength": end,
		"formatTail":   base64.RawURLEncoding.EncodeToString(payload[end:]),
	})
	return base64.RawURLEncoding.EncodeToString(b)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestPayloadOf(t *testing.T) {
	img := registrytest.RandomImage(1, 2, 256, registrytest.WithDockerMediaTypes())
	signed, _ := registrytest.Schema1Manifest(img, "a/b", "v1", true)
	unsigned, _ := registrytest.Schema1Manifest(img, "a/b", "v1", false)
	p := []byte(`{"schemaVersion":1}`)
	h := header(p)

	tests := []struct {
		name    string
		body    []byte
		want    []byte
		wantErr error
	}{
		{"registrytest signed", signed, unsigned, nil},
		{"unsigned", unsigned, unsigned, nil},
		{"null signatures", []byte(`{"schemaVersion":1,"signatures":null}`), []byte(`{"schemaVersion":1,"signatures":null}`), nil},
		{"two agreeing signatures", sign(p, h, h), p, nil},
		{"padded base64", sign(p, h+"=="), p, nil},
		{"not JSON", []byte("{"), nil, errdefs.ErrInvalidArgument},
		{"not an object", []byte("[1]"), nil, errdefs.ErrInvalidArgument},
		{"signatures not a list", []byte(`{"signatures":{}}`), nil, errdefs.ErrInvalidArgument},
		{"empty signatures", []byte(`{"signatures":[]}`), nil, errdefs.ErrInvalidArgument},
		{"protected not base64", sign(p, "!!"), nil, errdefs.ErrInvalidArgument},
		{"protected not JSON", sign(p, b64("nope")), nil, errdefs.ErrInvalidArgument},
		{"no formatLength", sign(p, b64(`{"formatTail":"fQ"}`)), nil, errdefs.ErrInvalidArgument},
		{"no formatTail", sign(p, b64(`{"formatLength":3}`)), nil, errdefs.ErrInvalidArgument},
		{"formatTail not base64", sign(p, b64(`{"formatLength":3,"formatTail":"*"}`)), nil, errdefs.ErrInvalidArgument},
		{"formatLength negative", sign(p, b64(`{"formatLength":-1,"formatTail":"fQ"}`)), nil, errdefs.ErrInvalidArgument},
		{"formatLength past the end", sign(p, b64(`{"formatLength":100000,"formatTail":"fQ"}`)), nil, errdefs.ErrInvalidArgument},
		{"formatLength fractional", sign(p, b64(`{"formatLength":1.5,"formatTail":"fQ"}`)), nil, errdefs.ErrInvalidArgument},
		{"disagreeing signatures", sign(p, h, b64(`{"formatLength":3,"formatTail":"fQ"}`)), nil, errdefs.ErrInvalidArgument},
		{"payload not JSON", sign(p, b64(`{"formatLength":3,"formatTail":""}`)), nil, errdefs.ErrInvalidArgument},
		{"payload that is signed", sign(p, b64(`{"formatLength":0,"formatTail":"`+b64(`{"signatures":[1]}`)+`"}`)), nil, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := payloadOf(tt.body)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("payloadOf() error = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("payloadOf() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodePayload(t *testing.T) {
	a := digest.FromString("a").String()
	v1 := `{\"id\":\"x\"}`
	layers := func(n int) string {
		var fs, hs []string
		for range n {
			fs = append(fs, `{"blobSum":"`+a+`"}`)
			hs = append(hs, `{"v1Compatibility":"`+v1+`"}`)
		}
		return `"fsLayers":[` + strings.Join(fs, ",") + `],"history":[` + strings.Join(hs, ",") + `]`
	}
	tests := []struct {
		name    string
		payload string
		wantErr error
	}{
		{"minimal", `{"schemaVersion":1,` + layers(1) + `}`, nil},
		{"throwaway", `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + a + `"}],"history":[{"v1Compatibility":"{\"throwaway\":true}"}]}`, nil},
		{"not JSON", `{`, errdefs.ErrInvalidArgument},
		{"schema 2", `{"schemaVersion":2,` + layers(1) + `}`, errdefs.ErrInvalidArgument},
		{"no schemaVersion", `{` + layers(1) + `}`, errdefs.ErrInvalidArgument},
		{"with layers", `{"schemaVersion":1,"layers":[],` + layers(1) + `}`, errdefs.ErrInvalidArgument},
		{"with manifests", `{"schemaVersion":1,"manifests":[],` + layers(1) + `}`, errdefs.ErrInvalidArgument},
		{"with config", `{"schemaVersion":1,"config":{},` + layers(1) + `}`, errdefs.ErrInvalidArgument},
		{"no layers", `{"schemaVersion":1,"fsLayers":[],"history":[]}`, errdefs.ErrInvalidArgument},
		{"too many layers", `{"schemaVersion":1,` + layers(handlers.MaxLayers+1) + `}`, content.ErrTooLarge},
		{"history shorter", `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + a + `"}],"history":[]}`, errdefs.ErrInvalidArgument},
		{"bad blobSum", `{"schemaVersion":1,"fsLayers":[{"blobSum":"sha256:nope"}],"history":[{"v1Compatibility":"{}"}]}`, errdefs.ErrInvalidArgument},
		{"v1Compatibility not JSON", `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + a + `"}],"history":[{"v1Compatibility":"{"}]}`, errdefs.ErrInvalidArgument},
		{"v1Compatibility not an object", `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + a + `"}],"history":[{"v1Compatibility":"null"}]}`, errdefs.ErrInvalidArgument},
		{"bad created", `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + a + `"}],"history":[{"v1Compatibility":"{\"created\":\"yesterday\"}"}]}`, errdefs.ErrInvalidArgument},
		{"bad throwaway", `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + a + `"}],"history":[{"v1Compatibility":"{\"throwaway\":\"yes\"}"}]}`, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodePayload([]byte(tt.payload))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("decodePayload() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// buildConfig fills in the platform a v1Compatibility leaves out.
func TestBuildConfigPlatform(t *testing.T) {
	tests := []struct {
		name, top, manifestArch string
		wantOS, wantArch        string
	}{
		{"from the entry", `{"os":"windows","architecture":"arm64"}`, "amd64", "windows", "arm64"},
		{"architecture from the manifest", `{}`, "s390x", "linux", "s390x"},
		{"defaults", `{}`, "", "linux", "amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, plat, err := buildConfig(&parsed{architecture: tt.manifestArch, top: []byte(tt.top)}, nil, []digest.Digest{})
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
				RootFS       struct {
					DiffIDs []digest.Digest `json:"diff_ids"`
				} `json:"rootfs"`
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.OS != tt.wantOS || cfg.Architecture != tt.wantArch || plat.OS != tt.wantOS || plat.Architecture != tt.wantArch {
				t.Errorf("config %s/%s, platform %s/%s; want %s/%s", cfg.OS, cfg.Architecture, plat.OS, plat.Architecture, tt.wantOS, tt.wantArch)
			}
			if cfg.RootFS.DiffIDs == nil || !bytes.Contains(b, []byte(`"diff_ids":[]`)) {
				t.Errorf("config %s: want an empty diff_ids list, not null", b)
			}
		})
	}
}
