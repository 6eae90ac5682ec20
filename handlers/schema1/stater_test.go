package schema1_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers/schema1"
)

// headFetcher is a registry fetcher that can also HEAD a blob.
type headFetcher struct {
	*fetch.Repository
	client *http.Client
	base   string // "http://host/v2/repo"
}

var _ schema1.Stater = headFetcher{}

func (h headFetcher) Stat(ctx context.Context, desc ocispec.Descriptor) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, h.base+"/blobs/"+desc.Digest.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return 0, fmt.Errorf("HEAD %s: %w", desc.Digest, errdefs.ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return 0, fmt.Errorf("HEAD %s: %s: %w", desc.Digest, resp.Status, errdefs.ErrUnknown)
	}
	return resp.ContentLength, nil
}

// With a Stater, each layer is requested once, by a single GET.
func TestConvertWithStater(t *testing.T) {
	f := newFixture(t, signedEmptyDigest)
	hf := headFetcher{Repository: f.fetcher, client: f.reg.Client(), base: f.reg.URL() + "/v2/" + f.repo}
	f.convert(t, hf)

	gets := map[string]int{}
	for _, p := range blobRequests(f.reg) {
		gets[p]++
	}
	for _, l := range []int{0, 2} {
		p := "/v2/" + f.repo + "/blobs/" + f.img.Layers[l].Descriptor.Digest.String()
		if gets[p] != 1 {
			t.Errorf("GET %s sent %d times, want once", p, gets[p])
		}
	}
	if len(gets) != 2 {
		t.Errorf("blob GETs = %v, want the two non-empty layers", gets)
	}
}

// A Stater's errors fail the layer, classified.
func TestConvertStaterNotFound(t *testing.T) {
	f := newFixture(t, signedEmptyDigest)
	hf := headFetcher{Repository: f.fetcher, client: f.reg.Client(), base: f.reg.URL() + "/v2/nothing/here"}
	c := schema1.NewConverter(f.store, hf)
	children, err := c.Handle(context.Background(), f.desc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Handle(context.Background(), children[0]); !errdefs.IsNotFound(err) {
		t.Errorf("Handle(layer) error = %v, want not found", err)
	}
}

// Children given their sizes are not probed: each layer is one GET.
func TestConvertKnownSizes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, unsignedEmptyDigest)
	c := schema1.NewConverter(f.store, f.fetcher)
	children, err := c.Handle(ctx, f.desc)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, l := range f.img.Layers {
		sizes[l.Descriptor.Digest.String()] = l.Descriptor.Size
	}
	for _, ch := range children {
		ch.Size = sizes[ch.Digest.String()]
		if _, err := c.Handle(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Convert(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blobRequests(f.reg); len(got) != 2 {
		t.Errorf("blob GETs = %v, want one per non-empty layer", got)
	}
}
