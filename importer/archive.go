package importer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

// Limits on what an archive may hold. Going over one is a
// [*content.LimitError], which matches content.ErrTooLarge and
// errdefs.ErrResourceExhausted.
const (
	// MaxEntries is the most tar entries (files, directories and links)
	// an archive may have. A docker save archive has three or four per
	// layer, so this admits tens of thousands of layers.
	MaxEntries = 100_000
	// MaxJSONSize is the largest JSON entry (manifest.json, index.json,
	// repositories, oci-layout, a config) the importer reads, and the
	// largest manifest, index or config blob it reads back from the store.
	MaxJSONSize = content.DefaultReadLimit
	// MaxMetadataSize is the most bytes of JSON entries the importer holds
	// in memory at once: all of a docker save archive's configs together.
	MaxMetadataSize = 64 << 20
)

// entryLimit and metadataLimit are MaxEntries and MaxMetadataSize,
// variables so that tests can lower them.
var (
	entryLimit    = MaxEntries
	metadataLimit = int64(MaxMetadataSize)
)

// maxTrailing is how many bytes may follow the end of the tar stream
// (tar implementations pad to a record size, 10 KiB for GNU tar). They are
// read, so that a pipe's writer finishes and a compressed archive's
// checksum is verified, and discarded.
const maxTrailing = 1 << 20

// maxLinkHops bounds the chain of links followed to find a file.
const maxLinkHops = 32

// Names of the files that describe an archive.
const (
	fileManifest     = "manifest.json"
	fileRepositories = "repositories"
	fileLayout       = ocispec.ImageLayoutFile // "oci-layout"
	fileIndex        = ocispec.ImageIndexFile  // "index.json"
)

// entry is a regular file of the archive, once read.
type entry struct {
	// desc has the Digest and Size of the file's bytes.
	desc ocispec.Descriptor
	// comp is what the file's first bytes say about its compression.
	comp compression
	// diff is the digest of the decompressed bytes, when comp is gzip or
	// zstd and they were hashed, or the file's digest when comp is plain.
	diff diffResult
	// data holds a JSON file kept in memory; it is nil for files streamed
	// into the store.
	data []byte
	// stored reports whether the bytes are committed to the store.
	stored bool
}

// archive is what a pass over the tar stream found.
type archive struct {
	files    map[string]*entry
	links    map[string]string
	byDigest map[digest.Digest]*entry
	entries  int
	inMemory int64
}

// lookup returns the file at p, following symbolic and hard links. A path
// the archive does not have matches ErrMissing.
func (a *archive) lookup(p string) (*entry, error) {
	q := p
	for hops := 0; ; hops++ {
		t, ok := a.links[q]
		if !ok {
			break
		}
		if hops == maxLinkHops {
			return nil, invalid("%q: more than %d links to follow", p, maxLinkHops)
		}
		q = t
	}
	e, ok := a.files[q]
	if !ok {
		if q != p {
			return nil, fmt.Errorf("%q (linked to %q): %w", p, q, ErrMissing)
		}
		return nil, fmt.Errorf("%q: %w", p, ErrMissing)
	}
	return e, nil
}

// cleanPath checks a path found in an archive (an entry name, a hard link
// target, a path in manifest.json) and returns it cleaned. Absolute paths
// and paths with a ".." element match ErrUnsafePath; backslashes count as
// separators for that check. The empty path is invalid. "." is returned
// for the archive's root.
func cleanPath(p string) (string, error) {
	if p == "" {
		return "", invalid("empty path")
	}
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || (len(p) >= 2 && p[1] == ':' && isLetter(p[0])) {
		return "", fmt.Errorf("%q is absolute: %w", p, ErrUnsafePath)
	}
	for _, el := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if el == ".." {
			return "", fmt.Errorf("%q has a \"..\" element: %w", p, ErrUnsafePath)
		}
	}
	return path.Clean(p), nil
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// cleanFile is cleanPath for paths that must name a file, not the root.
func cleanFile(p string) (string, error) {
	c, err := cleanPath(p)
	if err == nil && c == "." {
		return "", invalid("%q names the archive's root, not a file", p)
	}
	return c, err
}

// isMetadata reports whether the file at p is a small JSON file the
// importer keeps in memory: the files that describe the archive, and the
// image configs docker save writes at the top level as "<id>.json".
func isMetadata(p string) bool {
	switch p {
	case fileManifest, fileRepositories, fileLayout, fileIndex:
		return true
	}
	return !strings.Contains(p, "/") && strings.HasSuffix(p, ".json")
}

