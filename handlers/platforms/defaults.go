package platforms

import (
	"runtime"
	"slices"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var defaultSpec = sync.OnceValue(func() ocispec.Platform {
	return Normalize(ocispec.Platform{
		OS:           runtime.GOOS,
		Architecture: runtime.GOARCH,
		Variant:      hostVariant(),
		OSVersion:    hostOSVersion(),
		OSFeatures:   hostOSFeatures(),
	})
})

// DefaultSpec returns the normalized platform of the running host:
// runtime.GOOS and runtime.GOARCH, plus
//
//   - on arm, the variant of the CPU (from /proc/cpuinfo or uname on Linux,
//     never lower than the GOARM the binary was built for; v7 if unknown);
//   - on amd64, the micro-architecture level v2, v3 or v4 the CPU supports
//     (v1 is written as no variant), from /proc/cpuinfo flags on Linux and
//     CPUID elsewhere, never lower than the GOAMD64 the binary was built
//     for;
//   - on Windows, the OS version "major.minor.build" and the OS feature
//     "win32k" when user32.dll can be loaded.
//
// arm64 hosts report no variant (v8). The host is inspected on the first
// call; later calls return a copy of the same value.
func DefaultSpec() ocispec.Platform {
	p := defaultSpec()
	p.OSFeatures = slices.Clone(p.OSFeatures)
	return p
}

// Default returns Only(DefaultSpec()): a MatchComparer for the platforms
// the running host can run, best first. On an amd64/v3 Linux host, for
// example, it prefers linux/amd64/v3, then linux/amd64/v2, linux/amd64 and
// linux/386.
func Default() MatchComparer {
	return Only(DefaultSpec())
}

// DefaultString returns FormatAll(DefaultSpec()), for example
// "linux/amd64/v3", "linux/arm64" or "windows(10.0.20348+win32k)/amd64".
func DefaultString() string {
	return FormatAll(DefaultSpec())
}
