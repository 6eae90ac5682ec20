package unpack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/unpack"
)

func ExampleToDir() {
	ctx := context.Background()
	store := memory.New()
	manifest := writeExampleImage(ctx, store, map[string]string{
		"etc/motd": "hello from the image\n",
		"bin/app":  "#!/bin/sh\necho app\n",
	})

	dir, err := os.MkdirTemp("", "rootfs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A manifest is unpacked whatever its platform; an index would be
	// resolved for the host, or for unpack.WithPlatforms.
	if err := unpack.ToDir(ctx, store, manifest, dir); err != nil {
		log.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Println(filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// bin
	// bin/app
	// etc
	// etc/motd
}

// writeExampleImage writes a one-layer image holding files to store, as a
// registry would serve it: a gzip layer, a config listing its diffID, and
// a manifest. It returns the manifest's descriptor.
func writeExampleImage(ctx context.Context, store content.Ingester, files map[string]string) ocispec.Descriptor {
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	dirs := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				check(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: time.Unix(0, 0)}))
			}
		}
		check(tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), ModTime: time.Unix(0, 0)}))
		_, err := tw.Write([]byte(files[name]))
		check(err)
	}
	check(tw.Close())
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	_, err := zw.Write(tarball.Bytes())
	check(err)
	check(zw.Close())

	layerDesc := writeExampleBlob(ctx, store, ocispec.MediaTypeImageLayerGzip, layer.Bytes())
	config, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(tarball.Bytes())}},
	})
	check(err)
	configDesc := writeExampleBlob(ctx, store, ocispec.MediaTypeImageConfig, config)
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	check(err)
	return writeExampleBlob(ctx, store, ocispec.MediaTypeImageManifest, manifest)
}

func writeExampleBlob(ctx context.Context, store content.Ingester, mediaType string, b []byte) ocispec.Descriptor {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	check(content.WriteBlob(ctx, store, desc.Digest.String(), bytes.NewReader(b), desc))
	return desc
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
