package local_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/local"
)

// The tests in this file run the test binary again as helper processes
// (TestHelperProcess) that share one layout, to check what the store
// promises across processes: a killed writer's ingest resumes, and
// concurrent writers lose no names, labels or blobs.

// helperEnv selects a helper's role; without it TestHelperProcess does
// nothing.
const helperEnv = "PULLKIT_LOCAL_HELPER"

// helperPrefix starts the lines a helper reports on stdout, so that they
// stand apart from the test binary's own output.
const helperPrefix = "helper: "

// blobData returns size deterministic pseudo-random bytes; every process
// computes the same ones.
func blobData(size int) ([]byte, ocispec.Descriptor) {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{42})
	r.Read(b)
	return b, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(b), Size: int64(size)}
}

// TestHelperProcess is not a test: it is the body of the helper processes.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		return
	}
	if err := runHelper(role); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runHelper(role string) error {
	ctx := context.Background()
	s, err := local.New(os.Getenv("ROOT"))
	if err != nil {
		return err
	}
	report := func(format string, args ...any) { fmt.Printf(helperPrefix+format+"\n", args...) }
	atoi := func(name string) int { n, _ := strconv.Atoi(os.Getenv(name)); return n }
	switch role {
	case "write-partial":
		// Write part of a blob in small pieces, report how much, and wait
		// to be killed.
		data, desc := blobData(atoi("SIZE"))
		w, err := s.Writer(ctx, content.WithRef(os.Getenv("REF")), content.WithDescriptor(desc))
		if err != nil {
			return err
		}
		part := data[:atoi("PART")]
		for len(part) > 0 {
			n := min(len(part), 4000)
			if _, err := w.Write(part[:n]); err != nil {
				return err
			}
			part = part[n:]
		}
		st, err := w.Status()
		if err != nil {
			return err
		}
		report("written %d", st.Offset)
		io.Copy(io.Discard, os.Stdin) // until killed, or the parent goes
		return errors.New("not killed")
	case "resume":
		data, desc := blobData(atoi("SIZE"))
		w, err := s.Writer(ctx, content.WithRef(os.Getenv("REF")), content.WithDescriptor(desc))
		if err != nil {
			return err
		}
		defer w.Close()
		st, err := w.Status()
		if err != nil {
			return err
		}
		report("resumed at %d", st.Offset)
		r := &countingSeeker{r: bytes.NewReader(data)}
		if err := content.Copy(ctx, w, r, desc.Size, desc.Digest); err != nil {
			return err
		}
		report("committed after reading %d", r.n)
		return nil
	case "names":
		id := os.Getenv("ID")
		for i := range atoi("COUNT") {
			img := content.Image{
				Name:   fmt.Sprintf("example.com/proc%s/image:%d", id, i),
				Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(id + "/" + strconv.Itoa(i)), Size: 1},
			}
			if _, err := s.Images().Create(ctx, img); err != nil {
				return err
			}
		}
		report("created")
		return nil
	case "labels":
		dgst := digest.Digest(os.Getenv("DIGEST"))
		for i := range atoi("COUNT") {
			key := fmt.Sprintf("proc%s.%d", os.Getenv("ID"), i)
			if _, err := s.Update(ctx, content.Info{Digest: dgst, Labels: map[string]string{key: "v"}}, "labels."+key); err != nil {
				return err
			}
		}
		report("labelled")
		return nil
	case "write-blob":
		data, desc := blobData(atoi("SIZE"))
		report("ready")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return err
		}
		// Small reads keep the writers busy long enough to meet.
		r := &chunkReader{r: bytes.NewReader(data), size: 16 << 10}
		if err := content.WriteBlob(ctx, s, os.Getenv("REF"), r, desc); err != nil {
			return err
		}
		report("written")
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

// countingSeeker counts the bytes read from it; content.Copy skips what a
// resumed ingest has by seeking.
type countingSeeker struct {
	r io.ReadSeeker
	n int64
}

func (c *countingSeeker) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingSeeker) Seek(off int64, whence int) (int64, error) { return c.r.Seek(off, whence) }

type chunkReader struct {
	r    io.Reader
	size int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.size)]) }

// helper is a running helper process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // reported lines, closed at EOF
	out   *bytes.Buffer
}

// startHelper starts the test binary as a helper with role and env.
func startHelper(t *testing.T, role string, env ...string) *helper {
	t.Helper()
	// The timeout only turns a hung helper into a failure. It is generous:
	// a helper may rewrite index.json hundreds of times, fsyncing each, and
	// fsync is slow on a loaded machine.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + role}, env...)...)
	h := &helper{cmd: cmd, lines: make(chan string, 16), out: new(bytes.Buffer)}
	cmd.Stderr = h.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), helperPrefix); ok {
				h.lines <- line
			}
		}
	}()
	return h
}

// next returns the helper's next report, or fails t when it exits first.
func (h *helper) next(t *testing.T) string {
	t.Helper()
	line, ok := <-h.lines
	if !ok {
		err := h.cmd.Wait()
		t.Fatalf("helper exited (%v) without reporting; stderr:\n%s", err, h.out)
	}
	return line
}

// wait waits for the helper to exit and fails t unless it succeeded.
func (h *helper) wait(t *testing.T) {
	t.Helper()
	for range h.lines {
	}
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v; stderr:\n%s", err, h.out)
	}
}

