package schema1

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// ErrConversionDisabled is for callers that meet a Docker schema 1 manifest
// without converting it: its text says how to enable the conversion, and it
// matches errdefs.ErrNotImplemented, as handlers.ChildrenOf classifies schema
// 1 content. Wrap it with the subject:
//
//	return fmt.Errorf("pull %s: %w", ref, schema1.ErrConversionDisabled)
var ErrConversionDisabled = fmt.Errorf("docker schema 1 manifest, a deprecated format: enable schema 1 conversion (pullkit.WithSchema1Conversion) to pull it as schema 2: %w", errdefs.ErrNotImplemented)
