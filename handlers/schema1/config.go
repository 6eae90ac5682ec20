package schema1

import (
	"encoding/json"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// legacyMembers are the v1Compatibility members that describe the v1 layer
// rather than the image, left out of the converted config as Docker does.
var legacyMembers = []string{"id", "parent", "parent_id", "layer_id", "Size", "throwaway"}

// buildConfig returns the image config of p with history and diffIDs,
// and the platform it declares.
func buildConfig(p *parsed, history []ocispec.History, diffIDs []digest.Digest) ([]byte, ocispec.Platform, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(p.top, &obj); err != nil || obj == nil {
		return nil, ocispec.Platform{}, invalid("history[0]: v1Compatibility is not a JSON object")
	}
	for _, k := range legacyMembers {
		delete(obj, k)
	}
	var plat struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant,omitempty"`
		OSVersion    string `json:"os.version,omitempty"`
	}
	if err := json.Unmarshal(p.top, &plat); err != nil {
		return nil, ocispec.Platform{}, invalid("history[0]: platform: %v", err)
	}
	if plat.Architecture == "" {
		plat.Architecture = p.architecture
		if plat.Architecture == "" {
			plat.Architecture = "amd64"
		}
		obj["architecture"] = mustMarshal(plat.Architecture)
	}
	if plat.OS == "" {
		plat.OS = "linux"
		obj["os"] = mustMarshal(plat.OS)
	}
	obj["rootfs"] = mustMarshal(ocispec.RootFS{Type: "layers", DiffIDs: diffIDs})
	obj["history"] = mustMarshal(history)
	b, err := json.Marshal(obj)
	if err != nil {
		// Only a member that is not valid JSON can fail, and Unmarshal
		// checked them all.
		return nil, ocispec.Platform{}, invalid("encode config: %v", err)
	}
	return b, ocispec.Platform{OS: plat.OS, Architecture: plat.Architecture, Variant: plat.Variant, OSVersion: plat.OSVersion}, nil
}

// marshalManifest encodes an image manifest of media type mt.
func marshalManifest(mt string, config ocispec.Descriptor, layers []ocispec.Descriptor) ([]byte, error) {
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	m := ocispec.Manifest{MediaType: mt, Config: config, Layers: layers}
	m.SchemaVersion = 2
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return b, nil
}

// mustMarshal encodes values that always encode.
func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("schema1: encode %T: %v", v, err))
	}
	return b
}
