package handlers

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/content"
)

// The prefixes of containerd's garbage-collection reference labels. A blob
// labelled "<prefix>…" = "<digest>" keeps the blob <digest> alive.
const (
	gcRefContent  = "containerd.io/gc.ref.content."
	gcRefConfig   = gcRefContent + "config"
	gcRefLayer    = gcRefContent + "l."
	gcRefManifest = gcRefContent + "m."
)

// ChildGCLabel returns the garbage-collection label key, in containerd's
// scheme, by which a parent blob references child, the n-th child of its
// kind (counting from 0):
//
//   - a config ([IsConfig]): "containerd.io/gc.ref.content.config", or
//     ".config.<n>" for n > 0, which no valid manifest has;
//   - a layer ([IsLayer]): "containerd.io/gc.ref.content.l.<n>";
//   - a manifest or index ([IsManifest], [IsSchema1], [IsIndex]):
//     "containerd.io/gc.ref.content.m.<n>";
//   - anything else: "containerd.io/gc.ref.content.<n>".
//
// The value of the label is the child's digest. Use [ChildGCLabels] to label
// a whole list of children, counting kinds for you.
func ChildGCLabel(child ocispec.Descriptor, n int) string {
	switch kind := childKind(child.MediaType); {
	case kind == gcRefConfig && n == 0:
		return kind
	case kind == gcRefConfig:
		return kind + "." + strconv.Itoa(n)
	default:
		return kind + strconv.Itoa(n)
	}
}

// childKind returns the label prefix for a child of media type mt.
func childKind(mt string) string {
	switch {
	case IsConfig(mt):
		return gcRefConfig
	case IsLayer(mt):
		return gcRefLayer
	case IsManifest(mt), IsIndex(mt), IsSchema1(mt):
		return gcRefManifest
	}
	return gcRefContent
}

// ChildGCLabels returns the garbage-collection labels by which a parent blob
// references children: the key of each child is [ChildGCLabel] with n
// counting the children of its kind in order, and its value is the child's
// digest. For a manifest's config and layers that gives ".config", ".l.0",
// ".l.1", …; for an index's manifests ".m.0", ".m.1", … It returns nil for no
// children. [SetChildrenLabels] and the importer both label with it, so a
// blob gets the same keys however it entered the store.
func ChildGCLabels(children []ocispec.Descriptor) map[string]string {
	if len(children) == 0 {
		return nil
	}
	labels := make(map[string]string, len(children))
	counts := map[string]int{}
	for _, c := range children {
		kind := childKind(c.MediaType)
		labels[ChildGCLabel(c, counts[kind])] = c.Digest.String()
		counts[kind]++
	}
	return labels
}

// SetChildrenLabels returns a handler that calls h and, when h returns
// children for desc, records them as garbage-collection references on desc's
// blob: it sets the labels [ChildGCLabels] gives through m.Update, changing
// only those keys. Labels from earlier updates are left in place. A
// descriptor without children gets no update.
//
// Errors from h are returned as they are, with their children, and no label
// is set. A failed update is returned wrapped with desc's digest. m must not
// be nil.
func SetChildrenLabels(m content.Manager, h Handler) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := h.Handle(ctx, desc)
		if err != nil || len(children) == 0 {
			return children, err
		}
		labels := ChildGCLabels(children)
		fields := make([]string, 0, len(labels))
		for k := range labels {
			fields = append(fields, "labels."+k)
		}
		sort.Strings(fields)
		if _, err := m.Update(ctx, content.Info{Digest: desc.Digest, Labels: labels}, fields...); err != nil {
			return nil, fmt.Errorf("set gc labels on %s: %w", desc.Digest, err)
		}
		return children, nil
	}
}