// isLegacy reports whether the file at p is legacy per-layer metadata of
// docker save ("<id>/json", "<id>/VERSION"), which the importer skips.
func isLegacy(p string) bool {
	dir, base := path.Split(p)
	return strings.Count(dir, "/") == 1 && (base == "json" || base == "VERSION")
}

// blobDigest returns the digest that a path "blobs/<alg>/<encoded>" names.
func blobDigest(p string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(p, ocispec.ImageBlobsDir+"/")
	if !ok {
		return "", false
	}
	alg, enc, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	if d.Validate() != nil {
		return "", false
	}
	return d, true
}

// scan reads the archive r once, start to end. Files that may be blobs
// go into the store as they pass, verified and hashed in the same pass;
// small JSON files stay in memory.
func (im *importer) scan(ctx context.Context, r io.Reader) (*archive, error) {
	ra := newReadAhead(r)
	defer ra.Stop()
	src := &sourceReader{ctx: ctx, r: ra}
	br := bufio.NewReaderSize(src, 64<<10)
	head, err := br.Peek(detectSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, src.classify("read archive", err)
	}
	body, release, err := decompress(detect(head), br)
	if err != nil {
		return nil, src.classify("read archive", err)
	}
	defer release()

	a := &archive{files: map[string]*entry{}, links: map[string]string{}, byDigest: map[digest.Digest]*entry{}}
	tr := tar.NewReader(body)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, src.classify("read archive", err)
		}
		a.entries++
		if a.entries > entryLimit {
			return nil, fmt.Errorf("read archive: %w", &content.LimitError{What: "tar entries", Limit: int64(entryLimit), Got: int64(a.entries)})
		}
		if err := im.add(ctx, a, src, tr, hdr); err != nil {
			return nil, err
		}
	}
	n, err := io.Copy(io.Discard, io.LimitReader(body, maxTrailing+1))
	if err != nil {
		return nil, src.classify("read archive end", err)
	}
	if n > maxTrailing {
		return nil, invalid("read archive end: more than %d bytes after the end of the tar stream", maxTrailing)
	}
	return a, nil
}

// add records one tar entry.
func (im *importer) add(ctx context.Context, a *archive, src *sourceReader, r io.Reader, hdr *tar.Header) error {
	p, err := cleanPath(hdr.Name)
	if err != nil {
		return fmt.Errorf("archive entry: %w", err)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
	default:
		// Directories, and devices or fifos that have no place in an
		// image archive: nothing to keep.
		return nil
	}
	if p == "." {
		return invalid("archive entry %q: not a directory", hdr.Name)
	}
	if _, ok := a.files[p]; ok {
		return invalid("archive entry %q: appears twice", hdr.Name)
	}
	if _, ok := a.links[p]; ok {
		return invalid("archive entry %q: appears twice", hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if strings.HasPrefix(hdr.Linkname, "/") {
			return fmt.Errorf("archive entry %q: link to %q is absolute: %w", hdr.Name, hdr.Linkname, ErrUnsafePath)
		}
		target := path.Join(path.Dir(p), hdr.Linkname)
		if target == ".." || strings.HasPrefix(target, "../") {
			return fmt.Errorf("archive entry %q: link to %q leaves the archive: %w", hdr.Name, hdr.Linkname, ErrUnsafePath)
		}
		if _, err := cleanFile(target); err != nil {
			return fmt.Errorf("archive entry %q: link to %q: %w", hdr.Name, hdr.Linkname, err)
		}
		a.links[p] = target
		return nil
	case tar.TypeLink:
		target, err := cleanFile(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("archive entry %q: hard link: %w", hdr.Name, err)
		}
		a.links[p] = target
		return nil
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			// The tar reader would make up the holes of a sparse file:
			// a few bytes of archive could claim terabytes of zeros.
			return invalid("archive entry %q: sparse files have no place in an image archive", hdr.Name)
		}
	}
	var e *entry
	switch {
	case isMetadata(p):
		e, err = im.readJSON(a, src, r, p, hdr.Size)
	case isLegacy(p):
		return nil
	default:
		e, err = im.stream(ctx, src, r, p, hdr.Size)
	}
	if err != nil {
		return err
	}
	a.files[p] = e
	if _, ok := a.byDigest[e.desc.Digest]; !ok || e.stored {
		a.byDigest[e.desc.Digest] = e
	}
	return nil
}

