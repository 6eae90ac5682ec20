package main

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func tarOf(t *testing.T, hdrs ...*tar.Header) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(h.Name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestExtractTarContains(t *testing.T) {
	tests := []struct {
		name    string
		hdrs    []*tar.Header
		wantErr bool
		check   string // a file that must exist under the root
	}{
		{"plain", []*tar.Header{{Typeflag: tar.TypeDir, Name: "a/", Mode: 0o755}, {Typeflag: tar.TypeReg, Name: "a/f", Mode: 0o644}}, false, "a/f"},
		{"absolute is contained", []*tar.Header{{Typeflag: tar.TypeReg, Name: "/etc/x", Mode: 0o644}}, false, "etc/x"},
		{"dotdot refused", []*tar.Header{{Typeflag: tar.TypeReg, Name: "../x", Mode: 0o644}}, true, ""},
		{"inner dotdot refused", []*tar.Header{{Typeflag: tar.TypeReg, Name: "a/../../x", Mode: 0o644}}, true, ""},
		{"hardlink out refused", []*tar.Header{{Typeflag: tar.TypeLink, Name: "l", Linkname: "../../etc/passwd"}}, true, ""},
		{"write through escaping symlink refused", []*tar.Header{
			{Typeflag: tar.TypeSymlink, Name: "evil", Linkname: "../../"},
			{Typeflag: tar.TypeReg, Name: "evil/x", Mode: 0o644},
		}, true, ""},
		{"hardlink inside", []*tar.Header{{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644}, {Typeflag: tar.TypeLink, Name: "g", Linkname: "f"}}, false, "g"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			err := extractTar(tarOf(t, tt.hdrs...), root)
			if (err != nil) != tt.wantErr {
				t.Fatalf("extractTar: err = %v, want error %v", err, tt.wantErr)
			}
			if tt.check != "" {
				if _, err := os.Stat(filepath.Join(root, tt.check)); err != nil {
					t.Fatalf("want %s: %v", tt.check, err)
				}
			}
			// Nothing may appear beside the root.
			ents, _ := os.ReadDir(parent)
			if len(ents) != 1 {
				t.Fatalf("extractTar wrote outside the root: %v", ents)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"25MB", 25e6, false},
		{"10MiB", 10 << 20, false},
		{"200KB/s", 200e3, false},
		{"1000", 1000, false},
		{"0MB", 0, true},
		{"fast", 0, true},
	}
	for _, tt := range tests {
		got, err := parseRate(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// The workloads are the same on every run with the same seed and scale.
func TestWorkloadDeterministic(t *testing.T) {
	gen := func() *image {
		g, err := newGenerator(7, 0.001, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		im, err := g.tree(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	a, b := gen(), gen()
	if a.Root.Digest != b.Root.Digest {
		t.Fatalf("two generations differ: %s and %s", a.Root.Digest, b.Root.Digest)
	}
	if len(a.Layers) != 2 || a.Layers[0].USize == 0 {
		t.Fatalf("tree has %d layers", len(a.Layers))
	}
}

func TestMachineBusy(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc/stat")
	}
	before := machineBusy()
	if before <= 0 {
		t.Fatalf("machineBusy() = %v, want the busy time since boot", before)
	}
	// Spin for 200 ms of CPU: the machine's busy time grows by about as
	// much (ticks are 10 ms; other processes only add to it).
	deadline := time.Now().Add(200 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = n * n
	}
	if d := machineBusy() - before; d < 0.1 {
		t.Errorf("busy time grew by %.2f s over 200 ms of spinning, want at least 0.1", d)
	}
}

func TestMedianBusy(t *testing.T) {
	rs := []result{
		{Seconds: 2, Busy: 4},   // 100% of 2 CPUs
		{Seconds: 1, Busy: 1},   // 50%
		{Seconds: 4, Busy: 2.4}, // 30%
	}
	if got := medianBusy(rs, 2); got != 50 {
		t.Errorf("medianBusy = %v, want 50", got)
	}
	if got := medianOf(rs, func(r result) float64 { return r.Seconds }); got != 2 {
		t.Errorf("median of the seconds = %v, want 2", got)
	}
	if got := medianBusy(nil, 2); got != 0 {
		t.Errorf("medianBusy of no runs = %v, want 0", got)
	}
}
