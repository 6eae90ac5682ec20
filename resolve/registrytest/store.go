package registrytest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/handlers"
)

// repository is what one repository holds: links to blobs of the global
// store, the media types of its manifests, and its tags.
type repository struct {
	blobs     map[digest.Digest]bool
	manifests map[digest.Digest]string
	tags      map[string]digest.Digest
}

// upload is a blob upload in progress over HTTP.
type upload struct {
	repo string
	data []byte
}

var (
	// nameRE is the distribution spec's repository name grammar.
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagRE is the distribution spec's tag grammar.
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// validName reports whether repo is a valid repository name.
func validName(repo string) bool { return len(repo) <= 255 && nameRE.MatchString(repo) }

// repoLocked returns repo's record, creating it. r.mu must be held.
func (r *Registry) repoLocked(repo string) *repository {
	rp := r.repos[repo]
	if rp == nil {
		rp = &repository{
			blobs:     map[digest.Digest]bool{},
			manifests: map[digest.Digest]string{},
			tags:      map[string]digest.Digest{},
		}
		r.repos[repo] = rp
	}
	return rp
}

// PushBlob stores data in repo and returns its descriptor, with media type
// "application/octet-stream". Pushing the same bytes again is harmless. It
// panics if repo is not a valid repository name.
func (r *Registry) PushBlob(repo string, data []byte) ocispec.Descriptor {
	mustName(repo)
	d := digest.FromBytes(data)
	r.mu.Lock()
	r.putBlobLocked(repo, d, bytes.Clone(data))
	r.mu.Unlock()
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(data))}
}

// putBlobLocked stores data under d and links it to repo. r.mu must be held.
func (r *Registry) putBlobLocked(repo string, d digest.Digest, data []byte) {
	if _, ok := r.blobs[d]; !ok {
		r.blobs[d] = data
	}
	r.repoLocked(repo).blobs[d] = true
}

// PushManifest stores body in repo as a manifest of the given media type,
// served verbatim with that Content-Type, and points tag at it; an empty tag
// stores it by digest only. The body is not checked, so tests can serve
// anything: Docker manifest lists, schema 1 manifests, nested indexes,
// malformed JSON.
//
// The digest is that of body, except for a signed schema 1 manifest
// (handlers.MediaTypeDockerSchema1SignedManifest), whose digest is that of
// its payload without the signatures, as registries compute it. The
// descriptor returned has the media type, that digest and len(body). It
// panics if repo or tag is invalid.
func (r *Registry) PushManifest(repo, tag, mediaType string, body []byte) ocispec.Descriptor {
	mustName(repo)
	if tag != "" && !tagRE.MatchString(tag) {
		panic(fmt.Sprintf("registrytest: invalid tag %q", tag))
	}
	d := manifestDigest(mediaType, body)
	r.mu.Lock()
	r.putManifestLocked(repo, tag, mediaType, d, bytes.Clone(body))
	r.mu.Unlock()
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(body))}
}

// putManifestLocked stores a manifest. r.mu must be held.
func (r *Registry) putManifestLocked(repo, tag, mediaType string, d digest.Digest, body []byte) {
	// A signed schema 1 manifest shares its digest with its re-signed
	// versions: the latest bytes win, as in a registry.
	r.blobs[d] = body
	rp := r.repoLocked(repo)
	rp.blobs[d] = true
	rp.manifests[d] = mediaType
	if tag != "" {
		rp.tags[tag] = d
	}
}

// manifestDigest returns the digest a registry gives a manifest.
func manifestDigest(mediaType string, body []byte) digest.Digest {
	if mediaType == handlers.MediaTypeDockerSchema1SignedManifest {
		if payload, ok := jwsPayload(body); ok {
			return digest.FromBytes(payload)
		}
	}
	return digest.FromBytes(body)
}

