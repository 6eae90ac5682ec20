package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/reference"
)

// dockerManifest is one entry of a docker save archive's manifest.json.
type dockerManifest struct {
	// Config is the path of the image config.
	Config string
	// RepoTags are the image's names.
	RepoTags []string
	// Layers are the paths of the layer tars, base layer first.
	Layers []string
	// LayerSources maps the diffID of a foreign layer (a Windows base
	// layer) to the descriptor a registry serves it under.
	LayerSources map[digest.Digest]ocispec.Descriptor `json:",omitempty"`
}

// decodeManifestJSON decodes and checks a docker save manifest.json. In
// what it returns, every path is clean and relative with no ".." element
// (cleanFile), and every RepoTag is a normalized reference with a tag.
// Errors match errdefs.ErrInvalidArgument (ErrUnsafePath for bad paths),
// or are a *content.LimitError for an image with more than
// handlers.MaxLayers layers.
func decodeManifestJSON(b []byte) ([]dockerManifest, error) {
	var ms []dockerManifest
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, invalid("decode manifest.json: %v", err)
	}
	if len(ms) == 0 {
		return nil, invalid("manifest.json lists no image")
	}
	for i := range ms {
		m := &ms[i]
		var err error
		if m.Config, err = cleanFile(m.Config); err != nil {
			return nil, fmt.Errorf("manifest.json: image %d: config: %w", i, err)
		}
		if len(m.Layers) > handlers.MaxLayers {
			return nil, fmt.Errorf("manifest.json: image %d: %w", i,
				&content.LimitError{What: "image layers", Limit: handlers.MaxLayers, Got: int64(len(m.Layers))})
		}
		for j, l := range m.Layers {
			if m.Layers[j], err = cleanFile(l); err != nil {
				return nil, fmt.Errorf("manifest.json: image %d: layer %d: %w", i, j, err)
			}
		}
		for j, t := range m.RepoTags {
			if m.RepoTags[j], err = normalizeTag(t); err != nil {
				return nil, fmt.Errorf("manifest.json: image %d: RepoTags: %w", i, err)
			}
		}
		for id, d := range m.LayerSources {
			if err := id.Validate(); err != nil {
				return nil, invalid("manifest.json: image %d: LayerSources: diffID %q: %v", i, id, err)
			}
			if err := checkDescriptor(d); err != nil {
				return nil, fmt.Errorf("manifest.json: image %d: LayerSources[%s]: %w", i, id, err)
			}
		}
	}
	return ms, nil
}

// normalizeTag parses a docker name with a tag, as in RepoTags.
func normalizeTag(s string) (string, error) {
	ref, err := reference.Parse(s)
	if err != nil {
		return "", err
	}
	if ref.Digest != "" {
		return "", invalid("%q: a name with a digest cannot name a new manifest", s)
	}
	return ref.String(), nil
}

// checkDescriptor checks what the importer needs from a descriptor an
// archive gives: a valid digest, a media type, a size that is not negative.
func checkDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return invalid("descriptor digest %q: %v", d.Digest, err)
	}
	if d.MediaType == "" {
		return invalid("descriptor %s has no media type", d.Digest)
	}
	if d.Size < 0 {
		return invalid("descriptor %s has negative size %d", d.Digest, d.Size)
	}
	return nil
}

// decodeRepositories decodes a docker save repositories file,
// {"repo": {"tag": "<top layer id>"}}, into the names of each top layer ID.
func decodeRepositories(b []byte) (map[string][]string, error) {
	var repos map[string]map[string]string
	if err := json.Unmarshal(b, &repos); err != nil {
		return nil, invalid("decode repositories: %v", err)
	}
	out := map[string][]string{}
	for _, repo := range slices.Sorted(maps.Keys(repos)) {
		tags := repos[repo]
		for _, tag := range slices.Sorted(maps.Keys(tags)) {
			name, err := normalizeTag(repo + ":" + tag)
			if err != nil {
				return nil, fmt.Errorf("repositories: %w", err)
			}
			out[tags[tag]] = append(out[tags[tag]], name)
		}
	}
	return out, nil
}

