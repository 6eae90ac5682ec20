//go:build !linux

package platforms

// hostCPUFlags reports no flags: outside Linux the level comes from CPUID.
func hostCPUFlags() (map[string]bool, bool) { return nil, false }

// hostARMVersion reports 0 (unknown): outside Linux the arm variant comes
// from the GOARM the binary was built for.
func hostARMVersion() int { return 0 }
