//go:build !windows

package platforms

// hostOSVersion returns "": only Windows images carry an OS version that
// matters for matching.
func hostOSVersion() string { return "" }

// hostOSFeatures returns nil: only Windows hosts report OS features.
func hostOSFeatures() []string { return nil }
