package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers"
)

// node returns a synthetic descriptor named name.
func node(name string) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:   "application/x.test.node",
		Digest:      digest.FromString(name),
		Size:        int64(len(name)),
		Annotations: map[string]string{"name": name},
	}
}

func nameOf(d ocispec.Descriptor) string { return d.Annotations["name"] }

// graph maps a node name to its children's names.
type graph map[string][]string

// handler returns a handler that serves g and records each visit.
func (g graph) handler(visits *[]string, mu *sync.Mutex) handlers.HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		mu.Lock()
		*visits = append(*visits, nameOf(desc))
		mu.Unlock()
		var children []ocispec.Descriptor
		for _, c := range g[nameOf(desc)] {
			children = append(children, node(c))
		}
		return children, nil
	}
}

// tree returns a complete tree of the given depth and fan-out under "r", and
// the number of nodes in it.
func tree(depth, fanout int) (graph, int) {
	g := graph{}
	count := 1
	var grow func(name string, d int)
	grow = func(name string, d int) {
		if d == depth {
			return
		}
		for i := range fanout {
			c := fmt.Sprintf("%s.%d", name, i)
			g[name] = append(g[name], c)
			count++
			grow(c, d+1)
		}
	}
	grow("r", 0)
	return g, count
}

// fixed returns a handler that always returns children (by name) and err.
func fixed(calls *[]string, id string, children []string, err error) handlers.HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		*calls = append(*calls, id)
		var out []ocispec.Descriptor
		for _, c := range children {
			out = append(out, node(c))
		}
		return out, err
	}
}

func names(ds []ocispec.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, nameOf(d))
	}
	return out
}

var errBoom = errors.New("boom")

func TestSequence(t *testing.T) {
	tests := []struct {
		name      string
		errs      [3]error
		wantCalls []string
		wantKids  []string
		wantErr   error
	}{
		{"all", [3]error{}, []string{"a", "b", "c"}, []string{"a1", "b1", "c1"}, nil},
		{"stop in the middle", [3]error{nil, handlers.ErrStopHandler, nil}, []string{"a", "b"}, []string{"a1", "b1"}, nil},
		{"wrapped stop first", [3]error{fmt.Errorf("done: %w", handlers.ErrStopHandler)}, []string{"a"}, []string{"a1"}, nil},
		{"error", [3]error{nil, errBoom, nil}, []string{"a", "b"}, nil, errBoom},
		{"skip passes up", [3]error{handlers.ErrSkipDesc}, []string{"a"}, nil, handlers.ErrSkipDesc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			h := handlers.Sequence(
				fixed(&calls, "a", []string{"a1"}, tt.errs[0]),
				fixed(&calls, "b", []string{"b1"}, tt.errs[1]),
				fixed(&calls, "c", []string{"c1"}, tt.errs[2]),
			)
			kids, err := h.Handle(context.Background(), node("x"))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Handle() error = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("calls = %v, want %v", calls, tt.wantCalls)
			}
			if got := names(kids); !slices.Equal(got, tt.wantKids) {
				t.Errorf("children = %v, want %v", got, tt.wantKids)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		kids, err := handlers.Sequence().Handle(context.Background(), node("x"))
		if err != nil || len(kids) != 0 {
			t.Fatalf("Sequence().Handle() = %v, %v; want nothing", kids, err)
		}
	})
}

