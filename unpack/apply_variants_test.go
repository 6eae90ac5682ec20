//go:build linux

package unpack

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/memory"
	"github.com/pullkit/pullkit/handlers"
	"github.com/pullkit/pullkit/internal/compresstest"
)

// The test binary stands in for an external gzip decompressor (igzip,
// unpigz) when these variables are set: the tests need no such program.
const (
	fakeGunzipEnv    = "PULLKIT_TEST_FAKE_GUNZIP"
	fakeGunzipPIDDir = "PULLKIT_TEST_FAKE_GUNZIP_PIDS"
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeGunzipEnv) == "1" {
		os.Exit(fakeGunzip())
	}
	os.Exit(m.Run())
}

// fakeGunzip decompresses standard input to standard output as igzip -d -c
// does, reporting a bad stream on standard error with exit status 1.
func fakeGunzip() int {
	if dir := os.Getenv(fakeGunzipPIDDir); dir != "" {
		os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), nil, 0o644)
	}
	zr, err := gzip.NewReader(os.Stdin)
	if err == nil {
		_, err = io.Copy(os.Stdout, zr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake gunzip:", err)
		return 1
	}
	return 0
}

// useGzipCommand makes Apply find path as its external gzip decompressor.
func useGzipCommand(t *testing.T, path string) {
	t.Helper()
	old := gzipCommand
	gzipCommand = func() string { return path }
	t.Cleanup(func() { gzipCommand = old })
}

// useFakeGunzip makes the test binary Apply's external decompressor, and
// returns the directory where each of its runs leaves a file named for its
// process ID.
func useFakeGunzip(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pids := t.TempDir()
	t.Setenv(fakeGunzipEnv, "1")
	// A race-enabled binary otherwise sleeps a second before it exits.
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	t.Setenv(fakeGunzipPIDDir, pids)
	useGzipCommand(t, exe)
	return pids
}

// runsOf returns the process IDs the fake decompressor recorded.
func runsOf(t *testing.T, pids string) []int {
	t.Helper()
	ents, err := os.ReadDir(pids)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pid)
	}
	return out
}

// TestApplyExternalGzip checks that a layer decompressed by an external
// program gives the tree, DiffID and size Go's decoder gives, and that the
// program has exited when Apply returns.
func TestApplyExternalGzip(t *testing.T) {
	pids := useFakeGunzip(t)
	var entries []tarEntry
	for i := range 50 {
		entries = append(entries, tarFile(fmt.Sprintf("d%d/f%d", i%7, i), strings.Repeat(fmt.Sprint(i), 3000+i*500), 0o644))
	}
	entries = append(entries, tarSymlink("link", "d1/f1"), tarHardlink("hard", "d2/f2"))
	plain := tarLayer(t, entries...)
	padded := append(slices.Clone(plain), make([]byte, 10240-len(plain)%10240)...)
	twoMembers := append(compresstest.Gzip(plain[:5000]), compresstest.Gzip(plain[5000:])...)
	want := func(t *testing.T, stream []byte) (map[string]treeNode, ApplyResult) {
		root := t.TempDir()
		res, err := Apply(context.Background(), root, bytes.NewReader(stream), WithExternalDecompressor(false))
		if err != nil {
			t.Fatalf("Apply(Go decoder) error = %v", err)
		}
		return readTree(t, root), res
	}
	for _, tc := range []struct {
		name         string
		stream       []byte
		uncompressed []byte
	}{
		{"gzip", compresstest.Gzip(plain), plain},
		{"two members", twoMembers, plain},
		{"record padding", compresstest.Gzip(padded), padded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(runsOf(t, pids))
			wantTree, wantRes := want(t, tc.stream)
			if got := len(runsOf(t, pids)); got != before {
				t.Fatalf("WithExternalDecompressor(false) ran the external program")
			}
			root := t.TempDir()
			res, err := Apply(context.Background(), root, bytes.NewReader(tc.stream))
			if err != nil {
				t.Fatalf("Apply() error = %v", err)
			}
			if res.DiffID != digest.FromBytes(tc.uncompressed) || res.DiffID != wantRes.DiffID || res.Size != wantRes.Size {
				t.Errorf("result = %+v, want %+v", res, wantRes)
			}
			if diffs := diffTrees(readTree(t, root), wantTree); len(diffs) > 0 {
				t.Errorf("tree differs from the Go decoder's:\n%s", strings.Join(diffs, "\n"))
			}
			if got := len(runsOf(t, pids)); got != before+1 {
				t.Errorf("the external program ran %d times, want once", got-before)
			}
		})
	}
	for _, pid := range runsOf(t, pids) {
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("decompressor %d still exists after Apply returned: %v", pid, err)
		}
	}
}

