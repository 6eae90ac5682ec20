package handlers

import (
	"context"
	"errors"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// ErrSkipDesc is returned by a [Handler] to prune the walk below a
// descriptor: [Walk] and [Dispatch] do not visit the children returned with
// it, and do not report it as an error. [Sequence] returns it at once, so
// the handlers after the one that returned it are not called either.
//
// Match it with errors.Is; a handler may wrap it.
var ErrSkipDesc = errors.New("skip descriptor")

// ErrStopHandler is returned by a handler inside a [Sequence] to end the
// sequence early: the handlers after it are not called, and the sequence
// returns the children gathered so far (including any that the stopping
// handler returned with ErrStopHandler) and no error.
//
// Returned by a handler that [Walk] or [Dispatch] call directly, it means the
// same thing for a sequence of one: the children it came with are visited
// and no error is reported. Match it with errors.Is; a handler may wrap it.
var ErrStopHandler = errors.New("stop handler")

// Handler handles one descriptor and returns the descriptors it references,
// which [Walk] and [Dispatch] visit next. A nil or empty slice means there is
// nothing below desc.
//
// A Handler used with [Dispatch] is called from several goroutines at once
// and must be safe for that.
type Handler interface {
	Handle(ctx context.Context, desc ocispec.Descriptor) (children []ocispec.Descriptor, err error)
}

// HandlerFunc adapts an ordinary function to a [Handler]. A nil HandlerFunc
// panics when called.
type HandlerFunc func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error)

// Handle calls f(ctx, desc).
func (f HandlerFunc) Handle(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	return f(ctx, desc)
}

var _ Handler = HandlerFunc(nil)

// Sequence returns a handler that calls each of hs in order on the same
// descriptor and returns all the children they return, concatenated in that
// order. With no handlers it returns no children.
//
// The first error stops the sequence. [ErrStopHandler] stops it without an
// error, returning the children gathered so far. Any other error, including
// [ErrSkipDesc], is returned as is, with no children.
func Sequence(hs ...Handler) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		var children []ocispec.Descriptor
		for _, h := range hs {
			ch, err := h.Handle(ctx, desc)
			switch {
			case err == nil:
				children = append(children, ch...)
			case errors.Is(err, ErrStopHandler):
				return append(children, ch...), nil
			default:
				return nil, err
			}
		}
		return children, nil
	}
}

// handle calls h and reads its control errors: it returns the children to
// visit next, or an error to report. Pruned descriptors give (nil, nil).
func handle(ctx context.Context, h Handler, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	children, err := h.Handle(ctx, desc)
	switch {
	case err == nil:
		return children, nil
	case errors.Is(err, ErrStopHandler):
		return children, nil
	case errors.Is(err, ErrSkipDesc):
		return nil, nil
	default:
		return nil, err
	}
}

// Walk calls h on each of descs and, depth first, on the children h returns,
// one call at a time: the children of a descriptor are all handled before its
// next sibling. It stops at the first error h returns, or when ctx is done,
// and returns that error. [ErrSkipDesc] prunes and [ErrStopHandler] is not
// an error; see their documentation.
//
// Walk does not remember what it has visited: a descriptor referenced twice
// is handled twice.
func Walk(ctx context.Context, h Handler, descs ...ocispec.Descriptor) error {
	for _, desc := range descs {
		if err := ctx.Err(); err != nil {
			return err
		}
		children, err := handle(ctx, h, desc)
		if err != nil {
			return err
		}
		if len(children) > 0 {
			if err := Walk(ctx, h, children...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Dispatch calls h on each of descs and on the children h returns, handling
// siblings in parallel, each in its own goroutine. A descriptor's children
// are dispatched as soon as its own call returns.
//
// limit bounds how many calls of h run at once; limit <= 0 means no bound.
// The bound covers each call of h, not the walk below it, so a parent never
// holds a slot while its children wait for one, and any graph, however
// deep, completes even with limit 1.
//
// The first error h returns cancels the context passed to every other call,
// and Dispatch returns it. When ctx is done, Dispatch returns ctx's error.
// In every case Dispatch returns only after every goroutine it started has
// ended, and so after every call of h has returned. [ErrSkipDesc] prunes and
// [ErrStopHandler] is not an error; see their documentation.
//
// Dispatch does not remember what it has visited: a descriptor referenced
// twice is handled twice, possibly at the same time.
func Dispatch(ctx context.Context, h Handler, limit int, descs ...ocispec.Descriptor) error {
	var sem *semaphore.Weighted
	if limit > 0 {
		sem = semaphore.NewWeighted(int64(limit))
	}
	return dispatch(ctx, h, sem, descs)
}

func dispatch(ctx context.Context, h Handler, sem *semaphore.Weighted, descs []ocispec.Descriptor) error {
	if len(descs) == 0 {
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, desc := range descs {
		g.Go(func() error {
			// Acquire may succeed on a done context, so look first.
			if err := ctx.Err(); err != nil {
				return err
			}
			children, err := handleSlot(ctx, h, sem, desc)
			if err != nil {
				return err
			}
			return dispatch(ctx, h, sem, children)
		})
	}
	return g.Wait()
}

// handleSlot calls h while holding one slot of sem, if sem is not nil.
func handleSlot(ctx context.Context, h Handler, sem *semaphore.Weighted, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if sem != nil {
		if err := sem.Acquire(ctx, 1); err != nil {
			return nil, err
		}
		defer sem.Release(1)
	}
	return handle(ctx, h, desc)
}