func TestWalk(t *testing.T) {
	g := graph{"r": {"a", "b"}, "a": {"a1", "a2"}, "b": {"b1"}, "a1": {"a11"}}
	var mu sync.Mutex

	t.Run("depth first", func(t *testing.T) {
		var visits []string
		if err := handlers.Walk(context.Background(), g.handler(&visits, &mu), node("r")); err != nil {
			t.Fatal(err)
		}
		want := []string{"r", "a", "a1", "a11", "a2", "b", "b1"}
		if !slices.Equal(visits, want) {
			t.Errorf("visits = %v, want %v", visits, want)
		}
	})

	t.Run("skip prunes", func(t *testing.T) {
		var visits []string
		inner := g.handler(&visits, &mu)
		h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			kids, _ := inner(ctx, d)
			if nameOf(d) == "a" {
				return kids, fmt.Errorf("not this one: %w", handlers.ErrSkipDesc)
			}
			return kids, nil
		})
		if err := handlers.Walk(context.Background(), h, node("r")); err != nil {
			t.Fatalf("Walk() = %v, want nil: ErrSkipDesc is not an error", err)
		}
		want := []string{"r", "a", "b", "b1"}
		if !slices.Equal(visits, want) {
			t.Errorf("visits = %v, want %v", visits, want)
		}
	})

	t.Run("stop handler keeps children", func(t *testing.T) {
		var visits []string
		inner := g.handler(&visits, &mu)
		h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			kids, _ := inner(ctx, d)
			return kids, handlers.ErrStopHandler
		})
		if err := handlers.Walk(context.Background(), h, node("r")); err != nil {
			t.Fatal(err)
		}
		if len(visits) != 7 {
			t.Errorf("visits = %v, want all 7 nodes", visits)
		}
	})

	t.Run("error stops", func(t *testing.T) {
		var visits []string
		inner := g.handler(&visits, &mu)
		h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			kids, _ := inner(ctx, d)
			if nameOf(d) == "a1" {
				return nil, errBoom
			}
			return kids, nil
		})
		if err := handlers.Walk(context.Background(), h, node("r")); !errors.Is(err, errBoom) {
			t.Fatalf("Walk() = %v, want %v", err, errBoom)
		}
		if want := []string{"r", "a", "a1"}; !slices.Equal(visits, want) {
			t.Errorf("visits = %v, want %v", visits, want)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var visits []string
		inner := g.handler(&visits, &mu)
		h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			if nameOf(d) == "a" {
				cancel()
			}
			return inner(ctx, d)
		})
		if err := handlers.Walk(ctx, h, node("r")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Walk() = %v, want context.Canceled", err)
		}
		if want := []string{"r", "a"}; !slices.Equal(visits, want) {
			t.Errorf("visits = %v, want %v", visits, want)
		}
	})
}

func TestDispatchVisitsAll(t *testing.T) {
	g, n := tree(4, 3)
	for _, limit := range []int{-1, 0, 1, 2, 5} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var mu sync.Mutex
			var visits []string
			if err := handlers.Dispatch(context.Background(), g.handler(&visits, &mu), limit, node("r")); err != nil {
				t.Fatal(err)
			}
			if len(visits) != n {
				t.Fatalf("visited %d nodes, want %d", len(visits), n)
			}
			slices.Sort(visits)
			if len(slices.Compact(visits)) != n {
				t.Errorf("visits are not the %d distinct nodes of the tree: %v", n, visits)
			}
		})
	}
	t.Run("no descriptors", func(t *testing.T) {
		if err := handlers.Dispatch(context.Background(), handlers.Sequence(), 1); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDispatchLimit checks that no more than limit calls of the handler run
// at once, on graphs deeper than the limit, where a semaphore held across
// the recursion would deadlock.
func TestDispatchLimit(t *testing.T) {
	for _, tc := range []struct{ limit, depth, fanout int }{
		{1, 6, 2},
		{2, 5, 3},
		{3, 8, 2},
	} {
		t.Run(fmt.Sprintf("limit %d depth %d", tc.limit, tc.depth), func(t *testing.T) {
			g, n := tree(tc.depth, tc.fanout)
			var running, peak, calls atomic.Int64
			h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
				now := running.Add(1)
				defer running.Add(-1)
				calls.Add(1)
				for {
					old := peak.Load()
					if now <= old || peak.CompareAndSwap(old, now) {
						break
					}
				}
				// Give other goroutines a chance to enter, to make an
				// over-limit run likely if the bound were wrong.
				for range 3 {
					runtime.Gosched()
				}
				var kids []ocispec.Descriptor
				for _, c := range g[nameOf(d)] {
					kids = append(kids, node(c))
				}
				return kids, nil
			})
			// The timeout only turns a deadlock into a failure.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := handlers.Dispatch(ctx, h, tc.limit, node("r")); err != nil {
				t.Fatal(err)
			}
			if got := calls.Load(); got != int64(n) {
				t.Errorf("handler called %d times, want %d", got, n)
			}
			if got := peak.Load(); got > int64(tc.limit) {
				t.Errorf("%d concurrent calls, limit %d", got, tc.limit)
			}
		})
	}
}