func TestApplyExternalGzipErrors(t *testing.T) {
	pids := useFakeGunzip(t)
	plain := tarLayer(t, tarFile("f", strings.Repeat("data", 1000), 0o644))
	gz := compresstest.Gzip(plain)
	errSource := fmt.Errorf("connection reset: %w", errdefs.ErrUnavailable)
	// An unsafe entry first, then far more content than the pipes hold:
	// Apply stops reading while the program still writes.
	big := compresstest.Gzip(tarLayer(t, tarFile("../escape", "x", 0o644), tarFile("big", strings.Repeat("z", 8<<20), 0o644)))
	tests := []struct {
		name    string
		stream  io.Reader
		opts    []ApplyOption
		wantErr error
		notErr  error
	}{
		{name: "truncated", stream: bytes.NewReader(gz[:len(gz)/2]), wantErr: errdefs.ErrInvalidArgument},
		{name: "corrupt", stream: bytes.NewReader(append(slices.Clone(gz[:20]), bytes.Repeat([]byte{0xff}, 200)...)), wantErr: errdefs.ErrInvalidArgument},
		{
			name:    "reader error",
			stream:  io.MultiReader(bytes.NewReader(gz[:100]), iotest.ErrReader(errSource)),
			wantErr: errSource,
			notErr:  errdefs.ErrInvalidArgument,
		},
		{name: "unsafe entry, output unread", stream: bytes.NewReader(big), wantErr: errdefs.ErrInvalidArgument},
		{name: "gzip bomb", stream: bytes.NewReader(zeroBomb(t, Gzip, 20<<20, false)), opts: []ApplyOption{WithMaxRatio(10)}, wantErr: content.ErrTooLarge},
		{name: "wrong diffID", stream: bytes.NewReader(gz), opts: []ApplyOption{WithDiffID(digest.FromString("x"))}, wantErr: content.ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Apply(context.Background(), t.TempDir(), tt.stream, tt.opts...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Apply() error = %v, want %v", err, tt.wantErr)
			}
			if tt.notErr != nil && errors.Is(err, tt.notErr) {
				t.Errorf("Apply() error = %v, should not match %v", err, tt.notErr)
			}
		})
	}
	for _, pid := range runsOf(t, pids) {
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("decompressor %d still exists after Apply returned: %v", pid, err)
		}
	}
}

// TestApplyExternalDecompressorChoice checks that the program found is
// used by default, and not with WithExternalDecompressor(false).
func TestApplyExternalDecompressorChoice(t *testing.T) {
	falsePath := filepath.Join(t.TempDir(), "igzip")
	if err := os.WriteFile(falsePath, []byte("#!/bin/sh\necho broken >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	useGzipCommand(t, falsePath)
	gz := compresstest.Gzip(tarLayer(t, tarFile("f", "x", 0o644)))
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(gz))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Apply() with a failing decompressor error = %v, want InvalidArgument with its message", err)
	}
	if _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(gz), WithExternalDecompressor(false)); err != nil {
		t.Fatalf("Apply(WithExternalDecompressor(false)) error = %v", err)
	}
	useGzipCommand(t, "")
	if _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(gz)); err != nil {
		t.Fatalf("Apply() with no decompressor found error = %v", err)
	}
}

// TestApplyPortableTree runs the applier's tests on the portable tree,
// the one other platforms use.
func TestApplyPortableTree(t *testing.T) {
	forceRootTree = true
	t.Cleanup(func() { forceRootTree = false })
	for name, test := range map[string]func(*testing.T){
		"Layers":          TestApplyLayers,
		"Hostile":         TestApplyHostile,
		"Times":           TestApplyTimes,
		"Errors":          TestApplyErrors,
		"ManyDirectories": TestApplyManyDirectories,
		"SparseFile":      TestApplySparseFile,
	} {
		t.Run(name, test)
	}
}

// TestUnpackerUnknownApply checks that the Unpacker refuses to apply an
// image it does not know.
func TestUnpackerUnknownApply(t *testing.T) {
	u := NewDirUnpacker(t.TempDir(), memory.New())
	h := u.Wrap(handlers.HandlerFunc(func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		t.Error("the wrapped handler was called")
		return nil, nil
	}))
	_, err := h.Handle(context.Background(), ocispec.Descriptor{MediaType: applyMediaType, Digest: digest.FromString("unknown")})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Handle(apply of an unknown image) error = %v, want InvalidArgument", err)
	}
}

// TestApplyFewDescriptors applies a layer of more directories and files
// than a low open-file limit lets Apply keep open at once.
func TestApplyFewDescriptors(t *testing.T) {
	lowerOpenFileLimit(t, 512)
	if got := heldDirLimit(); got != 64 {
		t.Fatalf("heldDirLimit() = %d with a limit of 512, want 64", got)
	}

	var entries []tarEntry
	want := map[string]treeNode{}
	for i := range 200 {
		d := fmt.Sprintf("d%03d", i)
		entries = append(entries, tarFile(d+"/a", d, 0o640))
		want[d] = treeDir(0o755)
		want[d+"/a"] = treeFile(d, 0o640)
	}
	for i := range 200 { // back to every directory, once the cache has turned over
		d := fmt.Sprintf("d%03d", i)
		entries = append(entries, tarFile(d+"/b", "", 0o600), tarHardlink(d+"/c", d+"/a"))
		want[d+"/b"] = treeFile("", 0o600)
		want[d+"/c"] = treeFile(d, 0o640)
	}
	root := t.TempDir()
	applyLayers(t, root, [][]tarEntry{entries})
	if diffs := diffTrees(readTree(t, root), want); len(diffs) > 0 {
		t.Fatalf("tree differs:\n%s", strings.Join(diffs, "\n"))
	}
}
