package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/pullkit/pullkit/auth"
)

// A registry that demands Basic auth: the Client answers the 401 with the
// keychain's credentials for that host and gets the 200.
func ExampleClient() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "{}")
	}))
	defer srv.Close()

	host := strings.TrimPrefix(srv.URL, "http://")
	client := auth.NewClient(
		auth.WithHTTPClient(srv.Client()),
		auth.WithKeychain(auth.Static(host, auth.Credential{Username: "alice", Password: "s3cret"})),
	)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/v2/", nil)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}

// A registry with a token server: the request's context names the
// repository, the Client fetches a token once and reuses it.
func ExampleWithScopes() {
	var tokens atomic.Int32
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens.Add(1)
		fmt.Println("token request for", r.URL.Query().Get("scope"))
		_ = json.NewEncoder(w).Encode(map[string]any{"token": "t1", "expires_in": 300})
	}))
	defer tokenSrv.Close()
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t1" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="registry"`, tokenSrv.URL+"/token"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "{}")
	}))
	defer registry.Close()

	client := auth.NewClient(auth.WithHTTPClient(registry.Client()))
	ctx := auth.WithScopes(context.Background(), auth.RepositoryScope("library/alpine", auth.ActionPull))
	for _, path := range []string{"/v2/library/alpine/manifests/3", "/v2/library/alpine/blobs/sha256:abc"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, registry.URL+path, nil)
		if err != nil {
			log.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, path)
	}
	fmt.Println("tokens fetched:", tokens.Load())
	// Output:
	// token request for repository:library/alpine:pull
	// 200 /v2/library/alpine/manifests/3
	// 200 /v2/library/alpine/blobs/sha256:abc
	// tokens fetched: 1
}

func ExampleParseChallenges() {
	h := http.Header{}
	h.Add("WWW-Authenticate", `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull,push"`)
	for _, c := range auth.ParseChallenges(h) {
		fmt.Println(c.Scheme, c.Parameters["realm"], c.Parameters["service"], c.Parameters["scope"])
	}
	// Output: bearer https://auth.example/token registry.example repository:app:pull,push
}

func ExampleFromAuthConfig() {
	// CRI credentials bind to their ServerAddress; other hosts get nothing.
	kc := auth.FromAuthConfig(auth.AuthConfig{Auth: "dXNlcjpwYXNz", ServerAddress: "https://registry.example/v2/"}, "")
	for _, host := range []string{"registry.example", "other.example"} {
		cred, err := kc.Resolve(context.Background(), host)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %q\n", host, cred.Username)
	}
	// Output:
	// registry.example: "user"
	// other.example: ""
}