// importDockerSave imports the images manifest.json lists. An image whose
// config is that of a manifest among roots (the OCI layout entries of a
// Docker 25 archive) only adds its names to that root; any other gets a
// Docker schema 2 manifest written for it.
func (im *importer) importDockerSave(ctx context.Context, a *archive, roots []*image) ([]*image, error) {
	ms, err := decodeManifestJSON(a.files[fileManifest].data)
	if err != nil {
		return nil, err
	}
	var repos map[string][]string
	if e := a.files[fileRepositories]; e != nil {
		if repos, err = decodeRepositories(e.data); err != nil {
			return nil, err
		}
	}
	imgs := roots
	for i, m := range ms {
		names := m.RepoTags
		if len(names) == 0 && len(m.Layers) > 0 {
			names = repos[path.Base(path.Dir(m.Layers[len(m.Layers)-1]))]
		}
		cfg, err := a.lookup(m.Config)
		if err != nil {
			return nil, fmt.Errorf("manifest.json: image %d: config: %w", i, err)
		}
		if j := slices.IndexFunc(roots, func(r *image) bool { return slices.Contains(r.configs, cfg.desc.Digest) }); j >= 0 {
			roots[j].names = append(roots[j].names, names...)
			continue
		}
		img, err := im.importDockerImage(ctx, a, m, cfg)
		if err != nil {
			return nil, fmt.Errorf("manifest.json: image %d: %w", i, err)
		}
		if img != nil {
			img.names = names
			imgs = append(imgs, img)
		}
	}
	return imgs, nil
}

// dockerSchema2 is a Docker schema 2 manifest.
type dockerSchema2 struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Config        ocispec.Descriptor   `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
}

// importDockerImage writes the manifest of one manifest.json entry, whose
// config is cfg, once its layers are checked against the config. It
// returns nil for an image the platform filter leaves out.
func (im *importer) importDockerImage(ctx context.Context, a *archive, m dockerManifest, cfg *entry) (*image, error) {
	b, err := im.readEntry(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("config %q: %w", m.Config, err)
	}
	var config ocispec.Image
	if err := json.Unmarshal(b, &config); err != nil {
		return nil, invalid("config %q: %v", m.Config, err)
	}
	platform := platformOf(config)
	if !im.matches(platform) {
		return nil, nil
	}
	if err := im.ensureStored(ctx, cfg); err != nil {
		return nil, fmt.Errorf("config %q: %w", m.Config, err)
	}
	diffIDs := config.RootFS.DiffIDs
	layers := make([]ocispec.Descriptor, 0, len(m.Layers))
	for i, p := range m.Layers {
		e, err := a.lookup(p)
		if err != nil {
			if src, ok := m.LayerSources[diffIDAt(diffIDs, i)]; ok && errors.Is(err, ErrMissing) {
				// A foreign layer left out of the archive: the
				// manifest points at where a registry serves it.
				layers = append(layers, src)
				continue
			}
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		mt, err := dockerLayerType(e.comp)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%q): %w", i, p, err)
		}
		if err := im.ensureStored(ctx, e); err != nil {
			return nil, fmt.Errorf("layer %d (%q): %w", i, p, err)
		}
		layers = append(layers, ocispec.Descriptor{MediaType: mt, Digest: e.desc.Digest, Size: e.desc.Size})
	}
	if err := checkDiffIDs(a, layers, diffIDs); err != nil {
		return nil, fmt.Errorf("config %q: %w", m.Config, err)
	}
	cfgDesc := ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Config, Digest: cfg.desc.Digest, Size: cfg.desc.Size}
	mb, err := json.Marshal(dockerSchema2{
		SchemaVersion: 2,
		MediaType:     handlers.MediaTypeDockerSchema2Manifest,
		Config:        cfgDesc,
		Layers:        layers,
	})
	if err != nil {
		return nil, err
	}
	md := ocispec.Descriptor{MediaType: handlers.MediaTypeDockerSchema2Manifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	if err := content.WriteBlob(ctx, im.store, im.nextRef(), bytes.NewReader(mb), md); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	im.plan(md.Digest, handlers.ChildGCLabels(append([]ocispec.Descriptor{cfgDesc}, layers...)))
	im.planLayerLabels(a, layers)
	if platform.OS != "" {
		md.Platform = &platform
	}
	return &image{target: md, configs: []digest.Digest{cfgDesc.Digest}}, nil
}

// diffIDAt returns diffIDs[i], or "" past its end.
func diffIDAt(diffIDs []digest.Digest, i int) digest.Digest {
	if i < len(diffIDs) {
		return diffIDs[i]
	}
	return ""
}

// dockerLayerType returns the Docker media type of a layer compressed as c.
func dockerLayerType(c compression) (string, error) {
	switch c {
	case plain:
		return handlers.MediaTypeDockerSchema2LayerUncompressed, nil
	case gzipped:
		return handlers.MediaTypeDockerSchema2Layer, nil
	case zstded:
		return handlers.MediaTypeDockerSchema2LayerZstd, nil
	}
	return "", fmt.Errorf("%s-compressed layer: %w", c, ErrUnsupported)
}
