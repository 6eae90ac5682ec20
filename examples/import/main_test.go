package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content/local"
	"github.com/pullkit/pullkit/importer"
	"github.com/pullkit/pullkit/internal/compresstest"
	"github.com/pullkit/pullkit/unpack"
)

// dockerSave returns a docker save archive of one image of one layer,
// tagged tag, and the digest of its config.
func dockerSave(t *testing.T, tag string) ([]byte, digest.Digest) {
	t.Helper()
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	body := bytes.Repeat([]byte("pullkit "), 4096)
	lw.WriteHeader(&tar.Header{Name: "data.txt", Mode: 0o644, Size: int64(len(body))})
	lw.Write(body)
	lw.Close()
	config, _ := json.Marshal(map[string]any{
		"os": "linux", "architecture": "amd64",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{digest.FromBytes(layer.Bytes())}},
	})
	cfgDigest := digest.FromBytes(config)
	manifest, _ := json.Marshal([]map[string]any{{
		"Config": cfgDigest.Encoded() + ".json", "RepoTags": []string{tag}, "Layers": []string{"l/layer.tar"},
	}})
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	for _, f := range []struct {
		name string
		body []byte
	}{{"l/layer.tar", layer.Bytes()}, {cfgDigest.Encoded() + ".json", config}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return archive.Bytes(), cfgDigest
}

func TestRunFile(t *testing.T) {
	archive, cfg := dockerSave(t, "hello:1")
	file := filepath.Join(t.TempDir(), "hello.tar.gz")
	if err := os.WriteFile(file, compresstest.Gzip(archive), 0o644); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(t.TempDir(), "store")

	var out bytes.Buffer
	if err := run(context.Background(), []string{"-store", storeDir, "-digests", "-prefix", "example.com/imports", file}, &out); err != nil {
		t.Fatalf("run() error = %v", err)
	}
	t.Logf("output:\n%s", out.String())
	// The layer tar is 34304 bytes; with the config and manifest, 34.9kB.
	row := regexp.MustCompile(`(?m)^docker\.io/library/hello:1\s+` + cfg.Encoded()[:12] + `\s+34\.9kB$`)
	if !row.MatchString(out.String()) {
		t.Errorf("output has no row for hello:1 with ID %s and its size:\n%s", cfg.Encoded()[:12], out.String())
	}
	if !regexp.MustCompile(`(?m)^example\.com/imports@sha256:[0-9a-f]{64}\s+` + cfg.Encoded()[:12]).MatchString(out.String()) {
		t.Errorf("output has no digest name:\n%s", out.String())
	}

	// The names are in the store, where a later process finds them.
	store, err := local.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := store.Images().List(context.Background())
	if err != nil || len(imgs) != 2 || imgs[0].Name != "docker.io/library/hello:1" {
		t.Errorf("store names = %+v (err %v)", imgs, err)
	}
}

func TestRunStdin(t *testing.T) {
	archive, cfg := dockerSave(t, "ghcr.io/acme/piped:2")
	defer func(r io.Reader) { stdin = r }(stdin)
	stdin = bytes.NewReader(archive)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-store", t.TempDir(), "-"}, &out); err != nil {
		t.Fatalf("run() error = %v", err)
	}
	if !strings.Contains(out.String(), "ghcr.io/acme/piped:2") || !strings.Contains(out.String(), cfg.Encoded()[:12]) {
		t.Errorf("output = %q, want the name and ID", out.String())
	}
}

func TestRunErrors(t *testing.T) {
	storeDir := t.TempDir()
	bad := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(bad, []byte("this is not a tar archive, not even close to one, by any measure at all"), 0o644)
	tests := []struct {
		name    string
		args    []string
		wantErr error
	}{
		{"no archive", []string{"-store", storeDir}, nil},
		{"missing file", []string{"-store", storeDir, filepath.Join(storeDir, "nope.tar")}, os.ErrNotExist},
		{"not an archive", []string{"-store", storeDir, bad}, importer.ErrInvalidArchive},
		{"bad platform", []string{"-store", storeDir, "-platform", "linux/", bad}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, &out)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("run() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
	store, err := local.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	if imgs, _ := store.Images().List(context.Background()); len(imgs) != 0 {
		t.Errorf("failed runs left names %+v", imgs)
	}
}

func TestRunSnapshots(t *testing.T) {
	archive, _ := dockerSave(t, "hello:1")
	file := filepath.Join(t.TempDir(), "hello.tar")
	if err := os.WriteFile(file, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	snapDir := filepath.Join(dir, "snapshots")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-store", filepath.Join(dir, "store"), "-snapshots", snapDir, file}, &out); err != nil {
		t.Fatalf("run() error = %v", err)
	}
	m := regexp.MustCompile(`(?m)^docker\.io/library/hello:1\s+snapshot (sha256:[0-9a-f]{64})`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output names no snapshot for hello:1:\n%s", out.String())
	}
	sn, err := unpack.NewDirectory(snapDir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := sn.Stat(context.Background(), m[1])
	if err != nil || info.Kind != unpack.KindCommitted {
		t.Errorf("Stat(%s) = %+v, %v; want a committed snapshot", m[1], info, err)
	}
}
