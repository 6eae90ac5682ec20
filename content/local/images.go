package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

// Annotations that keep a name record's fields on its index.json entry,
// beside [ocispec.AnnotationRefName], which holds the name. Other tools
// ignore them.
const (
	// AnnotationCreated holds the record's CreatedAt, in RFC 3339 with
	// nanoseconds, UTC.
	AnnotationCreated = "io.pullkit.image.created"
	// AnnotationUpdated holds the record's UpdatedAt, in the same form.
	AnnotationUpdated = "io.pullkit.image.updated"
	// AnnotationLabelPrefix starts the annotations that hold the record's
	// labels: label KEY is the annotation AnnotationLabelPrefix+KEY.
	AnnotationLabelPrefix = "io.pullkit.image.label."
)

// reservedPrefix starts every annotation the store manages itself.
const reservedPrefix = "io.pullkit.image."

// Images is the name store of a layout: each name is an entry of
// index.json, the target descriptor annotated with
// org.opencontainers.image.ref.name = the name, as skopeo, crane, oras and
// umoci expect. CreatedAt, UpdatedAt and labels are further annotations
// (see [AnnotationCreated]). Entries written by other tools, named or not,
// are kept byte for byte, unless Update changes one: a named entry that is
// updated is written again from its descriptor, keeping its annotations and
// the fields of [ocispec.Descriptor].
//
// Changes rewrite index.json atomically under an exclusive file lock, so
// that several processes may add and remove names at once without losing
// any; reads take no lock. An Images is safe for concurrent use.
type Images struct {
	s *Store
}

var _ content.Images = (*Images)(nil)

// Get returns the record for name, or an error that matches
// errdefs.ErrNotFound. When index.json names it more than once, the first
// entry counts.
func (im *Images) Get(ctx context.Context, name string) (content.Image, error) {
	idx, err := im.s.readIndex()
	if err != nil {
		return content.Image{}, fmt.Errorf("get image %q: %w", name, err)
	}
	defer im.s.entries.keep(idx)
	i, err := idx.find(name)
	if err != nil {
		return content.Image{}, fmt.Errorf("get image %q: %w", name, err)
	}
	if i < 0 {
		return content.Image{}, fmt.Errorf("get image %q: %w", name, errdefs.ErrNotFound)
	}
	return idx.image(i)
}

