// Package integration tests pullkit against the CNCF distribution registry
// (github.com/distribution/distribution/v3), run in-process on 127.0.0.1:
// plain HTTP, TLS with a generated CA, htpasswd basic auth, token auth with
// a token server written in the tests, and a pull-through cache used as a
// mirror.
//
// It is a module of its own so that the library's go.mod does not carry the
// registry and its dependencies. The package has no API: everything is in its
// tests, which build their images deterministically and push them through the
// registry's HTTP API before pulling them with pullkit.Pull.
//
//	cd integration && go test -race ./...
package integration
