package reference

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	dref "github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

const (
	// DockerHub is the Registry of every Docker Hub reference, whether it was
	// written "ubuntu", "docker.io/ubuntu" or "index.docker.io/ubuntu".
	DockerHub = "docker.io"

	// DefaultTag is the Tag that [Parse] sets when a reference has neither a
	// tag nor a digest.
	DefaultTag = "latest"

	// officialPrefix is the Docker Hub namespace of official images.
	officialPrefix = "library/"
)

// Reference is a parsed, normalized image reference.
//
// The zero Reference has no name and is not valid input to a registry; every
// Reference returned by [Parse] without error has a non-empty Registry and
// Repository, and a Tag, a Digest or both.
type Reference struct {
	// Registry is the host, with an optional port, that serves the
	// repository: "ghcr.io", "localhost:5000", "[::1]:5000". It is
	// [DockerHub] for Docker Hub.
	Registry string

	// Repository is the path of the repository within the registry, always
	// lowercase: "acme/app", or "library/ubuntu" for Docker Hub's official
	// images.
	Repository string

	// Tag is the tag, or "" when the reference was given by digest only.
	Tag string

	// Digest pins the referenced content, or is "" when the reference was
	// given by tag only. When both Tag and Digest are set, Digest decides
	// what is fetched.
	Digest digest.Digest
}

