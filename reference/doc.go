// Package reference parses image references such as "ubuntu",
// "ghcr.io/acme/app:1.2" or "localhost:5000/app@sha256:…" into a [Reference]
// whose fields are read directly: Registry, Repository, Tag and Digest.
//
// # Normalization
//
// [Parse] normalizes the way docker and containerd do (distribution's
// ParseNormalizedNamed followed by TagNameOnly, but keeping the tag when a
// digest is also given):
//
//   - A name without a registry is on Docker Hub, whose Registry is
//     [DockerHub] ("docker.io"): "ubuntu" is docker.io/library/ubuntu and
//     "acme/app" is docker.io/acme/app. The legacy host "index.docker.io" is
//     rewritten to "docker.io"; other Docker Hub hosts such as
//     "registry-1.docker.io" are kept as written and get no "library/".
//   - The first path element is a registry when it contains a "." or a ":",
//     is "localhost", or has an uppercase letter: "example.com/app",
//     "localhost:5000/app", "[::1]:5000/app", "Registry/app". Such an element
//     must then be a valid host: "exa_mple.com/app" is refused, where
//     distribution would return it as a path with no registry at all. A single
//     element is never a registry: "localhost:5000" alone is the Docker Hub
//     image library/localhost with tag "5000", as in docker.
//   - Without a tag or a digest the tag is [DefaultTag] ("latest").
//   - With both, both are kept ("app:1.2@sha256:…"). The digest is
//     authoritative: [Reference.Object] returns it, so a registry is asked for
//     the pinned content and the tag only documents what it was pinned from.
//
// Registry names are kept as written, case included, since lowercasing
// "Registry/app" would turn it into a Docker Hub repository. Which host
// actually serves Docker Hub's API (registry-1.docker.io) is the business of
// package resolve, not of this package.
//
// # Forms
//
// [Reference.String] is the full normalized form,
// "docker.io/library/ubuntu:latest"; [Reference.Familiar] is the short form
// docker prints, "ubuntu:latest". Both parse back to the same Reference.
// [Reference.Name] is the registry and repository without tag or digest.
//
// # Errors
//
// Every error returned by this package matches errdefs.ErrInvalidArgument
// (github.com/containerd/errdefs) and says what is wrong with the input, for
// example:
//
//	parse reference "Foo": repository name must be lowercase: invalid argument
//
// A Reference is a plain comparable value: copy it freely, compare it with
// ==, and use it from any goroutine.
package reference

import (
	// Register the digest algorithms OCI uses, so that whether a sha256 or
	// sha512 digest parses does not depend on what else the program links.
	_ "crypto/sha256"
	_ "crypto/sha512"
)
