package content

import (
	"context"
	"io"
)

type teeKey struct{}

// WithTee returns a context in which [Copy] also gives w every byte it
// writes, in order, when it writes a blob from its first byte (not when it
// resumes an ingest). It is for a consumer that starts on a blob while it
// downloads: the bytes are unverified when w gets them, and Copy's error
// says whether they were committed. A write to w that fails ends the tee;
// Copy goes on. A nil w turns off a tee ctx has.
func WithTee(ctx context.Context, w io.Writer) context.Context {
	return context.WithValue(ctx, teeKey{}, w)
}

// teeWriter writes to w, and to the tee until a write to it fails.
type teeWriter struct {
	w   io.Writer
	tee io.Writer
}

func (t *teeWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if t.tee != nil && n > 0 {
		if _, terr := t.tee.Write(p[:n]); terr != nil {
			t.tee = nil
		}
	}
	return n, err
}