// Parse parses s as a docker-style image reference and normalizes it as
// described in the package documentation: "ubuntu" becomes Registry
// "docker.io", Repository "library/ubuntu" and Tag "latest".
//
// On error it returns the zero Reference and an error that matches
// errdefs.ErrInvalidArgument and says what is wrong, such as an uppercase
// repository name, an empty tag or a malformed digest.
func Parse(s string) (Reference, error) {
	named, err := dref.ParseNormalizedNamed(s)
	if err == nil && dref.Domain(named) == "" {
		// The first element was taken for a host but is not a valid one,
		// and distribution then read it as part of the path:
		// "exa_mple.com/app".
		err = errNoRegistry
	}
	if err != nil {
		return Reference{}, fmt.Errorf("parse reference %q: %s: %w", s, whyInvalid(s, err), errdefs.ErrInvalidArgument)
	}
	r := Reference{
		Registry:   dref.Domain(named),
		Repository: dref.Path(named),
	}
	if t, ok := named.(dref.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(dref.Digested); ok {
		r.Digest = d.Digest()
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r, nil
}

// Name returns the registry and repository joined by "/", without tag or
// digest: "docker.io/library/ubuntu". It returns Repository alone when
// Registry is empty, and "" for the zero Reference.
func (r Reference) Name() string {
	if r.Registry == "" {
		return r.Repository
	}
	return r.Registry + "/" + r.Repository
}

// String returns the full normalized form: the [Reference.Name], then
// ":tag" when Tag is set, then "@digest" when Digest is set, as in
// "docker.io/library/ubuntu:latest" or "ghcr.io/acme/app:1.2@sha256:…".
// [Parse] turns it back into r. It returns "" for the zero Reference.
func (r Reference) String() string {
	return r.Name() + r.suffix()
}

// Familiar returns the short form docker prints: "ubuntu:latest" for
// docker.io/library/ubuntu:latest, "acme/app@sha256:…" for
// docker.io/acme/app@sha256:…. References outside Docker Hub are returned
// in full. Docker Hub references are also returned in full when the short
// form would not parse back to r, such as docker.io/example.com/app (whose
// short form would name the registry example.com), so [Parse] always turns
// the result back into r.
func (r Reference) Familiar() string {
	return r.familiarName() + r.suffix()
}

// Object returns what a registry is asked for in
// /v2/<name>/manifests/<object>: the Digest when set, otherwise the Tag.
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// WithTag returns a copy of r that points at tag: Tag is set to tag and
// Digest is cleared, since a kept digest would still decide what is
// fetched. The error matches errdefs.ErrInvalidArgument when tag is not a
// valid tag (1 to 128 characters from [A-Za-z0-9_.-], not starting with
// "." or "-").
func (r Reference) WithTag(tag string) (Reference, error) {
	if !anchoredTag.MatchString(tag) {
		return Reference{}, fmt.Errorf("tag %q: %s: %w", tag, tagRule, errdefs.ErrInvalidArgument)
	}
	r.Tag = tag
	r.Digest = ""
	return r, nil
}

// WithDigest returns a copy of r pinned to d. The Tag is kept, so that
// "app:1.2" pinned reads "app:1.2@sha256:…"; Digest decides what is
// fetched. The error matches errdefs.ErrInvalidArgument, and the go-digest
// error that says why, when d is not a valid digest of an available
// algorithm (sha256, sha384, sha512).
func (r Reference) WithDigest(d digest.Digest) (Reference, error) {
	if err := d.Validate(); err != nil {
		return Reference{}, fmt.Errorf("digest %q: %w: %w", string(d), err, errdefs.ErrInvalidArgument)
	}
	r.Digest = d
	return r, nil
}

// suffix returns ":tag@digest", with the parts that are set.
func (r Reference) suffix() string {
	var s string
	if r.Tag != "" {
		s = ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// familiarName returns Name with Docker Hub's "docker.io/" and
// "docker.io/library/" removed where the result still parses back to the
// same registry and repository.
func (r Reference) familiarName() string {
	if r.Registry != DockerHub {
		return r.Name()
	}
	if short, ok := strings.CutPrefix(r.Repository, officialPrefix); ok && !strings.Contains(short, "/") {
		// A single element always means docker.io/library/<element>,
		// except that a bare 64-hex string is refused as an image ID.
		if r.Tag == "" && r.Digest == "" && imageID.MatchString(short) {
			return r.Name()
		}
		return short
	}
	first, _, ok := strings.Cut(r.Repository, "/")
	if !ok || looksLikeHost(first) {
		// "docker.io/app" (not produced by Parse) would come back as
		// library/app, "docker.io/example.com/app" as registry example.com.
		return r.Name()
	}
	return r.Repository
}

// looksLikeHost reports whether Parse takes the first element of a
// multi-element name as a registry rather than as a Docker Hub namespace.
func looksLikeHost(s string) bool {
	return s == "localhost" || strings.ContainsAny(s, ".:") || strings.ToLower(s) != s
}

// errNoRegistry stands for distribution's answer when it parsed a reference
// without a registry, which Parse refuses.
var errNoRegistry = errors.New("no registry")

const tagRule = "a tag is 1 to 128 characters from [A-Za-z0-9_.-] and does not start with '.' or '-'"

var (
	anchoredTag    = regexp.MustCompile(`^` + dref.TagRegexp.String() + `$`)
	anchoredDomain = regexp.MustCompile(`^(?:` + dref.DomainRegexp.String() + `)$`)
	// pathComponent is one element of a repository path, per the grammar in
	// distribution/reference: lowercase alphanumerics joined by ".", "_",
	// "__" or runs of "-".
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	imageID       = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// whyInvalid explains why distribution/reference refused s. It is called
// only after a refusal, checks the parts of s in the order they are
// written from the right (digest, tag, registry, repository), and falls
// back to distribution's own message.
func whyInvalid(s string, err error) string {
	if s == "" {
		return "reference is empty"
	}
	rest, dgst, hasDigest := strings.Cut(s, "@")
	if hasDigest {
		switch {
		case strings.Contains(dgst, "@"):
			return `more than one "@"`
		case dgst == "":
			return `digest after "@" is empty`
		}
		if derr := digest.Digest(dgst).Validate(); derr != nil {
			return fmt.Sprintf("digest %q: %v", dgst, derr)
		}
	}
	name := rest
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		tag := rest[i+1:]
		name = rest[:i]
		switch {
		case tag == "":
			return `tag after ":" is empty`
		case !anchoredTag.MatchString(tag):
			return fmt.Sprintf("tag %q is invalid: %s", tag, tagRule)
		}
	}
	if name == "" {
		return "repository name is empty"
	}
	if imageID.MatchString(s) {
		return "a 64-character hexadecimal string is an image ID, not a repository name"
	}
	host, path := splitHost(name)
	if host != "" && !anchoredDomain.MatchString(host) {
		return fmt.Sprintf("registry host %q is invalid", host)
	}
	if strings.ToLower(path) != path {
		return "repository name must be lowercase"
	}
	if len(path) > dref.RepositoryNameTotalLengthMax {
		return fmt.Sprintf("repository name %q is %d characters, more than %d", abbreviate(path), len(path), dref.RepositoryNameTotalLengthMax)
	}
	for _, c := range strings.Split(path, "/") {
		if c == "" {
			return "repository name has an empty path element"
		}
		if !pathComponent.MatchString(c) {
			return fmt.Sprintf("repository path element %q is invalid: elements are lowercase letters and digits, separated by '.', '_', '__' or '-'", c)
		}
	}
	return err.Error()
}

// splitHost splits a name, without tag or digest, into the registry and the
// normalized repository path the way Parse does. host is "" for Docker Hub.
func splitHost(name string) (host, path string) {
	first, rest, ok := strings.Cut(name, "/")
	switch {
	case !ok:
		return "", officialPrefix + name
	case first == "index.docker.io" || first == DockerHub:
		host, path = "", rest
	case looksLikeHost(first):
		return first, rest
	default:
		host, path = "", name
	}
	if !strings.Contains(path, "/") {
		path = officialPrefix + path
	}
	return host, path
}

// abbreviate shortens s for an error message.
func abbreviate(s string) string {
	const limit = 40
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
