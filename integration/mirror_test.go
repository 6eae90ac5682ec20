package integration

import (
	"github.com/containerd/errdefs"

	"errors"
	"net/http"
	"syscall"
	"testing"

	"github.com/pullkit/pullkit"
	"github.com/pullkit/pullkit/handlers/platforms"
	"github.com/pullkit/pullkit/resolve"
)

// directHeader marks the requests pullkit sends to the upstream registry
// itself, so that they can be told from those of the pull-through cache.
const directHeader = "X-Pullkit-Direct"

// direct matches the requests that pullkit sent to a registry as the
// registry itself, not as a mirror.
func direct(r loggedRequest) bool { return r.Header.Get(directHeader) != "" }

// TestPullMirror pulls through a distribution registry configured as a
// pull-through cache of the upstream registry and used as its mirror: the
// mirror serves the pull, and once it stops, pulls fall back to the upstream.
func TestPullMirror(t *testing.T) {
	upstream := startRegistry(t, nil)
	push := pusher{base: upstream.URL}
	idx := buildIndex(true, buildImage("mirror-amd64", linuxAMD64, true), buildImage("mirror-arm64", linuxARM64, true))
	push.index(t, "library/multi", "v1", idx)
	single := buildImage("mirror-single", linuxAMD64, false)
	push.image(t, "library/single", "v1", single)

	mirror := startRegistry(t, nil, withProxy(upstream.URL))
	upstream.log.reset()

	hosts := resolve.Hosts(
		resolve.WithMirrors(upstream.Host, "http://"+mirror.Host),
		resolve.WithHeader(upstream.Host, http.Header{directHeader: {"1"}}),
	)

	t.Run("through the mirror", func(t *testing.T) {
		ctx := testCtx(t)
		store, names := stores[0].open(t)
		ref := upstream.Host + "/library/multi:v1"
		img, err := pullkit.Pull(ctx, ref, store, names,
			pullkit.WithHosts(hosts),
			pullkit.WithPlatforms(platforms.OnlyStrict(linuxARM64)))
		if err != nil {
			t.Fatalf("Pull(%q) error = %v", ref, err)
		}
		want := idx.Images[1]
		checkPulled(t, img, store, names, ref, idx.Desc, want)

		if n := mirror.log.count(requestFor("/library/multi/manifests/v1")); n == 0 {
			t.Errorf("the mirror was not asked for the tag")
		}
		if n := mirror.log.count(requestFor("/library/multi/manifests/" + want.Manifest.Digest.String())); n == 0 {
			t.Errorf("the mirror was not asked for the platform's manifest")
		}
		for d := range want.Blobs() {
			if d == want.Manifest.Digest {
				continue
			}
			if n := mirror.log.count(requestFor("/library/multi/blobs/" + d.String())); n == 0 {
				t.Errorf("the mirror did not serve blob %s", d)
			}
			if n := upstream.log.count(requestFor("/blobs/" + d.String())); n == 0 {
				t.Errorf("the mirror did not fetch blob %s from the upstream: it is no pull-through cache", d)
			}
		}
		if n := upstream.log.count(direct); n != 0 {
			t.Errorf("pullkit sent %d requests to the upstream itself, want none while the mirror works", n)
		}
	})

	mirror.Close()

	t.Run("mirror stopped", func(t *testing.T) {
		ctx := testCtx(t)
		store, names := stores[1].open(t)
		ref := upstream.Host + "/library/single:v1"
		img, err := pullkit.Pull(ctx, ref, store, names, pullkit.WithHosts(hosts))
		if err != nil {
			t.Fatalf("Pull(%q) error = %v", ref, err)
		}
		checkPulled(t, img, store, names, ref, single.Manifest, single)
		for d := range single.Blobs() {
			if n := upstream.log.count(func(r loggedRequest) bool { return direct(r) && requestFor("/blobs/"+d.String())(r) }); n == 0 && d != single.Manifest.Digest {
				t.Errorf("blob %s was not fetched from the upstream directly", d)
			}
		}
	})

	t.Run("mirror stopped without fallback", func(t *testing.T) {
		ctx := testCtx(t)
		store, names := stores[1].open(t)
		ref := upstream.Host + "/library/single:v1"
		before := upstream.log.count(direct)
		_, err := pullkit.Pull(ctx, ref, store, names, pullkit.WithHosts(resolve.Hosts(
			resolve.WithMirrors(upstream.Host, "http://"+mirror.Host),
			resolve.WithoutFallback(upstream.Host),
		)))
		// Only the mirror was asked, and its connection was refused: an
		// outage, which Pull classifies as ErrUnavailable.
		var rerr *resolve.Error
		if !errors.As(err, &rerr) || !errors.Is(err, syscall.ECONNREFUSED) || !errdefs.IsUnavailable(err) {
			t.Fatalf("Pull(%q) with only a stopped mirror: error = %v, want a *resolve.Error for a refused connection that is Unavailable", ref, err)
		}
		if len(rerr.Hosts) != 1 || rerr.Hosts[0].Host != mirror.Host {
			t.Errorf("hosts asked = %v, want only the mirror %s", rerr.Hosts, mirror.Host)
		}
		if n := upstream.log.count(direct); n != before {
			t.Errorf("pullkit sent %d requests to the upstream without fallback, want none", n-before)
		}
		if all, lerr := names.List(ctx); lerr != nil || len(all) != 0 {
			t.Errorf("after a failed Pull, names = %v (%v), want none", all, lerr)
		}
	})
}
