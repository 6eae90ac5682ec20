package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/content"
)

// Info returns the blob's size, its commit time (the file's modification
// time), and its labels with the time they last changed. A blob the store
// does not have is an error that matches errdefs.ErrNotFound.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if err := validDigest("info", dgst); err != nil {
		return content.Info{}, err
	}
	fi, err := os.Stat(s.blobPath(dgst))
	if errors.Is(err, fs.ErrNotExist) {
		return content.Info{}, fmt.Errorf("info %s: %w", dgst, errdefs.ErrNotFound)
	}
	if err != nil {
		return content.Info{}, fmt.Errorf("info %s: %w", dgst, err)
	}
	info, err := s.info(dgst, fi)
	if err != nil {
		return content.Info{}, fmt.Errorf("info %s: %w", dgst, err)
	}
	return info, nil
}

// info builds the Info of the blob dgst from its file's FileInfo.
func (s *Store) info(dgst digest.Digest, fi fs.FileInfo) (content.Info, error) {
	info := content.Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime().UTC()}
	info.UpdatedAt = info.CreatedAt
	labels, mtime, err := readLabels(s.labelsPath(dgst))
	if err != nil {
		return content.Info{}, err
	}
	info.Labels = labels
	if !mtime.IsZero() {
		info.UpdatedAt = mtime
	}
	return info, nil
}

// readLabels reads a labels file. A missing file is no labels and a zero
// time.
func readLabels(path string) (map[string]string, time.Time, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	var labels map[string]string
	if err := json.NewDecoder(f).Decode(&labels); err != nil {
		return nil, time.Time{}, fmt.Errorf("labels %s: %w", path, err)
	}
	if len(labels) == 0 {
		labels = nil
	}
	return labels, fi.ModTime().UTC(), nil
}

// writeLabels replaces a labels file. No labels are written as {}, so
// that the file's time still says when they were removed.
func (s *Store) writeLabels(path string, labels map[string]string, now time.Time) error {
	if labels == nil {
		labels = map[string]string{}
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o644, now, s.sync)
}

// lockLabels takes the cross-process lock that guards the labels of the
// blob dgst (and its deletion), waiting while another holds it.
func (s *Store) lockLabels(ctx context.Context, dgst digest.Digest) (*fileLock, error) {
	path := s.labelsPath(dgst) + ".lock"
	for {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		l, err := acquire(ctx, path, true, true)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return l, err
	}
}

// Update changes the blob's labels as [content.Manager.Update] describes
// and returns its new Info. The labels file is rewritten atomically under a
// per-blob file lock, so concurrent updates from several processes apply
// one after the other and lose nothing. A blob the store does not have is
// an error that matches errdefs.ErrNotFound.
func (s *Store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	if err := validDigest("update", info.Digest); err != nil {
		return content.Info{}, err
	}
	l, err := s.lockLabels(ctx, info.Digest)
	if err != nil {
		return content.Info{}, fmt.Errorf("update %s: %w", info.Digest, err)
	}
	defer l.unlock()
	fi, err := os.Stat(s.blobPath(info.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return content.Info{}, fmt.Errorf("update %s: %w", info.Digest, errdefs.ErrNotFound)
	}
	if err != nil {
		return content.Info{}, fmt.Errorf("update %s: %w", info.Digest, err)
	}
	path := s.labelsPath(info.Digest)
	have, _, err := readLabels(path)
	if err != nil {
		return content.Info{}, fmt.Errorf("update %s: %w", info.Digest, err)
	}
	labels, err := content.ApplyUpdate(have, info, fieldpaths...)
	if err != nil {
		return content.Info{}, err
	}
	now := time.Now().UTC()
	if err := s.writeLabels(path, labels, now); err != nil {
		return content.Info{}, fmt.Errorf("update %s: write labels: %w", info.Digest, err)
	}
	return content.Info{
		Digest:    info.Digest,
		Size:      fi.Size(),
		CreatedAt: fi.ModTime().UTC(),
		UpdatedAt: now,
		Labels:    labels,
	}, nil
}

// Walk calls fn for every committed blob that passes all filters. Files
// in blobs/ whose names are not digests are skipped. An error from fn stops
// the walk and is returned as it is.
func (s *Store) Walk(ctx context.Context, fn content.WalkFunc, filters ...content.Filter) error {
	algs, err := os.ReadDir(filepath.Join(s.root, blobsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, a := range algs {
		if !a.IsDir() {
			continue
		}
		dir := filepath.Join(s.root, blobsDir, a.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("walk blobs: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			dgst := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if !e.Type().IsRegular() || dgst.Validate() != nil {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("walk blobs: %w", err)
			}
			info, err := s.info(dgst, fi)
			if err != nil {
				return fmt.Errorf("walk blobs: %s: %w", dgst, err)
			}
			if !content.Match(info, filters...) {
				continue
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes the blob and its labels. A blob the store does not have is
// an error that matches errdefs.ErrNotFound. Readers that opened the blob
// before keep reading it.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	if err := validDigest("delete", dgst); err != nil {
		return err
	}
	l, err := s.lockLabels(ctx, dgst)
	if err != nil {
		return fmt.Errorf("delete %s: %w", dgst, err)
	}
	defer l.unlock()
	// The lock file goes too; waiters notice and lock a new one.
	defer os.Remove(s.labelsPath(dgst) + ".lock")
	path := s.blobPath(dgst)
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", dgst, errdefs.ErrNotFound)
		}
		return fmt.Errorf("delete %s: %w", dgst, err)
	}
	if err := os.Remove(s.labelsPath(dgst)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: labels: %w", dgst, err)
	}
	if s.sync {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fmt.Errorf("delete %s: %w", dgst, err)
		}
	}
	return nil
}
