//go:build linux

package unpack

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/handlers/platforms"
)

func TestToDirIndexPicksPlatform(t *testing.T) {
	ctx := testContext(t)
	store := memory.New()
	layers, entries := threeLayers(t)
	armEntries := [][]tarEntry{{tarFile("arm", "64", 0o644)}}
	amd := writeImage(t, store, linuxAMD64, layers...)
	arm := writeImage(t, store, ocispec.Platform{OS: "linux", Architecture: "arm64"}, zstdImageLayer(t, tarLayer(t, armEntries[0]...)))
	idx := writeIndex(t, store, map[string]testImage{"linux/amd64": amd, "linux/arm64": arm}, "linux/arm64", "linux/amd64")

	tests := []struct {
		name string
		m    platforms.MatchComparer
		want [][]tarEntry
	}{
		{"amd64", platforms.Only(linuxAMD64), entries},
		{"arm64", platforms.Only(ocispec.Platform{OS: "linux", Architecture: "arm64"}), armEntries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "rootfs") // created by ToDir
			if err := ToDir(ctx, store, idx, dir, WithPlatforms(tt.m)); err != nil {
				t.Fatalf("ToDir() error = %v", err)
			}
			if diffs := diffTrees(readTree(t, dir), wantTree(t, tt.want)); len(diffs) > 0 {
				t.Fatalf("tree differs:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}

	// Without an option, the host's platform is picked.
	host := platforms.DefaultSpec()
	hostImg := writeImage(t, store, host, plainLayer(t, tarLayer(t, tarFile("host", "h", 0o644))))
	hostIdx := writeIndex(t, store, map[string]testImage{"windows/arm64": arm, host.OS + "/" + host.Architecture: hostImg}, "windows/arm64", host.OS+"/"+host.Architecture)
	dir := t.TempDir()
	if err := ToDir(ctx, store, hostIdx, dir); err != nil {
		t.Fatalf("ToDir(default platform) error = %v", err)
	}
	if got := readTree(t, dir); len(got) != 1 || got["host"].Type != "file" {
		t.Fatalf("default platform tree = %v, want the host's image", got)
	}
}

// TestToDirHostile checks that layers which try to write outside the
// directory write nothing there.
func TestToDirHostile(t *testing.T) {
	ctx := testContext(t)
	tests := []struct {
		name    string
		layers  [][]tarEntry
		wantErr error
		want    map[string]treeNode // inside dir, when no error
	}{
		{
			name:    "dot-dot name",
			layers:  [][]tarEntry{{tarFile("ok", "x", 0o644), tarFile("../escaped", "evil", 0o644)}},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "hardlink out",
			layers:  [][]tarEntry{{tarHardlink("passwd", "../../../../etc/passwd")}},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "whiteout of the parent",
			layers:  [][]tarEntry{{tarFile("a", "x", 0o644)}, {tarWhiteout(".wh..."), tarWhiteout("a/../../.wh.sibling")}},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "symlink out, then through it",
			layers: [][]tarEntry{
				{tarSymlink("evil", "../../.."), tarSymlink("abs", "/")},
				{tarFile("evil/pwned", "1", 0o644), tarFile("abs/pwned2", "2", 0o644)},
			},
			want: map[string]treeNode{
				"evil":   treeSymlink("../../.."),
				"abs":    treeSymlink("/"),
				"pwned":  treeFile("1", 0o644),
				"pwned2": treeFile("2", 0o644),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := memory.New()
			var layers []imageLayer
			for _, l := range tt.layers {
				layers = append(layers, gzipImageLayer(t, tarLayer(t, l...)))
			}
			img := writeImage(t, store, linuxAMD64, layers...)
			outside := t.TempDir()
			if err := os.WriteFile(filepath.Join(outside, "sibling"), []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(outside, "a", "b", "rootfs")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			before := readTreeStates(t, outside)

			err := ToDir(ctx, store, img.manifest, dir)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ToDir() error = %v, want %v", err, tt.wantErr)
			}
			var unsafe *UnsafeEntryError
			if tt.wantErr != nil && !errors.As(err, &unsafe) {
				t.Fatalf("ToDir() error = %v, want an *UnsafeEntryError", err)
			}
			after := readTreeStates(t, outside)
			for p := range after {
				if p == "a/b/rootfs" || strings.HasPrefix(p, "a/b/rootfs/") {
					delete(after, p)
					delete(before, p)
				}
			}
			if diffs := diffTreeStates(before, after); len(diffs) > 0 {
				t.Fatalf("ToDir changed what is outside dir:\n%s", strings.Join(diffs, "\n"))
			}
			if tt.want != nil {
				if diffs := diffTrees(readTree(t, dir), tt.want); len(diffs) > 0 {
					t.Fatalf("tree differs:\n%s", strings.Join(diffs, "\n"))
				}
			}
		})
	}
}

func TestToDirErrors(t *testing.T) {
	ctx := testContext(t)
	store := memory.New()
	layer := gzipImageLayer(t, tarLayer(t, tarFile("f", "x", 0o644)))
	img := writeImage(t, store, linuxAMD64, layer)
	lying := writeImageDiffIDs(t, store, linuxAMD64, []digest.Digest{digest.FromString("other")}, layer)
	short := writeImageDiffIDs(t, store, linuxAMD64, nil, layer)
	idx := writeIndex(t, store, map[string]testImage{"linux/amd64": img}, "linux/amd64")
	missing := memory.New()
	gone := writeImage(t, missing, linuxAMD64, layer)
	if err := missing.Delete(ctx, gone.layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		p    content.Provider
		desc ocispec.Descriptor
		dir  string
		opts []Option
		want error
	}{
		{"diffID mismatch", store, lying.manifest, "", nil, content.ErrDigestMismatch},
		{"diff_ids missing", store, short.manifest, "", nil, errdefs.ErrInvalidArgument},
		{"no platform", store, idx, "", []Option{WithPlatforms(platforms.OnlyStrict(ocispec.Platform{OS: "linux", Architecture: "riscv64"}))}, errdefs.ErrNotFound},
		{"missing layer", missing, gone.manifest, "", nil, errdefs.ErrNotFound},
		{"missing manifest", missing, img.manifest, "", nil, errdefs.ErrNotFound},
		{"layer as image", store, img.layers[0], "", nil, errdefs.ErrInvalidArgument},
		{"dir is a file", store, img.manifest, file, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = t.TempDir()
			}
			err := ToDir(ctx, tt.p, tt.desc, dir, tt.opts...)
			if tt.want == nil {
				if err == nil {
					t.Fatal("ToDir() error = nil, want one")
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ToDir() error = %v, want %v", err, tt.want)
			}
		})
	}
	var noMatch *handlers.NoMatchError
	if err := ToDir(ctx, store, idx, t.TempDir(), WithPlatforms(platforms.OnlyStrict(ocispec.Platform{OS: "linux", Architecture: "riscv64"}))); !errors.As(err, &noMatch) {
		t.Fatalf("ToDir(no platform) error = %v, want a *handlers.NoMatchError", err)
	}
}