// jwsPayload returns the signed payload of a libtrust "pretty JWS": the
// JSON up to formatLength followed by formatTail, as named by the first
// signature's protected header.
func jwsPayload(body []byte) ([]byte, bool) {
	var doc struct {
		Signatures []struct {
			Protected string `json:"protected"`
		} `json:"signatures"`
	}
	if json.Unmarshal(body, &doc) != nil || len(doc.Signatures) == 0 {
		return nil, false
	}
	prot, err := base64.RawURLEncoding.DecodeString(doc.Signatures[0].Protected)
	if err != nil {
		return nil, false
	}
	var hdr struct {
		FormatLength int    `json:"formatLength"`
		FormatTail   string `json:"formatTail"`
	}
	if json.Unmarshal(prot, &hdr) != nil || hdr.FormatLength <= 0 || hdr.FormatLength > len(body) {
		return nil, false
	}
	tail, err := base64.RawURLEncoding.DecodeString(hdr.FormatTail)
	if err != nil {
		return nil, false
	}
	return append(bytes.Clone(body[:hdr.FormatLength]), tail...), true
}

// mustName panics if repo is not a valid repository name.
func mustName(repo string) {
	if !validName(repo) {
		panic(fmt.Sprintf("registrytest: invalid repository name %q", repo))
	}
}

// Blob returns a copy of the blob or manifest stored under d in any
// repository, and whether there is one.
func (r *Registry) Blob(d digest.Digest) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.blobs[d]
	return bytes.Clone(b), ok
}

// Tags returns repo's tags in order, or nil if it has none.
func (r *Registry) Tags(repo string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	rp := r.repos[repo]
	if rp == nil || len(rp.tags) == 0 {
		return nil
	}
	return sortedKeys(rp.tags)
}

// Resolve returns the descriptor that repo's tag, or digest, points at, as
// a HEAD request would find it. It returns an error that matches
// errdefs.ErrNotFound when there is none.
func (r *Registry) Resolve(repo, ref string) (ocispec.Descriptor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, mt, body, ok := r.manifestLocked(repo, ref)
	if !ok {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s:%s: %w", repo, ref, errdefs.ErrNotFound)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(body))}, nil
}

// manifestLocked finds a manifest of repo by tag or digest. r.mu must be
// held.
func (r *Registry) manifestLocked(repo, ref string) (digest.Digest, string, []byte, bool) {
	rp := r.repos[repo]
	if rp == nil {
		return "", "", nil, false
	}
	d := digest.Digest(ref)
	if !isDigestRef(ref) {
		var ok bool
		if d, ok = rp.tags[ref]; !ok {
			return "", "", nil, false
		}
	}
	mt, ok := rp.manifests[d]
	if !ok {
		return "", "", nil, false
	}
	return d, mt, r.blobs[d], true
}

// blobLocked finds a blob linked to repo. r.mu must be held.
func (r *Registry) blobLocked(repo string, d digest.Digest) ([]byte, bool) {
	rp := r.repos[repo]
	if rp == nil || !rp.blobs[d] {
		return nil, false
	}
	return r.blobs[d], true
}

// isDigestRef reports whether a manifest reference is a digest: tags
// cannot contain a colon.
func isDigestRef(ref string) bool { return strings.Contains(ref, ":") }

var _ content.Provider = (*Registry)(nil)

// ReaderAt opens the blob desc.Digest, from any repository, so that the
// registry's content can be read with the content and handlers packages
// (handlers.ChildrenOf(ctx, reg, desc)). It returns an error that matches
// errdefs.ErrNotFound when the registry has no such blob. The reader reads
// a copy: it is not affected by faults.
func (r *Registry) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, ok := r.Blob(desc.Digest)
	if !ok {
		return nil, fmt.Errorf("registrytest: blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return &readerAt{Reader: bytes.NewReader(b)}, nil
}

// readerAt is a [content.ReaderAt] over a byte slice.
type readerAt struct{ *bytes.Reader }

func (ra *readerAt) Close() error { return nil }
