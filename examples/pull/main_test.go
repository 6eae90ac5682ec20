package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content/local"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// testCtx returns a context that ends with the test, with a deadline far
// beyond what any test needs, so that a hang fails instead of blocking.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// names returns the names in the store at dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	store, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := store.Images().List(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Name)
	}
	return out
}

// lines returns the lines of out that start, after the elapsed time, with
// step.
func lines(out, step string) []string {
	var found []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && strings.HasSuffix(f[0], "s") && f[1] == step {
			found = append(found, l)
		}
	}
	return found
}

// mustContain fails unless out has a line matching each pattern.
func mustContain(t *testing.T, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)` + p).MatchString(out) {
			t.Errorf("output has no line matching %q:\n%s", p, out)
		}
	}
}

func TestRunDemo(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	start := time.Now()
	if err := run(testCtx(t), []string{"-store", dir}, &out); err != nil {
		t.Fatalf("run() error = %v\n%s", err, out.String())
	}
	t.Logf("the demo took %v", time.Since(start))
	first := out.String()
	host := regexp.QuoteMeta(platforms.Format(platforms.DefaultSpec()))
	mustContain(t, first,
		`^demo: a registry on 127\.0\.0\.1:\d+ \(token auth, user "demo"\) mirrors demo\.pullkit\.test;$`,
		`^ +\d+\.\d\ds resolved +demo\.pullkit\.test/pullkit/demo:latest to index sha256:[0-9a-f]{12}, `,
		`^ +\d+\.\d\ds retried +layer +sha256:[0-9a-f]{12} attempt 1: `,
		// The connection drops after 1 MiB: the download resumes where
		// the bytes received stop, 1 MiB unless the reset lost some.
		`^ +\d+\.\d\ds resumed +layer +sha256:[0-9a-f]{12} at \d+(\.\d)? [KM]iB of 2\.0 MiB$`,
		`^pulled demo\.pullkit\.test/pullkit/demo:latest in [0-9.]+m?s, 6\.0 MiB fetched$`,
		`^  name +demo\.pullkit\.test/pullkit/demo:latest$`,
		`^  id +sha256:[0-9a-f]{64}$`,
		`^  digest +sha256:[0-9a-f]{64} \(index\)$`,
		`^  manifest +sha256:[0-9a-f]{64} \(`+host+`\)$`,
		`^  size +6\.0 MiB$`,
		`^  store +`+regexp.QuoteMeta(dir)+`$`,
	)
	// The index, the host's manifest, its config and 3 layers.
	if got := lines(first, "committed"); len(got) != 6 {
		t.Errorf("%d blobs committed, want 6:\n%s", len(got), first)
	}
	if got := lines(first, "started"); len(got) != 6 {
		t.Errorf("%d blobs started, want 6:\n%s", len(got), first)
	}
	if strings.Contains(first, "\r") {
		t.Errorf("output to a buffer has a progress bar:\n%q", first)
	}
	if got := names(t, dir); !slices.Equal(got, []string{demoRef}) {
		t.Errorf("names = %q, want %q", got, demoRef)
	}

	// Again: everything is in the store.
	out.Reset()
	if err := run(testCtx(t), []string{"-store", dir}, &out); err != nil {
		t.Fatalf("second run() error = %v\n%s", err, out.String())
	}
	second := out.String()
	if got := lines(second, "skipped"); len(got) != 6 {
		t.Errorf("%d blobs skipped on the second run, want 6:\n%s", len(got), second)
	}
	if got := lines(second, "committed"); len(got) != 0 {
		t.Errorf("blobs committed on the second run:\n%s", second)
	}
	mustContain(t, second, `^pulled demo\.pullkit\.test/pullkit/demo:latest in [0-9.]+m?s, 0 B fetched$`)
	if got := names(t, dir); !slices.Equal(got, []string{demoRef}) {
		t.Errorf("names = %q, want %q", got, demoRef)
	}
}

// pushIndex pushes an index with an image for this host and one for
// linux/s390x (linux/arm64 on an s390x host) to reg as team/app:v1.
func pushIndex(reg *registrytest.Registry) (mine, other registrytest.Image) {
	host := platforms.DefaultSpec()
	otherPlatform := ocispec.Platform{OS: "linux", Architecture: "s390x"}
	if host.Architecture == otherPlatform.Architecture {
		otherPlatform.Architecture = "arm64"
	}
	mine = registrytest.RandomImage(1, 2, 64<<10, registrytest.WithPlatform(host))
	other = registrytest.RandomImage(2, 1, 16<<10, registrytest.WithPlatform(otherPlatform))
	reg.PushIndex("team/app", "v1", mine, other)
	return mine, other
}

func TestRunReference(t *testing.T) {
	reg := registrytest.NewT(t, registrytest.WithTokenAuth("alice", "s3cret"))
	mine, other := pushIndex(reg)
	ref := reg.Host() + "/team/app:v1"
	quoted := regexp.QuoteMeta(ref)

	t.Run("with -username and -password", func(t *testing.T) {
		dir := t.TempDir()
		var out bytes.Buffer
		if err := run(testCtx(t), []string{"-store", dir, "-username", "alice", "-password", "s3cret", "-concurrency", "2", ref}, &out); err != nil {
			t.Fatalf("run() error = %v\n%s", err, out.String())
		}
		mustContain(t, out.String(),
			`^ +\d+\.\d\ds resolved +`+quoted+` to index sha256:`,
			`^ +\d+\.\d\ds committed layer +`+regexp.QuoteMeta(short(mine.Layers[0].Descriptor.Digest))+` 64\.\d KiB$`,
			`^pulled `+quoted+` in `,
			`^  id +`+mine.Config.Digest.String()+`$`,
			`^  manifest +`+mine.Manifest.Digest.String()+` \(`+regexp.QuoteMeta(platforms.Format(platforms.DefaultSpec()))+`\)$`,
		)
		if strings.Contains(out.String(), "demo") {
			t.Errorf("a pull by reference mentions the demo:\n%s", out.String())
		}
		if got := names(t, dir); !slices.Equal(got, []string{ref}) {
			t.Errorf("names = %q, want %q", got, ref)
		}
	})

	t.Run("credentials from docker's config.json, -platform", func(t *testing.T) {
		cfgDir := t.TempDir()
		auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
		cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg.Host(), auth)
		if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("DOCKER_CONFIG", cfgDir)
		dir := t.TempDir()
		var out bytes.Buffer
		want := platforms.Format(*other.Manifest.Platform)
		if err := run(testCtx(t), []string{"-store", dir, "-platform", want, ref}, &out); err != nil {
			t.Fatalf("run() error = %v\n%s", err, out.String())
		}
		mustContain(t, out.String(), `^  manifest +`+other.Manifest.Digest.String()+` \(`+regexp.QuoteMeta(want)+`\)$`)
	})

	t.Run("wrong password", func(t *testing.T) {
		var out bytes.Buffer
		err := run(testCtx(t), []string{"-store", t.TempDir(), "-username", "alice", "-password", "hunter2", ref}, &out)
		if !errdefs.IsUnauthorized(err) || !strings.Contains(err.Error(), "credentials") {
			t.Fatalf("run() error = %v, want Unauthorized with a hint about credentials", err)
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(out.String(), "hunter2") {
			t.Errorf("the password leaked: %v\n%s", err, out.String())
		}
	})

	t.Run("no matching platform", func(t *testing.T) {
		var out bytes.Buffer
		err := run(testCtx(t), []string{"-store", t.TempDir(), "-username", "alice", "-password", "s3cret", "-platform", "windows/amd64", ref}, &out)
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), platforms.Format(*other.Manifest.Platform)) {
			t.Fatalf("run() error = %v, want NotFound listing the platforms offered", err)
		}
	})
}

func TestRunHostsDirAndTLS(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials from this machine
	t.Run("-hosts-dir", func(t *testing.T) {
		reg := registrytest.NewT(t)
		mine, _ := pushIndex(reg)
		hosts := t.TempDir()
		// registry.pullkit.test is served by reg, as hosts.toml says.
		if err := os.MkdirAll(filepath.Join(hosts, "registry.pullkit.test"), 0o755); err != nil {
			t.Fatal(err)
		}
		toml := fmt.Sprintf("server = %q\n", reg.URL())
		if err := os.WriteFile(filepath.Join(hosts, "registry.pullkit.test", "hosts.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		var out bytes.Buffer
		if err := run(testCtx(t), []string{"-store", dir, "-hosts-dir", hosts, "registry.pullkit.test/team/app:v1"}, &out); err != nil {
			t.Fatalf("run() error = %v\n%s", err, out.String())
		}
		mustContain(t, out.String(), `^  id +`+mine.Config.Digest.String()+`$`)
		if got := names(t, dir); !slices.Equal(got, []string{"registry.pullkit.test/team/app:v1"}) {
			t.Errorf("names = %q", got)
		}
	})

	t.Run("-insecure", func(t *testing.T) {
		reg := registrytest.NewT(t, registrytest.WithTLS())
		mine, _ := pushIndex(reg)
		ref := reg.Host() + "/team/app:v1"
		var out bytes.Buffer
		if err := run(testCtx(t), []string{"-store", t.TempDir(), "-insecure", ref}, &out); err != nil {
			t.Fatalf("run(-insecure) error = %v\n%s", err, out.String())
		}
		mustContain(t, out.String(), `^  id +`+mine.Config.Digest.String()+`$`)
		// Without it, 127.0.0.1 is spoken to in plain HTTP, which a TLS
		// server refuses.
		err := run(testCtx(t), []string{"-store", t.TempDir(), ref}, &out)
		if err == nil {
			t.Error("run() without -insecure succeeded against a TLS registry")
		}
		t.Logf("without -insecure: %v", err)
	})
}

func TestRunArguments(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials from this machine
	tests := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"two references", []string{"a:1", "b:2"}, "one reference at most"},
		{"password alone", []string{"-password", "x"}, "-password needs -username"},
		{"bad platform", []string{"-platform", "linux/amd64/v3/x"}, "-platform"},
		{"bad reference", []string{"Not/Valid"}, "lowercase"},
		{"unknown flag", []string{"-nope"}, "-nope"},
		{"registry flags in the demo", []string{"-plain-http"}, "the demo needs none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(testCtx(t), append([]string{"-store", t.TempDir()}, tt.args...), &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) error = %v, want one that says %q", tt.args, err, tt.want)
			}
		})
	}

	t.Run("-h", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(testCtx(t), []string{"-h"}, &out); err != nil {
			t.Fatalf("run(-h) error = %v", err)
		}
		for _, flag := range []string{"-store", "-platform", "-plain-http", "-insecure", "-concurrency", "-hosts-dir", "-username", "-password"} {
			if !strings.Contains(out.String(), flag) {
				t.Errorf("usage does not mention %s:\n%s", flag, out.String())
			}
		}
	})
}

// TestProgressBar feeds events to a terminal's progress display: steps
// are lines, and the bar is redrawn in place after each.
func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, true, "example.test/app:v1")
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.Digest("sha256:" + strings.Repeat("ab", 32)), Size: 4 << 20}
	p.observe(fetch.Event{Kind: fetch.Resolved, Desc: layer})
	p.observe(fetch.Event{Kind: fetch.Started, Desc: layer, Total: layer.Size})
	p.observe(fetch.Event{Kind: fetch.Progress, Desc: layer, Offset: 1 << 20, Total: layer.Size})
	p.observe(fetch.Event{Kind: fetch.Resumed, Desc: layer, Offset: 1 << 20, Total: layer.Size})
	p.observe(fetch.Event{Kind: fetch.Progress, Desc: layer, Offset: 3 << 20, Total: layer.Size})
	p.mu.Lock()
	p.drawBar()
	p.mu.Unlock()
	p.observe(fetch.Event{Kind: fetch.Committed, Desc: layer, Offset: layer.Size, Total: layer.Size})
	p.finish()
	p.observe(fetch.Event{Kind: fetch.Skipped, Desc: layer}) // after finish: ignored

	got := out.String()
	for _, want := range []string{
		"\r[##################······]  75%  3.0 MiB/4.0 MiB  0/1 blobs",
		"\r[########################] 100%  4.0 MiB/4.0 MiB  1/1 blobs",
		"resumed   layer    sha256:abababababab at 1.0 MiB of 4.0 MiB\n",
		"committed layer    sha256:abababababab 4.0 MiB\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%q", want, got)
		}
	}
	if !strings.HasSuffix(got, "\n") || strings.Contains(got, "skipped") {
		t.Errorf("output does not end with the bar's last state and a newline:\n%q", got)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 19: "1.5 MiB", 5 << 30: "5.0 GiB"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestRunDemoRootfs unpacks the demo image and checks the tree file by
// file against the layers the demo registry serves.
func TestRunDemoRootfs(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	var out bytes.Buffer
	if err := run(testCtx(t), []string{"-store", filepath.Join(dir, "store"), "-rootfs", rootfs}, &out); err != nil {
		t.Fatalf("run() = %v\n%s", err, out.String())
	}
	want := map[string][]byte{}
	for _, l := range demoImage().Layers {
		for name, data := range l.Files {
			want[name] = data
		}
	}
	got := map[string][]byte{}
	err := filepath.WalkDir(rootfs, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			t.Errorf("%s: type %v, want a regular file", path, d.Type())
			return nil
		}
		rel, _ := filepath.Rel(rootfs, path)
		data, err := os.ReadFile(path)
		got[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("rootfs has %d files, want %d", len(got), len(want))
	}
	for name, data := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s missing from the rootfs", name)
		} else if !bytes.Equal(g, data) {
			t.Errorf("%s: %d bytes differ from the layer's %d", name, len(g), len(data))
		}
	}
	if !regexp.MustCompile(`(?m)^  rootfs    .+ \(\d+ files, unpacked in `).MatchString(out.String()) {
		t.Errorf("output has no rootfs line:\n%s", out.String())
	}

	// A second run refuses to unpack over the tree it left.
	if err := run(testCtx(t), []string{"-store", filepath.Join(dir, "store"), "-rootfs", rootfs}, &out); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("second run into the same -rootfs = %v, want a not-empty error", err)
	}
}
