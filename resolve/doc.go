// Package resolve finds images in OCI and Docker registries: it turns a
// reference such as "alpine:3.20" into the descriptor of its manifest or
// index, and gives a fetch.Fetcher for the image's content, with mirrors,
// failover, per-host TLS and containerd's hosts.toml.
//
//	r := resolve.New(
//		resolve.WithHosts(resolve.Hosts(resolve.WithHostsDir("/etc/containerd/certs.d"))),
//		resolve.WithKeychain(auth.DockerConfig()),
//	)
//	name, desc, err := r.Resolve(ctx, "alpine:3.20")   // docker.io/library/alpine:3.20
//	f, err := r.Fetcher(ctx, name)                      // then fetch.Handler(store, f)
//
// # Hosts
//
// A [HostsFunc] lists the hosts ([Host]) that serve a registry, in the
// order they are tried, each with [Capability] flags: mirrors first, the registry
// itself last. [Hosts] builds one from options ([WithMirrors],
// [WithoutFallback], [WithPlainHTTP], [WithHeader], [WithCA],
// [WithCAFile], [WithClientCertFiles], [WithInsecureSkipVerify]) and from
// containerd's hosts.toml/certs.d directories ([WithHostsDir]). docker.io
// is served by registry-1.docker.io; localhost and loopback addresses
// speak plain HTTP.
//
// A mirror whose path is below /v2, such as
// "https://harbor.example/v2/proxy", keeps the registry's repositories
// under a prefix: library/alpine is asked for as proxy/library/alpine, in
// the URL and in the token scope (repository:proxy/library/alpine:pull).
//
// # Resolving
//
// [Registry.Resolve] asks each host with [CapabilityResolve] in turn for
// /v2/<repository>/manifests/<tag or digest>, accepting OCI indexes and
// manifests, Docker manifest lists and schema 2 manifests, signed and
// unsigned schema 1 manifests, and anything else last:
//
//   - HEAD first. Its Docker-Content-Digest, Content-Type and
//     Content-Length make the descriptor when they are all there and the
//     type is a manifest type; for a reference by digest the digest is the
//     reference's, and a header that disagrees is not trusted.
//   - GET otherwise: when HEAD gives no digest (for a tag), no length, an
//     unknown type, a digest other than the reference's, or when HEAD is
//     refused (400, 405, 406, 501). The body, at most 4 MiB by default
//     ([WithManifestLimit]; a *content.LimitError beyond), is verified: its
//     digest must be the reference's digest, or for a tag the
//     Docker-Content-Digest when there is one, else a *content.MismatchError.
//     A signed schema 1 manifest is verified by the digest of its payload
//     without signatures, which is how registries name it; its descriptor
//     has that digest and the size of the whole body, as in containerd. An
//     unknown Content-Type is resolved from the body's mediaType, or its
//     shape.
//   - A 404 (and any other failure: 401, 403, 429, 5xx, a transport or TLS
//     error, a digest mismatch) moves on to the next host, as containerd
//     does. On the last host, a HEAD 404 is checked with a GET, whose
//     error document says whether the tag or the repository is unknown,
//     and transient failures are retried ([WithRetries]).
//
// Resolve returns the normalized name and the descriptor, and sends a
// fetch.Resolved event to the observer ([WithObserver]).
//
// # Fetching
//
// [Registry.Fetcher] returns a fetch.Fetcher over the hosts with
// [CapabilityPull]: each host is a fetch.Repository, and a request one
// fails goes to the next, as does the rest of a download that breaks.
//
// # Errors
//
// Errors are classified with github.com/containerd/errdefs. An invalid
// reference matches errdefs.ErrInvalidArgument. When every host failed,
// the error is an [*Error] whose text lists each host's answer and says
// what to do next:
//
//	resolve docker.io/library/alpine:3.20: mirror.example: 503 Service Unavailable; registry-1.docker.io: 404 Not Found: MANIFEST_UNKNOWN: manifest unknown
//
// It is classified by the last host's answer (the registry's, which is
// authoritative): 404 → errdefs.ErrNotFound, 401 → ErrUnauthenticated
// (check the credentials), 403 → ErrPermissionDenied, 429 and 5xx →
// ErrUnavailable (with the Retry-After wait), digest mismatch →
// content.ErrDigestMismatch, oversized manifest → content.ErrTooLarge.
// Errors never carry credentials or URL queries.
package resolve
