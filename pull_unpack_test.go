package pullkit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit"
	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/resolve/registrytest"
	"github.com/pullkit/pullkit/unpack"
)

// TestPullUnpack pulls with WithUnpack and checks the committed snapshot
// file by file, then that a layer whose diffID lies fails the pull with
// no name written and no snapshot committed for it.
func TestPullUnpack(t *testing.T) {
	reg := registrytest.NewT(t)
	good := smallImage(21, linuxAMD64)
	reg.PushIndex("team/unpack", "v1", good, smallImage(22, linuxARM64))

	ctx := testCtx(t)
	store := memory.New()
	sn, err := unpack.NewDirectory(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Host() + "/team/unpack:v1"
	img, err := pullkit.Pull(ctx, ref, store, store.Images(),
		pullkit.WithPlatforms(platforms.OnlyStrict(linuxAMD64)), pullkit.WithUnpack(sn))
	if err != nil {
		t.Fatalf("Pull(WithUnpack) = %v", err)
	}
	var diffIDs []digest.Digest
	want := map[string][]byte{}
	for _, l := range good.Layers {
		diffIDs = append(diffIDs, l.DiffID)
		for name, data := range l.Files {
			want[name] = data
		}
	}
	if wantID := unpack.ChainID(diffIDs); img.ChainID != wantID {
		t.Fatalf("ChainID = %s, want %s", img.ChainID, wantID)
	}
	info, err := sn.Stat(ctx, img.ChainID.String())
	if err != nil || info.Kind != unpack.KindCommitted {
		t.Fatalf("Stat(chainID) = %+v, %v; want a committed snapshot", info, err)
	}
	checkSnapshot(t, sn, img.ChainID.String(), want)
	checkBlobs(t, store, good) // every blob is in the store too

	// The same pull again applies nothing and keeps the name.
	again, err := pullkit.Pull(ctx, ref, store, store.Images(),
		pullkit.WithPlatforms(platforms.OnlyStrict(linuxAMD64)), pullkit.WithUnpack(sn))
	if err != nil || again.ChainID != img.ChainID {
		t.Fatalf("second Pull(WithUnpack) = %s, %v; want %s", again.ChainID, err, img.ChainID)
	}

	// A config whose first diffID lies.
	liar := lyingDiffID(t, smallImage(23, linuxAMD64))
	reg.PushImage("team/liar", "v1", liar)
	names := store.Images()
	_, err = pullkit.Pull(ctx, reg.Host()+"/team/liar:v1", store, names, pullkit.WithUnpack(sn))
	if !errors.Is(err, content.ErrDigestMismatch) || !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Pull of a lying diffID = %v, want a digest mismatch", err)
	}
	if _, err := names.Get(ctx, reg.Host()+"/team/liar:v1"); !errdefs.IsNotFound(err) {
		t.Errorf("name after a failed unpack: Get() = %v, want NotFound", err)
	}
	var liarDiffIDs []digest.Digest
	for _, l := range liar.Layers {
		liarDiffIDs = append(liarDiffIDs, l.DiffID)
	}
	if _, err := sn.Stat(ctx, unpack.ChainID(liarDiffIDs[:1]).String()); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot of the layer that lied: Stat() = %v, want NotFound", err)
	}
}

// lyingDiffID returns img with its config claiming a wrong diffID for the
// first layer, and the manifest rebuilt to match the new config.
func lyingDiffID(t *testing.T, img registrytest.Image) registrytest.Image {
	t.Helper()
	var cfg ocispec.Image
	if err := json.Unmarshal(img.ConfigBytes, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.RootFS.DiffIDs[0] = digest.FromString("not the layer")
	var err error
	if img.ConfigBytes, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	img.Config.Digest, img.Config.Size = digest.FromBytes(img.ConfigBytes), int64(len(img.ConfigBytes))
	var m ocispec.Manifest
	if err := json.Unmarshal(img.ManifestBytes, &m); err != nil {
		t.Fatal(err)
	}
	m.Config = img.Config
	if img.ManifestBytes, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	img.Manifest.Digest, img.Manifest.Size = digest.FromBytes(img.ManifestBytes), int64(len(img.ManifestBytes))
	return img
}

// checkSnapshot fails unless the committed snapshot key holds exactly the
// regular files of want.
func checkSnapshot(t *testing.T, sn unpack.Snapshotter, key string, want map[string][]byte) {
	t.Helper()
	ctx := testCtx(t)
	mounts, err := sn.View(ctx, key+"-view", key)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Remove(ctx, key+"-view")
	if len(mounts) != 1 || mounts[0].Type != "bind" {
		t.Fatalf("View() mounts = %+v, want one bind mount", mounts)
	}
	root := mounts[0].Source
	got := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got++
		if w, ok := want[filepath.ToSlash(rel)]; !ok || !bytes.Equal(w, data) {
			t.Errorf("snapshot file %s: not the layer's content", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != len(want) {
		t.Errorf("snapshot has %d files, want %d", got, len(want))
	}
}