// TestDispatchParallel checks that siblings really run at once: each sibling
// waits for all the others to have started, which only a parallel dispatch
// can satisfy. The timeout only turns a hang into a failure.
func TestDispatchParallel(t *testing.T) {
	const n = 4
	for _, limit := range []int{0, n} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			wg.Add(n)
			all := make(chan struct{})
			go func() { wg.Wait(); close(all) }()
			var kids []ocispec.Descriptor
			for i := range n {
				kids = append(kids, node(fmt.Sprint("k", i)))
			}
			h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
				if nameOf(d) == "r" {
					return kids, nil
				}
				wg.Done()
				select {
				case <-all:
					return nil, nil
				case <-ctx.Done():
					return nil, fmt.Errorf("%s waited for its siblings in vain: %w", nameOf(d), ctx.Err())
				}
			})
			if err := handlers.Dispatch(ctx, h, limit, node("r")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// blocking returns a handler for g in which every node whose name starts
// with "block" blocks until its context is done, and the node "fail" returns
// errBoom once `blockers` blockers have started. It counts the calls that
// start and those that return.
func blocking(g graph, blockers int64, started, exited *atomic.Int64) handlers.HandlerFunc {
	allStarted := make(chan struct{})
	var blocked atomic.Int64
	return func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		started.Add(1)
		defer exited.Add(1)
		name := nameOf(d)
		switch {
		case name == "fail":
			<-allStarted
			return nil, errBoom
		case strings.HasPrefix(name, "block"):
			if blocked.Add(1) == blockers {
				close(allStarted)
			}
			<-ctx.Done()
			// A slow exit makes a Dispatch that does not wait more visible.
			time.Sleep(time.Millisecond)
			return nil, ctx.Err()
		}
		var kids []ocispec.Descriptor
		for _, c := range g[name] {
			kids = append(kids, node(c))
		}
		return kids, nil
	}
}

func TestDispatchErrorCancelsAndWaits(t *testing.T) {
	// Blockers at two depths; "fail" fails once all of them are inside the
	// handler. Dispatch must return errBoom, and only after every blocker
	// has returned.
	g := graph{
		"r": {"a", "b", "fail"},
		"a": {"block1", "block2"},
		"b": {"c"},
		"c": {"block3", "block4"},
	}
	// With limit 5, the four blockers and "fail" fill every slot.
	for _, limit := range []int{0, 5} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var started, exited atomic.Int64
			h := blocking(g, 4, &started, &exited)
			err := handlers.Dispatch(context.Background(), h, limit, node("r"))
			if !errors.Is(err, errBoom) {
				t.Fatalf("Dispatch() = %v, want %v", err, errBoom)
			}
			if s, e := started.Load(), exited.Load(); s != e {
				t.Fatalf("Dispatch returned with %d of %d handler calls still running", s-e, s)
			}
			if s := started.Load(); s != 9 {
				t.Errorf("%d handler calls, want 9", s)
			}
		})
	}
}

func TestDispatchCallerCancel(t *testing.T) {
	g := graph{"r": {"a", "block1"}, "a": {"block2", "block3"}}
	ctx, cancel := context.WithCancel(context.Background())
	var started, exited atomic.Int64
	inner := blocking(g, 0, &started, &exited)
	var blocked atomic.Int64
	h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if nameOf(d)[0] == 'b' && blocked.Add(1) == 3 {
			cancel()
		}
		return inner(ctx, d)
	})
	err := handlers.Dispatch(ctx, h, 0, node("r"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dispatch() = %v, want context.Canceled", err)
	}
	if s, e := started.Load(), exited.Load(); s != e || s != 5 {
		t.Fatalf("started %d, exited %d handler calls; want 5 and 5", s, e)
	}
}

func TestDispatchSkipDesc(t *testing.T) {
	g, _ := tree(3, 2)
	var mu sync.Mutex
	var visits []string
	inner := g.handler(&visits, &mu)
	h := handlers.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		kids, err := inner(ctx, d)
		if nameOf(d) == "r.0" {
			return kids, handlers.ErrSkipDesc
		}
		return kids, err
	})
	if err := handlers.Dispatch(context.Background(), h, 2, node("r")); err != nil {
		t.Fatalf("Dispatch() = %v, want nil", err)
	}
	slices.Sort(visits)
	want := []string{"r", "r.0", "r.1", "r.1.0", "r.1.0.0", "r.1.0.1", "r.1.1", "r.1.1.0", "r.1.1.1"}
	if !slices.Equal(visits, want) {
		t.Errorf("visits = %v, want %v", visits, want)
	}
}
