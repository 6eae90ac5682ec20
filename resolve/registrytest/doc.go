// Package registrytest runs an OCI distribution registry in-process, on
// 127.0.0.1, for tests: yours and pullkit's. It serves real HTTP through
// net/http/httptest, holds everything in memory, speaks Basic and token
// auth, and misbehaves on demand, so that a client's retries, resumes and
// credential handling can be tested without a network.
//
// # Use it in your tests
//
//	func TestPull(t *testing.T) {
//		reg := registrytest.NewT(t) // closed by t.Cleanup
//		img := registrytest.RandomImage(1, 3, 64<<10)
//		reg.PushImage("team/app", "v1", img)
//
//		ref := reg.Host() + "/team/app:v1" // 127.0.0.1:port, plain HTTP
//		// ... pull ref with your client, using reg.Client() ...
//
//		for d, want := range img.Blobs() {
//			// check that your client stored want under d
//		}
//	}
//
// [New] starts a registry, a CDN beside it and, with [WithTokenAuth], a
// token server; [NewT] also closes them when the test ends. [Registry.URL],
// [Registry.Host] and [Registry.Client] reach it; with [WithTLS] the client
// trusts its certificate.
//
// # Content
//
// [RandomImage] builds a real image from a seed: gzip (or zstd, or plain)
// tar layers with a few files each, a config with correct rootfs.diff_ids
// and platform, and an OCI or Docker schema 2 manifest. [Registry.PushImage]
// and [Registry.PushIndex] push images and indexes (a Docker manifest list
// for Docker images). [Registry.PushBlob] and [Registry.PushManifest] push
// raw bytes, so a test can serve anything: nested indexes made with
// [MarshalIndex], schema 1 manifests made with [Schema1Manifest], malformed
// JSON. Clients can push over HTTP too: monolithic and chunked blob
// uploads, cross-repository mounts and manifest PUTs. [Registry.Blob],
// [Registry.Tags], [Registry.Resolve] and [Registry.ReaderAt] (a
// content.Provider) read the content back.
//
// # Endpoints
//
// The registry serves the pull side of the distribution spec: GET /v2/,
// HEAD and GET of /v2/<name>/manifests/<tag or digest> and
// /v2/<name>/blobs/<digest> (with single byte ranges: 206 and
// Content-Range, or 416 out of range; If-Range is not supported), and
// GET /v2/<name>/tags/list (with n and last). It answers errors with the
// spec's JSON body and codes (MANIFEST_UNKNOWN, BLOB_UNKNOWN,
// UNAUTHORIZED, DENIED, ...). Repository names may contain slashes. Blobs
// are visible only in the repositories they were pushed (or mounted) to.
//
// # Authentication
//
// With [WithBasicAuth], requests need Basic credentials. With
// [WithTokenAuth], the registry answers 401 with
// `WWW-Authenticate: Bearer realm="<TokenURL>",service="registrytest",scope="repository:<name>:pull"`
// and accepts only the tokens its token server issued, for the scopes they
// were issued for: a token for one repository does not read another
// (401, error="insufficient_scope"); an expired one is refused (401,
// error="invalid_token"). The token server takes GET with Basic
// credentials or none (anonymous, granted only what [WithAnonymousPull]
// allows) and OAuth2 POST forms (grant_type password or refresh_token, with
// client_id), and answers {"token", "access_token", "expires_in",
// "issued_at", "scope"} plus a refresh_token for POST and for GET with
// offline_token=true. [WithDeniedRepos] makes authenticated clients get 403.
// [WithTokenTTL] and [Registry.ExpireTokens] control expiry.
//
// # Faults
//
// [Registry.Inject] (or [WithFault]) makes matching requests fail: status
// codes (5xx, 429 with Retry-After), connections reset or closed after N
// bytes, bodies that stall or trickle, Range ignored, corrupted bytes of
// the right length, and 307 redirects to a CDN that rejects requests
// carrying an Authorization header. A [Fault] selects requests by server,
// method, path and digest, and applies to a number of them or to all until
// removed; [Injection.Hits] tells how often it applied. Faults can be
// injected and removed while the registry serves:
//
//	reg.Inject(registrytest.Fault{Kind: registrytest.FaultReset, Digest: layer, Bytes: 1 << 20, Times: 1})
//	// pull: the client must resume layer at 1 MiB
//	if got := reg.BlobBytesServed(layer); got != size {
//		t.Errorf("served %d bytes of the layer, want %d: bytes were fetched twice", got, size)
//	}
//
// # Assertions
//
// [Registry.Requests] lists what was received (method, path, Range,
// Accept, whether credentials were sent but never their value, status,
// bytes written, faults applied); [Registry.BytesServed] and
// [Registry.BlobBytesServed] count content bytes, so a test can check that
// a resumed download did not fetch a blob twice; [Registry.CDNSawAuthorization]
// tells whether a client leaked credentials to the CDN; [Registry.ResetStats]
// starts over.
//
// # Concurrency
//
// A Registry is safe for concurrent use: faults can be injected and
// content pushed while clients are being served.
package registrytest
