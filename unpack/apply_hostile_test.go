//go:build linux

package unpack

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
)

// escapeSandbox is a directory holding the root layers are applied to and a
// sibling "outside" directory that no layer may touch.
type escapeSandbox struct {
	base, root, outside string
}

// newEscapeSandbox creates the sandbox. The root starts with symlinks that point
// out of it, as a lower layer could have left them.
func newEscapeSandbox(t testing.TB) escapeSandbox {
	t.Helper()
	base := t.TempDir()
	s := escapeSandbox{base: base, root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{s.root, s.outside, filepath.Join(s.outside, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"canary": "secret", "sub/file": "keep me"} {
		if err := os.WriteFile(filepath.Join(s.outside, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{
		"escape": "../outside",              // relative, climbs out of the root
		"abs":    s.outside,                 // absolute, to the real outside
		"up":     "../../../../../../../..", // far above the root
		"slash":  "/",
	} {
		if err := os.Symlink(target, filepath.Join(s.root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// outsideState records everything in the sandbox but the root's content.
func (s escapeSandbox) outsideState(t testing.TB) map[string]treeState {
	t.Helper()
	all := readTreeStates(t, s.base)
	for p := range all {
		if p == "root" || strings.HasPrefix(p, "root/") {
			delete(all, p)
		}
	}
	return all
}

func TestApplyHostile(t *testing.T) {
	// Names of the outside directory as an absolute path, inside the root.
	outsideAbs := func(s escapeSandbox) string { return strings.TrimPrefix(s.outside, "/") }
	tests := []struct {
		name       string
		layers     func(t *testing.T, s escapeSandbox) [][]byte
		opts       []ApplyOption
		wantErr    error
		wantUnsafe bool
		// landed is where, relative to the root, the layer's "pwned" file
		// should be found when the entry is contained rather than refused.
		landed func(s escapeSandbox) string
		// gone names paths under the root that the layer removes.
		gone []string
	}{
		{
			name:       "dotdot name",
			layers:     oneLayer(tarFile("../outside/canary", "pwned", 0o644)),
			wantUnsafe: true,
		},
		{
			name:       "dotdot in the middle",
			layers:     oneLayer(tarFile("a/../../outside/canary", "pwned", 0o644)),
			wantUnsafe: true,
		},
		{
			name:       "absolute dotdot",
			layers:     oneLayer(tarFile("/../outside/canary", "pwned", 0o644)),
			wantUnsafe: true,
		},
		{
			name:       "dotdot after a symlink",
			layers:     oneLayer(tarFile("slash/../../outside/canary", "pwned", 0o644)),
			wantUnsafe: true,
		},
		{
			name: "absolute name",
			layers: func(t *testing.T, s escapeSandbox) [][]byte {
				return [][]byte{tarLayer(t, tarFile(s.outside+"/canary", "pwned", 0o644))}
			},
			landed: func(s escapeSandbox) string { return outsideAbs(s) + "/canary" },
		},
		{
			name:   "write through a lower relative symlink that climbs out",
			layers: oneLayer(tarFile("escape/canary", "pwned", 0o644)),
			landed: func(escapeSandbox) string { return "outside/canary" },
		},
		{
			name:   "write through a lower absolute symlink",
			layers: oneLayer(tarFile("abs/canary", "pwned", 0o644)),
			landed: func(s escapeSandbox) string { return outsideAbs(s) + "/canary" },
		},
		{
			name:   "write through a symlink far above the root",
			layers: oneLayer(tarFile("up/outside/canary", "pwned", 0o644)),
			landed: func(escapeSandbox) string { return "outside/canary" },
		},
		{
			name: "symlink then write, same layer",
			layers: func(t *testing.T, s escapeSandbox) [][]byte {
				return [][]byte{tarLayer(t, tarSymlink("evil", s.outside), tarFile("evil/canary", "pwned", 0o644))}
			},
			landed: func(s escapeSandbox) string { return outsideAbs(s) + "/canary" },
		},
		{
			name: "symlink then write, later layer",
			layers: func(t *testing.T, s escapeSandbox) [][]byte {
				return [][]byte{
					tarLayer(t, tarSymlink("evil", "../../outside")),
					tarLayer(t, tarFile("evil/canary", "pwned", 0o644)),
				}
			},
			landed: func(escapeSandbox) string { return "outside/canary" },
		},
		{
			name: "symlink then symlink then write",
			layers: func(t *testing.T, s escapeSandbox) [][]byte {
				return [][]byte{
					tarLayer(t, tarSymlink("one", "two/.."), tarSymlink("two", "../../"), tarDir("three", 0o755), tarSymlink("three/four", "../../../outside")),
					tarLayer(t, tarFile("three/four/canary", "pwned", 0o644)),
				}
			},
			landed: func(escapeSandbox) string { return "outside/canary" },
		},
		{
			name:       "hardlink to outside with dotdot",
			layers:     oneLayer(tarHardlink("h", "../outside/canary")),
			wantUnsafe: true,
		},
		{
			name: "hardlink to an absolute outside path",
			layers: func(t *testing.T, s escapeSandbox) [][]byte {
				return [][]byte{tarLayer(t, tarHardlink("h", s.outside+"/canary"))}
			},
			wantErr: errdefs.ErrInvalidArgument, // read from the root: no such file there
		},
		{
			name:    "hardlink through a symlink that climbs out",
			layers:  oneLayer(tarHardlink("h", "escape/canary")),
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "hardlink through a symlink planted in the same layer",
			layers: func(t *testing.T, s escapeSandbox) [][]byte {
				return [][]byte{tarLayer(t, tarSymlink("evil", s.outside), tarHardlink("h", "evil/canary"))}
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:   "hardlink to a symlink, then write through the hardlink",
			layers: oneLayer(tarHardlink("h", "escape"), tarFile("h/canary", "pwned", 0o644)),
			landed: func(escapeSandbox) string { return "outside/canary" },
		},
		{
			name:       "whiteout of dotdot",
			layers:     oneLayer(tarWhiteout(".wh..."), tarFile("x", "x", 0o644)),
			wantUnsafe: true,
		},
		{
			name:       "whiteout of dot",
			layers:     oneLayer(tarWhiteout("sub/.wh..")),
			wantUnsafe: true,
		},
		{
			name:       "whiteout outside the root",
			layers:     oneLayer(tarWhiteout("../outside/.wh.canary")),
			wantUnsafe: true,
		},
		{
			name: "whiteout through a symlink that climbs out",
			layers: func(t *testing.T, s escapeSandbox) [][]byte {
				return [][]byte{
					tarLayer(t, tarFile("outside/canary", "inside copy", 0o644)),
					tarLayer(t, tarWhiteout("escape/.wh.canary"), tarWhiteout("abs/.wh.canary"), tarWhiteout("up/outside/.wh.sub")),
				}
			},
			gone: []string{"outside/canary"},
		},
		{
			name:   "opaque marker through a symlink that climbs out",
			layers: oneLayer(tarWhiteout("escape/.wh..wh..opq"), tarWhiteout("abs/.wh..wh..opq"), tarWhiteout("slash/.wh..wh..opq")),
			gone:   []string{"escape", "abs", "up", "slash"},
		},
		{
			name:   "a directory entry replaces a symlink, not its target",
			layers: oneLayer(tarDir("escape", 0o777), tarDir("abs", 0o700), tarFile("up", "pwned", 0o644)),
			landed: func(escapeSandbox) string { return "up" },
		},
		{
			name:    "symlink loop",
			layers:  oneLayer(tarSymlink("loop1", "loop2"), tarSymlink("loop2", "/loop1"), tarFile("loop1/x", "x", 0o644)),
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:       "a file replacing the root",
			layers:     oneLayer(tarFile("a/..", "x", 0o644)),
			wantUnsafe: true,
		},
		{
			name:       "a symlink replacing the root",
			layers:     oneLayer(tarSymlink(".", "/")),
			wantUnsafe: true,
		},
		{
			name:       "a hardlink to the root",
			layers:     oneLayer(tarHardlink("x", "/")),
			wantUnsafe: true,
		},
		{
			name: "gzip bomb",
			layers: func(t *testing.T, s escapeSandbox) [][]byte {
				return [][]byte{zeroBomb(t, Gzip, 20<<20, true)}
			},
			opts:    []ApplyOption{WithMaxRatio(50)},
			wantErr: errdefs.ErrResourceExhausted,
		},
		{
			name: "lying diffID",
			layers: func(t *testing.T, s escapeSandbox) [][]byte {
				return [][]byte{tarLayer(t, tarFile("f", "x", 0o644))}
			},
			opts:    []ApplyOption{WithDiffID(digest.FromString("something else"))},
			wantErr: content.ErrDigestMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newEscapeSandbox(t)
			before := s.outsideState(t)
			var err error
			for _, l := range tt.layers(t, s) {
				if _, err = Apply(context.Background(), s.root, bytes.NewReader(l), tt.opts...); err != nil {
					break
				}
			}
			if diffs := diffTreeStates(before, s.outsideState(t)); len(diffs) > 0 {
				t.Fatalf("outside the root changed:\n%s", strings.Join(diffs, "\n"))
			}
			var unsafe *UnsafeEntryError
			switch {
			case tt.wantUnsafe:
				if !errors.As(err, &unsafe) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("Apply() error = %v, want *UnsafeEntryError", err)
				}
				if unsafe.Name == "" || unsafe.Reason == "" {
					t.Errorf("UnsafeEntryError = %+v, want the entry named and a reason", unsafe)
				}
			case !errors.Is(err, tt.wantErr):
				t.Fatalf("Apply() error = %v, want %v", err, tt.wantErr)
			}
			if tt.landed != nil {
				b, err := os.ReadFile(filepath.Join(s.root, tt.landed(s)))
				if err != nil || string(b) != "pwned" {
					t.Errorf("contained write: %s = %q, %v; want \"pwned\"", tt.landed(s), b, err)
				}
			}
			for _, p := range tt.gone {
				if _, err := os.Lstat(filepath.Join(s.root, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still in the root (%v), want it removed", p, err)
				}
			}
		})
	}
}

// oneLayer returns a layers function for a single layer of entries.
func oneLayer(entries ...tarEntry) func(*testing.T, escapeSandbox) [][]byte {
	return func(t *testing.T, _ escapeSandbox) [][]byte { return [][]byte{tarLayer(t, entries...)} }
}

func TestUnsafeEntryErrorNamesTheEntry(t *testing.T) {
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(tarLayer(t, tarFile("ok", "", 0o644), tarFile("../../etc/passwd", "x", 0o644))))
	var unsafe *UnsafeEntryError
	if !errors.As(err, &unsafe) || unsafe.Name != "../../etc/passwd" {
		t.Fatalf("Apply() error = %v, want *UnsafeEntryError for ../../etc/passwd", err)
	}
	if !strings.Contains(err.Error(), `"../../etc/passwd"`) {
		t.Errorf("error %q does not name the entry", err)
	}
}
