package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
)

// readIngest reads the status of the ingest in dir from its files. An
// ingest without a ref file (absent, or not yet started) is an error that
// matches errdefs.ErrNotFound. Offset is the size of the data file, so
// bytes a live writer still buffers are not counted.
func readIngest(dir string) (content.Status, error) {
	ref, err := os.ReadFile(filepath.Join(dir, ingestRef))
	if errors.Is(err, fs.ErrNotExist) {
		return content.Status{}, errdefs.ErrNotFound
	}
	if err != nil {
		return content.Status{}, err
	}
	st := content.Status{Ref: string(ref)}
	// The other files are advisory: unreadable ones read as unknown.
	if b, err := os.ReadFile(filepath.Join(dir, ingestTotal)); err == nil {
		st.Total, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ingestExpected)); err == nil {
		if d := digest.Digest(strings.TrimSpace(string(b))); d.Validate() == nil {
			st.Expected = d
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, ingestStartedAt)); err == nil {
		st.StartedAt, _ = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	}
	st.UpdatedAt = st.StartedAt
	fi, err := os.Stat(filepath.Join(dir, ingestData))
	switch {
	case err == nil:
		st.Offset = fi.Size()
		if mt := fi.ModTime().UTC(); mt.After(st.UpdatedAt) {
			st.UpdatedAt = mt
		}
	case !errors.Is(err, fs.ErrNotExist):
		return content.Status{}, err
	}
	return st, nil
}

// Status returns the ingest with this ref, or an error that matches
// errdefs.ErrNotFound. The offset of an ingest that a writer of this
// process holds counts the bytes the writer still buffers; one held by
// another process counts what that writer has written to the file.
func (s *Store) Status(ctx context.Context, ref string) (content.Status, error) {
	st, err := s.status(s.ingestPath(ref))
	if err != nil {
		return content.Status{}, fmt.Errorf("status of ingest %q: %w", ref, err)
	}
	return st, nil
}

// status reads the ingest in dir, with the progress of a live writer.
func (s *Store) status(dir string) (content.Status, error) {
	st, err := readIngest(dir)
	if err != nil {
		return content.Status{}, err
	}
	if p := liveProgress(dir); p != nil {
		st.Offset = p.offset.Load()
		st.UpdatedAt = time.Unix(0, p.updated.Load()).UTC()
	}
	return st, nil
}

// ListStatuses returns the ingests whose ref starts with one of the
// prefixes, or all of them when none is given, sorted by ref. Offsets are
// counted as [Store.Status] does.
func (s *Store) ListStatuses(ctx context.Context, prefixes ...string) ([]content.Status, error) {
	dir := filepath.Join(s.root, ingestDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list ingests: %w", err)
	}
	var out []content.Status
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		st, err := s.status(filepath.Join(dir, e.Name()))
		if errdefs.IsNotFound(err) {
			continue // committed, aborted or being started meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list ingests: %w", err)
		}
		if len(prefixes) > 0 && !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(st.Ref, p) }) {
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b content.Status) int { return strings.Compare(a.Ref, b.Ref) })
	return out, nil
}

// Abort removes the ingest with this ref. It fails with an error that
// matches errdefs.ErrUnavailable while a writer, in any process, holds the
// ref, and with one that matches errdefs.ErrNotFound when there is no such
// ingest.
func (s *Store) Abort(ctx context.Context, ref string) error {
	dir := s.ingestPath(ref)
	if !holdRef(dir, nil) {
		return fmt.Errorf("abort ingest %q: held by a writer: %w", ref, errdefs.ErrUnavailable)
	}
	defer releaseRef(dir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("abort ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	l, err := acquire(ctx, filepath.Join(dir, ingestLock), true, false)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("abort ingest %q: %w", ref, errdefs.ErrNotFound)
	case errors.Is(err, errLocked):
		return fmt.Errorf("abort ingest %q: held by a writer: %w", ref, errdefs.ErrUnavailable)
	case err != nil:
		return fmt.Errorf("abort ingest %q: %w", ref, err)
	}
	defer l.unlock()
	_, serr := readIngest(dir)
	if err := s.removeIngest(dir); err != nil {
		return fmt.Errorf("abort ingest %q: %w", ref, err)
	}
	if errdefs.IsNotFound(serr) {
		// Only a directory a writer never got to start: gone now, but
		// there was no ingest to abort.
		return fmt.Errorf("abort ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	return nil
}
