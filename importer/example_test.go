package importer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"

	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/importer"
)

// Example imports a tiny docker save archive, built here in memory, into a
// memory store: one image of one layer, tagged "hello:latest".
func Example() {
	// A layer is a tar of the image's files.
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	lw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: 6})
	lw.Write([]byte("hello\n"))
	lw.Close()

	// The config lists the layer's digest among its diff_ids.
	config, _ := json.Marshal(map[string]any{
		"os": "linux", "architecture": "amd64",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{digest.FromBytes(layer.Bytes())}},
	})
	configName := digest.FromBytes(config).Encoded() + ".json"
	manifest, _ := json.Marshal([]map[string]any{{
		"Config": configName, "RepoTags": []string{"hello:latest"}, "Layers": []string{"layer1/layer.tar"},
	}})

	// docker save writes the layers, the config, then manifest.json.
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	for _, f := range []struct {
		name string
		body []byte
	}{{"layer1/layer.tar", layer.Bytes()}, {configName, config}, {"manifest.json", manifest}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body))})
		tw.Write(f.body)
	}
	tw.Close()

	ctx := context.Background()
	store := memory.New()
	imgs, err := importer.Import(ctx, store, store.Images(), &archive)
	if err != nil {
		log.Fatal(err)
	}
	for _, img := range imgs {
		m, err := handlers.Manifest(ctx, store, img.Target, nil)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(img.Name, len(m.Layers), "layer(s)", m.Layers[0].MediaType)
	}
	// Output: docker.io/library/hello:latest 1 layer(s) application/vnd.docker.image.rootfs.diff.tar
}
