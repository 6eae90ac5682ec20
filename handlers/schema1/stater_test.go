package schema1_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/handlers/schema1"
	"github.com/pullkit/pullkit/resolve/registrytest"
)

// statFetcher joins a Fetcher and a Stater that may ask elsewhere.
type statFetcher struct {
	fetch.Fetcher
	schema1.Stater
}

// With fetch.Repository's Stat, each layer costs one HEAD and one GET of
// the whole blob, and no byte more.
func TestConvertStatsLayers(t *testing.T) {
	f := newFixture(t, signedEmptyDigest)
	f.convert(t, f.fetcher)

	heads, gets := map[string]int{}, map[string]int{}
	for _, r := range f.reg.Requests() {
		if !strings.Contains(r.Path, "/blobs/") {
			continue
		}
		switch r.Method {
		case http.MethodHead:
			heads[r.Path]++
		case http.MethodGet:
			gets[r.Path]++
			if r.Range != "" {
				t.Errorf("GET %s with Range %q, want the whole blob", r.Path, r.Range)
			}
		}
	}
	var served int64
	for _, l := range []int{0, 2} {
		d := f.img.Layers[l].Descriptor
		p := "/v2/" + f.repo + "/blobs/" + d.Digest.String()
		if heads[p] != 1 || gets[p] != 1 {
			t.Errorf("layer %d: %d HEAD and %d GET, want one of each", l, heads[p], gets[p])
		}
		served += d.Size
	}
	if len(heads) != 2 || len(gets) != 2 {
		t.Errorf("HEADs %v, GETs %v: want the two non-empty layers", heads, gets)
	}
	if got := f.reg.BytesServed() - int64(len(f.body)); got != served {
		t.Errorf("layer bytes served = %d, want %d: each layer once", got, served)
	}
}

// A registry that refuses HEAD answers a GET of one byte instead.
func TestConvertHEADRefused(t *testing.T) {
	f := newFixture(t, unsignedEmptyDigest)
	f.reg.Inject(registrytest.Fault{Kind: registrytest.FaultStatus, Status: http.StatusMethodNotAllowed, Method: http.MethodHead})
	got := f.convert(t, f.fetcher)
	if got.Digest == "" {
		t.Fatal("Convert() returned no descriptor")
	}
	ranged := 0
	for _, r := range f.reg.Requests() {
		if r.Method == http.MethodGet && r.Range == "bytes=0-0" {
			ranged++
		}
	}
	if ranged != 2 {
		t.Errorf("%d GETs of one byte, want one per non-empty layer", ranged)
	}
}

// A Stater's errors fail the layer, classified.
func TestConvertStaterNotFound(t *testing.T) {
	f := newFixture(t, signedEmptyDigest)
	elsewhere := fetch.New(f.reg.Host(), "nothing/here", fetch.WithClient(f.reg.Client()), fetch.WithPlainHTTP())
	c := schema1.NewConverter(f.store, statFetcher{Fetcher: f.fetcher, Stater: elsewhere})
	children, err := c.Handle(context.Background(), f.desc)
	if err != nil {
		t.Fatal(err)
	}
	var re *fetch.ResponseError
	if _, err := c.Handle(context.Background(), children[0]); !errdefs.IsNotFound(err) || !errors.As(err, &re) || re.Method != http.MethodHead {
		t.Errorf("Handle(layer) error = %v, want the 404 of a HEAD", err)
	}
}

// A fetcher without Stat cannot learn the sizes of the layers the store
// lacks, and says so; layers of known size, or in the store, need no Stat.
func TestConvertWithoutStater(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, unsignedEmptyDigest)
	plain := fetch.FetcherFunc(f.fetcher.Fetch)
	c := schema1.NewConverter(f.store, plain)
	children, err := c.Handle(ctx, f.desc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Handle(ctx, children[0])
	if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "schema 1 layer sizes need a fetcher with Stat") {
		t.Fatalf("Handle(layer) error = %v, want NotImplemented naming Stat", err)
	}
	if got := blobRequests(f.reg); len(got) != 0 {
		t.Errorf("blob GETs = %v, want none", got)
	}

	// The base layer with its size, the top one in the store already.
	base, top := f.img.Layers[0], f.img.Layers[2]
	if err := content.WriteBlob(ctx, f.store, "seed", bytes.NewReader(top.Data), top.Descriptor); err != nil {
		t.Fatal(err)
	}
	for _, ch := range children {
		if ch.Digest == base.Descriptor.Digest {
			ch.Size = base.Descriptor.Size
		}
		if _, err := c.Handle(ctx, ch); err != nil {
			t.Fatalf("Handle(%s) error = %v", ch.Digest, err)
		}
	}
	if _, err := c.Convert(ctx); err != nil {
		t.Fatalf("Convert() error = %v", err)
	}
}

// Children given their sizes are not asked about: each layer is one GET.
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
	for _, r := range f.reg.Requests() {
		if r.Method == http.MethodHead {
			t.Errorf("HEAD %s, want none", r.Path)
		}
	}
}
