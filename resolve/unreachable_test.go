package resolve_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/resolve"
)

// TestResolveUnreachableIsUnavailable checks that a registry that refuses
// connections is an outage to the caller, not an unclassified error.
func TestResolveUnreachableIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there now

	r := resolve.New(resolve.WithRetries(0))
	_, _, err = r.Resolve(context.Background(), host+"/demo/app:1")
	var rerr *resolve.Error
	if !errors.As(err, &rerr) || !errdefs.IsUnavailable(err) {
		t.Fatalf("Resolve() on a closed port: error = %v, want a *resolve.Error that is Unavailable", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err = r.Resolve(ctx, host+"/demo/app:1"); errdefs.IsUnavailable(err) {
		t.Errorf("Resolve() with a cancelled context: error = %v is Unavailable, want only the cancellation", err)
	}
}