// verifyBlob fails t unless s holds desc with the bytes data.
func verifyBlob(t *testing.T, s *local.Store, desc ocispec.Descriptor, data []byte) {
	t.Helper()
	ra, err := s.ReaderAt(t.Context(), desc)
	if err != nil {
		t.Fatalf("ReaderAt(%s) error = %v", desc.Digest, err)
	}
	defer ra.Close()
	got, err := io.ReadAll(content.NewReader(ra))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob %s: read %d bytes (%v), want the %d written", desc.Digest, len(got), err, len(data))
	}
}

func TestKilledWriterResumesInAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	const size, part = 4 << 20, 1<<20 + 12345
	env := []string{"ROOT=" + dir, "REF=layer", "SIZE=" + strconv.Itoa(size), "PART=" + strconv.Itoa(part)}

	writer := startHelper(t, "write-partial", env...)
	var written int64
	if _, err := fmt.Sscanf(writer.next(t), "written %d", &written); err != nil || written != part {
		t.Fatalf("helper wrote %d (%v), want %d", written, err, part)
	}
	if err := writer.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	writer.cmd.Wait()

	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Status(t.Context(), "layer"); err != nil || st.Offset != written {
		t.Fatalf("Status() after the kill = %+v, %v; want offset %d", st, err, written)
	}

	resumer := startHelper(t, "resume", env...)
	var at, read int64
	if _, err := fmt.Sscanf(resumer.next(t), "resumed at %d", &at); err != nil || at != written {
		t.Errorf("second helper resumed at %d (%v), want %d", at, err, written)
	}
	if _, err := fmt.Sscanf(resumer.next(t), "committed after reading %d", &read); err != nil || read != size-written {
		t.Errorf("second helper read %d bytes (%v), want the %d it lacked", read, err, size-written)
	}
	resumer.wait(t)

	data, desc := blobData(size)
	verifyBlob(t, s, desc, data)
	if sts, err := s.ListStatuses(t.Context()); err != nil || len(sts) != 0 {
		t.Errorf("ListStatuses() = %+v, %v; want the ingest gone", sts, err)
	}
}

func TestProcessesCreatingNamesLoseNone(t *testing.T) {
	dir := t.TempDir()
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	// An entry another tool wrote must survive all the rewrites.
	foreign := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":3,"x-tool":"kept"}]}`
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	const procs, each = 8, 50
	var hs []*helper
	for i := range procs {
		hs = append(hs, startHelper(t, "names", "ROOT="+dir, "ID="+strconv.Itoa(i), "COUNT="+strconv.Itoa(each)))
	}
	for _, h := range hs {
		h.wait(t)
	}
	imgs, err := s.Images().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != procs*each {
		t.Errorf("List() = %d names, want %d", len(imgs), procs*each)
	}
	idx := readIndex(t, dir)
	if len(idx.Manifests) != procs*each+1 {
		t.Errorf("index.json has %d entries, want %d", len(idx.Manifests), procs*each+1)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if !bytes.Contains(b, []byte(`"x-tool":"kept"`)) {
		t.Errorf("the foreign entry is gone from index.json")
	}
}

func TestProcessesUpdatingLabelsLoseNone(t *testing.T) {
	dir := t.TempDir()
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	desc := putBlob(t, s, "labelled by many")
	const procs, each = 4, 20
	var hs []*helper
	for i := range procs {
		hs = append(hs, startHelper(t, "labels", "ROOT="+dir, "ID="+strconv.Itoa(i), "COUNT="+strconv.Itoa(each), "DIGEST="+desc.Digest.String()))
	}
	for _, h := range hs {
		h.wait(t)
	}
	info, err := s.Info(t.Context(), desc.Digest)
	if err != nil || len(info.Labels) != procs*each {
		t.Errorf("Info() = %d labels, %v; want %d", len(info.Labels), err, procs*each)
	}
}

func TestProcessesWritingOneBlobLeaveOneCopy(t *testing.T) {
	dir := t.TempDir()
	const size = 1 << 20
	// Two writers share a ref, two more have refs of their own.
	var hs []*helper
	for _, ref := range []string{"shared", "shared", "own-1", "own-2"} {
		hs = append(hs, startHelper(t, "write-blob", "ROOT="+dir, "REF="+ref, "SIZE="+strconv.Itoa(size)))
	}
	for _, h := range hs {
		if got := h.next(t); got != "ready" {
			t.Fatalf("helper reported %q, want ready", got)
		}
	}
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Go(func() { io.WriteString(h.stdin, "go\n") })
	}
	wg.Wait()
	for _, h := range hs {
		h.wait(t)
	}

	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, desc := blobData(size)
	verifyBlob(t, s, desc, data)
	var blobs []digest.Digest
	s.Walk(t.Context(), func(info content.Info) error { blobs = append(blobs, info.Digest); return nil })
	if len(blobs) != 1 {
		t.Errorf("Walk() = %v, want one blob", blobs)
	}
	if fi, err := os.Stat(filepath.Join(dir, "blobs", "sha256", desc.Digest.Encoded())); err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("blob file: %v, %v; want mode 0444", fi, err)
	}
	if sts, err := s.ListStatuses(t.Context()); err != nil || len(sts) != 0 {
		t.Errorf("ListStatuses() = %+v, %v; want no ingests left", sts, err)
	}
}
