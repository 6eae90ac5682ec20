package local_test

import (
	"testing"

	"github.com/pullkit/pullkit/content"
	"github.com/pullkit/pullkit/content/contenttest"
	"github.com/pullkit/pullkit/content/local"
)

// newStore opens a store with opts in a fresh directory.
func newStore(t *testing.T, opts ...local.Option) *local.Store {
	t.Helper()
	s, err := local.New(t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	return s
}

func TestContentSuite(t *testing.T) {
	contenttest.Run(t, func(t *testing.T) content.Store { return newStore(t) })
}

func TestImagesSuite(t *testing.T) {
	contenttest.RunImages(t, func(t *testing.T) content.Images { return newStore(t).Images() })
}
