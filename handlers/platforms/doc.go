// Package platforms parses, formats, normalizes and matches OCI platforms
// ([ocispec.Platform]): the os/architecture/variant triple, plus the Windows
// OS version and OS features, that an image index uses to tell its manifests
// apart.
//
// # Specifiers
//
// [Parse] reads the specifier syntax that users type:
//
//	<os>                         "linux"          (the architecture is the host's)
//	<arch>                       "arm64"          (the OS is the host's)
//	<os>/<arch>                  "linux/amd64"
//	<os>/<arch>/<variant>        "linux/arm/v7"
//	<os>(<version>+<feature>)/…  "windows(10.0.17763+win32k)/amd64"
//
// [Format] writes os/arch[/variant]; [FormatAll] also writes the OS version
// and features, so that Parse(FormatAll(p)) gives back Normalize(p).
//
// # Normalization
//
// [Normalize] maps the names that tools and kernels use to the names Go and
// the OCI image spec use, and picks one spelling for each variant:
//
//	OS:    lower case; macos → darwin
//	arch:  i386, i486, i586, i686, x86 → 386
//	       x86_64, x86-64, x64 → amd64; variant v1 (or 1) → "" (v1 is the baseline)
//	       aarch64 → arm64; variant v8, 8, v8.0 → "" (v8 is the baseline); 9 → v9
//	       armhf → arm/v7; armel → arm/v6; armv5*, armv6*, armv7*, armv8* → arm/vN
//	       arm with no variant → arm/v7; variants 5, 6, 7, 8 → v5 … v8
//	       ppc64el → ppc64le; loongarch64 → loong64
//	OS features: sorted, duplicates removed
//
// The empty OS is left empty: Normalize does not consult the host, so its
// result is the same on every machine. Only [Parse] fills in the host.
//
// # Matching
//
// A [Matcher] reports whether a platform is acceptable; a [MatchComparer]
// also orders acceptable platforms, best first, so that
//
//	sort.SliceStable(ps, func(i, j int) bool { return m.Less(ps[i], ps[j]) })
//
// puts the platform to pull at ps[0]. Every matcher normalizes both sides
// before it compares them. [NewMatcher] and [OnlyStrict] match one platform
// exactly; [Only] also accepts the platforms the given one can run, in this
// order of preference:
//
//	arm64/v8    → arm64, arm/v8, arm/v7, arm/v6, arm/v5
//	arm64/v8.N  → arm64/v8.N … arm64/v8.1, arm64, then arm/v8 … arm/v5
//	arm64/v9.N  → arm64/v9.N … arm64/v9, arm64/v8.(N+5) … arm64, then arm/v8 … arm/v5
//	arm/vN      → arm/vN … arm/v5
//	amd64/vN    → amd64/vN … amd64/v2, amd64, 386
//
// [Default] is Only([DefaultSpec]()), where DefaultSpec describes the running
// host, including its arm variant and amd64 micro-architecture level.
//
// # Windows
//
// Windows images carry an os.version such as 10.0.17763.1234. When the
// platform given to [Only] has an OS version, Only accepts any Windows image
// of a fitting architecture but prefers, in order: the same major.minor.build
// (newest revision first); a build the host can run with process isolation
// under the stable ABI of Windows Server 2022 and later; an image without an
// OS version; an older build (runnable with Hyper-V isolation); a newer build.
// [NewMatcher] and [OnlyStrict] accept only the first three.
//
// A platform's OS features (for example win32k) are requirements: a
// candidate matches only if every feature it lists is also listed by the
// platform the matcher was built from.
//
// # Errors
//
// Parse returns errors that wrap [errdefs.ErrInvalidArgument].
//
// # Concurrency
//
// Matchers and comparers are immutable and safe for concurrent use.
// DefaultSpec inspects the CPU once and caches the result.
package platforms