// List returns every named entry of index.json, sorted by name; unnamed
// entries are not listed.
func (im *Images) List(ctx context.Context) ([]content.Image, error) {
	idx, err := im.s.readIndex()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	seen := map[string]bool{}
	var out []content.Image
	for i := range idx.manifests {
		name, err := idx.name(i)
		if err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		img, err := idx.image(i)
		if err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		out = append(out, img)
	}
	im.s.entries.keep(idx)
	slices.SortFunc(out, func(a, b content.Image) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Create adds a record as a new entry at the end of index.json. A taken
// name is an error that matches errdefs.ErrAlreadyExists; an invalid record
// (see [content.ValidateImage]), or target annotations that start with
// "io.pullkit.image.", one that matches errdefs.ErrInvalidArgument. An
// org.opencontainers.image.ref.name annotation on the target is replaced by
// the name.
func (im *Images) Create(ctx context.Context, image content.Image) (content.Image, error) {
	if err := checkImage(image); err != nil {
		return content.Image{}, err
	}
	now := time.Now().UTC()
	image.CreatedAt, image.UpdatedAt = now, now
	raw, err := json.Marshal(entryOf(image))
	if err != nil {
		return content.Image{}, fmt.Errorf("create image %q: %w", image.Name, err)
	}
	err = im.s.modifyIndex(ctx, func(idx *index) error {
		i, err := idx.find(image.Name)
		if err != nil {
			return err
		}
		if i >= 0 {
			return errdefs.ErrAlreadyExists
		}
		idx.manifests = append(idx.manifests, raw)
		return nil
	})
	if err != nil {
		return content.Image{}, fmt.Errorf("create image %q: %w", image.Name, err)
	}
	return imageOf(entryOf(image)), nil
}

// Update changes the record with image.Name as [content.Images.Update]
// describes, in place in index.json, or returns an error that matches
// errdefs.ErrNotFound. Other entries with the same name are left alone.
func (im *Images) Update(ctx context.Context, image content.Image, fieldpaths ...string) (content.Image, error) {
	if image.Name == "" {
		return content.Image{}, fmt.Errorf("update image: empty name: %w", errdefs.ErrInvalidArgument)
	}
	var out content.Image
	err := im.s.modifyIndex(ctx, func(idx *index) error {
		i, err := idx.find(image.Name)
		if err != nil {
			return err
		}
		if i < 0 {
			return errdefs.ErrNotFound
		}
		have, err := idx.image(i)
		if err != nil {
			return err
		}
		upd, err := content.ApplyImageUpdate(have, image, fieldpaths...)
		if err != nil {
			return err
		}
		if err := checkImage(upd); err != nil {
			return err
		}
		upd.UpdatedAt = time.Now().UTC()
		e := entryOf(upd)
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		idx.manifests[i] = raw
		out = imageOf(e)
		return nil
	})
	if err != nil {
		return content.Image{}, fmt.Errorf("update image %q: %w", image.Name, err)
	}
	return out, nil
}

// Delete removes every index.json entry named name, or returns an error
// that matches errdefs.ErrNotFound. The blobs stay.
func (im *Images) Delete(ctx context.Context, name string) error {
	err := im.s.modifyIndex(ctx, func(idx *index) error {
		kept := make([]json.RawMessage, 0, len(idx.manifests))
		found := false
		for i, raw := range idx.manifests {
			n, err := idx.name(i)
			if err != nil {
				return err
			}
			if n == name {
				found = true
				continue
			}
			kept = append(kept, raw)
		}
		if !found {
			return errdefs.ErrNotFound
		}
		idx.manifests = kept
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete image %q: %w", name, err)
	}
	return nil
}

// checkImage validates a record before it is stored.
func checkImage(image content.Image) error {
	if err := content.ValidateImage(image); err != nil {
		return err
	}
	for k := range image.Target.Annotations {
		if strings.HasPrefix(k, reservedPrefix) {
			return fmt.Errorf("image %q: target annotation %q: the prefix %q is reserved: %w", image.Name, k, reservedPrefix, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// entryOf returns the index.json entry for a record.
func entryOf(image content.Image) ocispec.Descriptor {
	e := image.Target
	ann := make(map[string]string, len(e.Annotations)+len(image.Labels)+3)
	for k, v := range e.Annotations {
		ann[k] = v
	}
	ann[ocispec.AnnotationRefName] = image.Name
	if !image.CreatedAt.IsZero() {
		ann[AnnotationCreated] = image.CreatedAt.UTC().Format(time.RFC3339Nano)
	}
	if !image.UpdatedAt.IsZero() {
		ann[AnnotationUpdated] = image.UpdatedAt.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range image.Labels {
		ann[AnnotationLabelPrefix+k] = v
	}
	e.Annotations = ann
	return e
}

// imageOf returns the record an index.json entry holds.
func imageOf(e ocispec.Descriptor) content.Image {
	image := content.Image{Target: e}
	var target map[string]string
	for k, v := range e.Annotations {
		switch {
		case k == ocispec.AnnotationRefName:
			image.Name = v
		case k == AnnotationCreated:
			image.CreatedAt, _ = time.Parse(time.RFC3339Nano, v)
		case k == AnnotationUpdated:
			image.UpdatedAt, _ = time.Parse(time.RFC3339Nano, v)
		case strings.HasPrefix(k, AnnotationLabelPrefix):
			if image.Labels == nil {
				image.Labels = map[string]string{}
			}
			image.Labels[strings.TrimPrefix(k, AnnotationLabelPrefix)] = v
		case strings.HasPrefix(k, reservedPrefix):
			// Managed by a later version of the store: not the target's.
		default:
			if target == nil {
				target = map[string]string{}
			}
			target[k] = v
		}
	}
	image.Target.Annotations = target
	// e may be shared with later reads: the caller gets copies.
	image.Target.URLs = slices.Clone(e.URLs)
	image.Target.Data = slices.Clone(e.Data)
	if e.Platform != nil {
		p := *e.Platform
		p.OSFeatures = slices.Clone(p.OSFeatures)
		image.Target.Platform = &p
	}
	if image.UpdatedAt.IsZero() {
		image.UpdatedAt = image.CreatedAt
	}
	return image
}

// index is index.json, with every entry and every top-level field kept as
// the bytes it was read as, so that what other tools wrote survives a
// rewrite.
type index struct {
	fields    map[string]json.RawMessage // top level, "manifests" excluded
	manifests []json.RawMessage
	// seen holds the entries decoded so far, by their bytes; known holds
	// those an earlier read decoded, so that an index that grew by one
	// entry is not decoded again whole. The descriptors are never modified.
	seen, known map[string]*ocispec.Descriptor
}

// decodedEntries remembers the entries a read of index.json decoded, for
// the next read. It holds one index's worth, so memory stays bounded.
type decodedEntries struct {
	p atomic.Pointer[map[string]*ocispec.Descriptor]
}

// load returns the entries remembered, never nil.
func (d *decodedEntries) load() map[string]*ocispec.Descriptor {
	if m := d.p.Load(); m != nil {
		return *m
	}
	return nil
}

// keep remembers what idx decoded.
func (d *decodedEntries) keep(idx *index) {
	if len(idx.seen) > 0 {
		d.p.Store(&idx.seen)
	}
}

// name returns the ref name of entry i, or "" when it has none.
func (idx *index) name(i int) (string, error) {
	e, err := idx.entry(i)
	if err != nil {
		return "", err
	}
	return e.Annotations[ocispec.AnnotationRefName], nil
}

// entry decodes entry i.
func (idx *index) entry(i int) (*ocispec.Descriptor, error) {
	raw := idx.manifests[i]
	if e, ok := idx.seen[string(raw)]; ok {
		return e, nil
	}
	if idx.seen == nil {
		idx.seen = make(map[string]*ocispec.Descriptor, len(idx.manifests))
	}
	e, ok := idx.known[string(raw)]
	if !ok {
		e = new(ocispec.Descriptor)
		if err := json.Unmarshal(raw, e); err != nil {
			return nil, fmt.Errorf("%s: manifests[%d]: %v: %w", indexFile, i, err, errdefs.ErrDataLoss)
		}
	}
	idx.seen[string(raw)] = e
	return e, nil
}

// image returns the record of entry i.
func (idx *index) image(i int) (content.Image, error) {
	e, err := idx.entry(i)
	if err != nil {
		return content.Image{}, err
	}
	return imageOf(*e), nil
}

// find returns the first entry named name, or -1.
func (idx *index) find(name string) (int, error) {
	for i := range idx.manifests {
		n, err := idx.name(i)
		if err != nil {
			return -1, err
		}
		if n == name {
			return i, nil
		}
	}
	return -1, nil
}

// readIndex reads index.json. A missing file is an empty index.
func (s *Store) readIndex() (*index, error) {
	b, err := os.ReadFile(filepath.Join(s.root, indexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &index{fields: map[string]json.RawMessage{}}, nil
	}
	if err != nil {
		return nil, err
	}
	idx, err := parseIndex(b)
	if err != nil {
		return nil, err
	}
	idx.known = s.entries.load()
	return idx, nil
}

// parseIndex decodes index.json. Invalid JSON is an error that matches
// errdefs.ErrDataLoss: the file was not written by a sane tool, and
// rewriting it would lose what it holds.
//
// It validates the document once and then only splits it: the top-level
// fields and the manifests are kept as raw bytes, and entries are decoded
// when looked at.
func parseIndex(b []byte) (*index, error) {
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v) // for the position of the fault
		return nil, fmt.Errorf("%s: %v: %w", indexFile, err, errdefs.ErrDataLoss)
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return nil, fmt.Errorf("%s: not a JSON object: %w", indexFile, errdefs.ErrDataLoss)
	}
	idx := &index{fields: map[string]json.RawMessage{}}
	var manifests []byte
	for i = skipSpace(b, i+1); b[i] != '}'; i = skipSpace(b, i) {
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
		end := valueEnd(b, i)
		var key string
		if err := json.Unmarshal(b[i:end], &key); err != nil {
			return nil, fmt.Errorf("%s: %v: %w", indexFile, err, errdefs.ErrDataLoss)
		}
		i = skipSpace(b, skipSpace(b, end)+1) // past the colon
		end = valueEnd(b, i)
		value := b[i:end]
		i = end
		if key == "manifests" {
			manifests = value // a repeated key counts once, as in encoding/json
		} else {
			idx.fields[key] = value
		}
	}
	switch {
	case manifests == nil || manifests[0] == 'n': // absent or null
	case manifests[0] == '[':
		for j := skipSpace(manifests, 1); manifests[j] != ']'; j = skipSpace(manifests, j) {
			if manifests[j] == ',' {
				j = skipSpace(manifests, j+1)
			}
			e := valueEnd(manifests, j)
			idx.manifests = append(idx.manifests, manifests[j:e])
			j = e
		}
	default:
		return nil, fmt.Errorf("%s: manifests is not a list: %w", indexFile, errdefs.ErrDataLoss)
	}
	return idx, nil
}

// skipSpace returns the index of the first byte at or after i in b that
// is not JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index of the quote that closes the JSON string
// opening at b[i].
func stringEnd(b []byte, i int) int {
	for {
		i += 1 + bytes.IndexByte(b[i+1:], '"')
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for b[i-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return i
		}
	}
}

// valueEnd returns the index just past the JSON value that starts at b[i].
// b must be valid JSON, so only strings and nesting need tracking.
func valueEnd(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = stringEnd(b, i)
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 {
				return i // the end of a bare value inside a container
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// marshal encodes the index with schemaVersion and mediaType first, other
// top-level fields in name order, and manifests last, one entry a line.
func (idx *index) marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("{\n  \"schemaVersion\": 2,\n  \"mediaType\": ")
	mt, _ := json.Marshal(ocispec.MediaTypeImageIndex)
	buf.Write(mt)
	keys := make([]string, 0, len(idx.fields))
	for k := range idx.fields {
		if k != "schemaVersion" && k != "mediaType" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		kb, _ := json.Marshal(k)
		buf.WriteString(",\n  ")
		buf.Write(kb)
		buf.WriteString(": ")
		if err := json.Compact(&buf, idx.fields[k]); err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
	}
	buf.WriteString(",\n  \"manifests\": [")
	for i, m := range idx.manifests {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n    ")
		if !hasSpace(m) {
			buf.Write(m) // compact already, as entries this store wrote are
		} else if err := json.Compact(&buf, m); err != nil {
			return nil, fmt.Errorf("manifests[%d]: %w", i, err)
		}
	}
	if len(idx.manifests) > 0 {
		buf.WriteString("\n  ")
	}
	buf.WriteString("]\n}\n")
	return buf.Bytes(), nil
}

// hasSpace reports whether b holds a JSON whitespace byte.
func hasSpace(b []byte) bool {
	return bytes.IndexByte(b, ' ') >= 0 || bytes.IndexByte(b, '\n') >= 0 ||
		bytes.IndexByte(b, '\t') >= 0 || bytes.IndexByte(b, '\r') >= 0
}

// lockIndex takes the in-process gate and then the cross-process lock of
// index.json, waiting for both while ctx allows.
func (s *Store) lockIndex(ctx context.Context) (unlock func(), err error) {
	gate := indexGate(s.root)
	select {
	case gate <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l, err := acquire(ctx, filepath.Join(s.root, indexLockFile), true, true)
	if err != nil {
		<-gate
		return nil, err
	}
	return func() {
		l.unlock()
		<-gate
	}, nil
}

// modifyIndex reads index.json, lets fn change it, and writes it back
// atomically, all under the index lock. When fn fails, nothing is written.
func (s *Store) modifyIndex(ctx context.Context, fn func(*index) error) error {
	unlock, err := s.lockIndex(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	err = fn(idx)
	s.entries.keep(idx)
	if err != nil {
		return err
	}
	b, err := idx.marshal()
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.root, indexFile), b, 0o644, time.Time{}, s.sync)
}

// initIndex writes an empty index.json when there is none.
func (s *Store) initIndex() error {
	path := filepath.Join(s.root, indexFile)
	if b, err := os.ReadFile(path); err == nil {
		_, err := parseIndex(b)
		return err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	unlock, err := s.lockIndex(context.Background())
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return nil // another process was first
	}
	b, err := (&index{}).marshal()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o644, time.Time{}, s.sync)
}