// readJSON keeps a small file in memory.
func (im *importer) readJSON(a *archive, src *sourceReader, r io.Reader, p string, size int64) (*entry, error) {
	if size > MaxJSONSize {
		return nil, fmt.Errorf("archive entry %q: %w", p, &content.LimitError{What: "JSON entry size", Limit: MaxJSONSize, Got: size})
	}
	if a.inMemory+size > metadataLimit {
		return nil, fmt.Errorf("archive entry %q: %w", p, &content.LimitError{What: "JSON entries held in memory", Limit: metadataLimit, Got: a.inMemory + size})
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, src.classify(fmt.Sprintf("read archive entry %q", p), err)
	}
	a.inMemory += size
	e := &entry{desc: ocispec.Descriptor{Digest: digest.FromBytes(b), Size: size}, comp: detect(b), data: b}
	if e.comp == plain {
		e.diff.diffID = e.desc.Digest
	}
	return e, nil
}

// copyBufferSize is the size of the chunks read from the archive.
const copyBufferSize = 1 << 20

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// stream writes the file at p, of size bytes, into the store and commits
// it under its digest. A path "blobs/<alg>/<encoded>" names the digest the
// bytes must have; anything else is committed under the digest computed
// as the bytes pass. When the bytes are compressed, their decompressed
// digest (the layer's diffID) is computed in the same pass.
func (im *importer) stream(ctx context.Context, src *sourceReader, r io.Reader, p string, size int64) (_ *entry, err error) {
	expected, named := blobDigest(p)
	ref := im.nextRef()
	wopts := []content.WriterOpt{content.WithRef(ref)}
	if named {
		wopts = append(wopts, content.WithDescriptor(ocispec.Descriptor{Digest: expected, Size: size}))
	}
	var (
		w    content.Writer
		sink io.Writer
		dg   digest.Digester
	)
	w, err = im.store.Writer(ctx, wopts...)
	switch {
	case err == nil:
		sink = w
		defer func() {
			if err != nil {
				w.Close()
				im.store.Abort(context.WithoutCancel(ctx), ref)
			}
		}()
	case errdefs.IsAlreadyExists(err) && named:
		// The store has the blob: check the archive's copy all the same.
		dg = expected.Algorithm().Digester()
		sink = dg.Hash()
	default:
		return nil, fmt.Errorf("import %q: %w", p, err)
	}

	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	what := fmt.Sprintf("read archive entry %q", p)
	n, err := io.ReadFull(r, buf[:min(size, int64(len(buf)))])
	if err != nil {
		return nil, src.classify(what, err)
	}
	e := &entry{comp: detect(buf[:n])}
	var dh *diffHasher
	if e.comp == gzipped || e.comp == zstded {
		dh = newDiffHasher(e.comp, size)
		defer func() {
			if dh != nil {
				dh.finish()
			}
		}()
	}
	write := func(b []byte) error {
		if _, err := sink.Write(b); err != nil {
			return fmt.Errorf("import %q: %w", p, err)
		}
		if dh != nil {
			dh.Write(b)
		}
		return nil
	}
	if err := write(buf[:n]); err != nil {
		return nil, err
	}
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			if err := write(buf[:k]); err != nil {
				return nil, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, src.classify(what, rerr)
		}
	}

	if w != nil {
		dgst := expected
		if !named {
			dgst = w.Digest()
		}
		if err := w.Commit(ctx, size, dgst); err != nil && !errdefs.IsAlreadyExists(err) {
			return nil, fmt.Errorf("import %q: %w", p, err)
		}
		e.desc = ocispec.Descriptor{Digest: dgst, Size: size}
	} else {
		if got := dg.Digest(); got != expected {
			return nil, fmt.Errorf("import %q: %w", p, &content.MismatchError{Expected: expected, Actual: got, ExpectedSize: size, ActualSize: size})
		}
		e.desc = ocispec.Descriptor{Digest: expected, Size: size}
	}
	e.stored = true
	switch {
	case dh != nil:
		e.diff = dh.finish()
		dh = nil
	case e.comp == plain:
		e.diff.diffID = e.desc.Digest
	}
	return e, nil
}

// ensureStored commits a file kept in memory to the store.
func (im *importer) ensureStored(ctx context.Context, e *entry) error {
	if e.stored {
		return nil
	}
	if err := content.WriteBlob(ctx, im.store, im.nextRef(), bytes.NewReader(e.data), e.desc); err != nil {
		return err
	}
	e.stored = true
	return nil
}

// readEntry returns the bytes of a small file: from memory, or read back
// verified from the store, refused over MaxJSONSize.
func (im *importer) readEntry(ctx context.Context, e *entry) ([]byte, error) {
	if e.data != nil {
		return e.data, nil
	}
	return content.ReadBlob(ctx, im.store, e.desc, MaxJSONSize)
}
