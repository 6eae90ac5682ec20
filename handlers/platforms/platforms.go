package platforms

import (
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Parse parses a platform specifier such as "linux/arm64/v8", "linux",
// "arm64", "windows/amd64" or "windows(10.0.17763+win32k)/amd64" and returns
// the normalized platform (see [Normalize]).
//
// A specifier has one to three parts separated by "/": os, arch and variant.
// The os part may carry options in parentheses: an OS version, then OS
// features each prefixed by "+"; characters other than letters, digits, '_',
// '.' and '-' in options are percent-encoded, as [FormatAll] writes them.
// A lone part is read as an OS if it names one Go knows (the architecture
// and, for arm, the variant are then the host's), otherwise as an
// architecture Go knows (the OS is then runtime.GOOS). With two or three
// parts, any OS and architecture are accepted.
//
// Errors wrap [errdefs.ErrInvalidArgument]: an empty specifier or part,
// a character outside the allowed set, wildcards, more than three parts,
// or a lone part that is neither a known OS nor a known architecture.
func Parse(s string) (ocispec.Platform, error) {
	p, err := parse(s)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("parse platform %q: %w", s, err)
	}
	return p, nil
}

func parse(s string) (ocispec.Platform, error) {
	if s == "" {
		return ocispec.Platform{}, fmt.Errorf("empty specifier: %w", errdefs.ErrInvalidArgument)
	}
	if strings.Contains(s, "*") {
		return ocispec.Platform{}, fmt.Errorf("wildcards are not supported: %w", errdefs.ErrInvalidArgument)
	}
	parts := strings.Split(s, "/")
	if len(parts) > 3 {
		return ocispec.Platform{}, fmt.Errorf("more than three parts (os/arch/variant): %w", errdefs.ErrInvalidArgument)
	}
	var p ocispec.Platform
	os, hasOptions, err := parseOS(parts[0], &p)
	if err != nil {
		return ocispec.Platform{}, err
	}
	for _, part := range parts[1:] {
		if !validComponent(part, true) {
			return ocispec.Platform{}, fmt.Errorf("invalid component %q: want letters, digits, '_', '.' or '-': %w", part, errdefs.ErrInvalidArgument)
		}
	}

	switch len(parts) {
	case 1:
		if isKnownOS(normalizeOS(os)) {
			host := DefaultSpec()
			p.OS = os
			p.Architecture = host.Architecture
			if host.Architecture == "arm" {
				p.Variant = host.Variant
			}
			return Normalize(p), nil
		}
		if hasOptions {
			return ocispec.Platform{}, fmt.Errorf("unknown operating system %q: %w", os, errdefs.ErrInvalidArgument)
		}
		arch, variant := normalizeArch(os, "")
		if !isKnownArch(arch) {
			return ocispec.Platform{}, fmt.Errorf("unknown operating system or architecture %q: %w", os, errdefs.ErrInvalidArgument)
		}
		p.OS, p.Architecture, p.Variant = runtime.GOOS, arch, variant
	case 2:
		p.OS, p.Architecture = os, parts[1]
	case 3:
		p.OS, p.Architecture, p.Variant = os, parts[1], parts[2]
	}
	return Normalize(p), nil
}

// parseOS reads "<os>[(<version>[+<feature>]...)]" into p's OSVersion and
// OSFeatures and returns the OS name, not yet normalized.
func parseOS(s string, p *ocispec.Platform) (os string, hasOptions bool, err error) {
	name, options, hasOptions := strings.Cut(s, "(")
	if hasOptions {
		var ok bool
		if options, ok = strings.CutSuffix(options, ")"); !ok {
			return "", false, fmt.Errorf("invalid OS component %q: unclosed '(': %w", s, errdefs.ErrInvalidArgument)
		}
	}
	if !validComponent(name, false) {
		return "", false, fmt.Errorf("invalid OS %q: want letters, digits, '_' or '-': %w", name, errdefs.ErrInvalidArgument)
	}
	if !hasOptions {
		return name, false, nil
	}
	fields := strings.Split(options, "+")
	for i, f := range fields {
		if !validOption(f) || (i > 0 && f == "") {
			return "", false, fmt.Errorf("invalid OS option %q in %q: %w", f, s, errdefs.ErrInvalidArgument)
		}
		v, err := url.PathUnescape(f)
		if err != nil {
			return "", false, fmt.Errorf("invalid OS option %q in %q: %w: %w", f, s, errdefs.ErrInvalidArgument, err)
		}
		if i == 0 {
			p.OSVersion = v
		} else {
			p.OSFeatures = append(p.OSFeatures, v)
		}
	}
	return name, true, nil
}

// validComponent reports whether s is a non-empty run of letters, digits,
// '_', '-' and, when dot is true, '.'.
func validComponent(s string, dot bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isPlain(c) && (c != '.' || !dot) {
			return false
		}
	}
	return true
}

// validOption reports whether s holds only characters allowed in an encoded
// OS option: plain characters, '.' and '%'.
func validOption(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isPlain(c) && c != '.' && c != '%' {
			return false
		}
	}
	return true
}

func isPlain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// MustParse is like [Parse] but panics if s cannot be parsed. It is meant
// for package-level variables and tests, where s is a constant.
func MustParse(s string) ocispec.Platform {
	p, err := Parse(s)
	if err != nil {
		panic("platforms: " + err.Error())
	}
	return p
}

// ParseAll parses each specifier with [Parse]. It stops at the first error,
// which names the specifier and wraps [errdefs.ErrInvalidArgument].
// A nil or empty slice gives a nil slice and no error.
func ParseAll(specifiers []string) ([]ocispec.Platform, error) {
	if len(specifiers) == 0 {
		return nil, nil
	}
	ps := make([]ocispec.Platform, len(specifiers))
	for i, s := range specifiers {
		p, err := Parse(s)
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	return ps, nil
}

// Format returns p as "os/arch" or "os/arch/variant", for example
// "linux/arm64/v8", without normalizing it. Empty architecture and variant
// are left out; an empty OS is written "unknown", so the zero Platform
// formats as "unknown". OS version and features are not written; use
// [FormatAll] for those.
func Format(p ocispec.Platform) string {
	return join(p.OS, p)
}

// FormatAll is like [Format] but also writes the OS version and features in
// parentheses after the OS, the form [Parse] reads:
// "windows(10.0.17763)/amd64", "windows(10.0.20348+win32k)/amd64",
// "windows(+win32k)/amd64". Features are written sorted. Characters other
// than letters, digits, '_', '.' and '-' in the version and features are
// percent-encoded. Without a version and features it equals Format.
func FormatAll(p ocispec.Platform) string {
	if p.OSVersion == "" && len(p.OSFeatures) == 0 {
		return Format(p)
	}
	var b strings.Builder
	b.WriteString(p.OS)
	if p.OS == "" {
		b.WriteString("unknown")
	}
	b.WriteByte('(')
	b.WriteString(encodeOption(p.OSVersion))
	features := p.OSFeatures
	if !slices.IsSorted(features) {
		features = slices.Sorted(slices.Values(features))
	}
	for _, f := range features {
		b.WriteByte('+')
		b.WriteString(encodeOption(f))
	}
	b.WriteByte(')')
	return join(b.String(), p)
}

func join(os string, p ocispec.Platform) string {
	if os == "" {
		os = "unknown"
	}
	s := os
	if p.Architecture != "" {
		s += "/" + p.Architecture
	}
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// encodeOption percent-encodes every byte of v that Parse does not accept
// verbatim in an OS option.
func encodeOption(v string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if isPlain(c) || c == '.' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// Normalize returns p with its OS, architecture and variant in canonical
// form (see the package documentation for the table) and its OS features
// sorted with duplicates removed; an empty feature list becomes nil. It
// never consults the host: an empty OS or architecture stays empty. The OS
// version is kept as is. Normalize is idempotent and does not modify the
// caller's OSFeatures slice.
func Normalize(p ocispec.Platform) ocispec.Platform {
	p.OS = normalizeOS(p.OS)
	p.Architecture, p.Variant = normalizeArch(p.Architecture, p.Variant)
	if len(p.OSFeatures) == 0 {
		p.OSFeatures = nil
	} else {
		p.OSFeatures = slices.Compact(slices.Sorted(slices.Values(p.OSFeatures)))
	}
	return p
}

func normalizeOS(os string) string {
	os = strings.ToLower(os)
	if os == "macos" {
		return "darwin"
	}
	return os
}

// normalizeArch returns the canonical architecture and variant.
func normalizeArch(arch, variant string) (string, string) {
	arch, variant = strings.ToLower(arch), strings.ToLower(variant)
	switch arch {
	case "i386", "i486", "i586", "i686", "x86":
		return "386", ""
	case "x86_64", "x86-64", "x64", "amd64":
		switch variant {
		case "", "v1", "1":
			return "amd64", ""
		case "2", "3", "4":
			return "amd64", "v" + variant
		}
		return "amd64", variant
	case "aarch64", "arm64":
		return "arm64", normalizeARM64Variant(variant)
	case "armhf":
		return "arm", "v7"
	case "armel":
		return "arm", "v6"
	case "arm":
		switch variant {
		case "", "7":
			return "arm", "v7"
		case "5", "6", "8":
			return "arm", "v" + variant
		}
		return "arm", variant
	case "ppc64el":
		return "ppc64le", variant
	case "loongarch64":
		return "loong64", variant
	}
	// uname spellings of 32-bit arm: armv5tel, armv6l, armv7l, armv8l, ...
	if rest, ok := strings.CutPrefix(arch, "armv"); ok && rest != "" && '5' <= rest[0] && rest[0] <= '8' && isLetters(rest[1:]) {
		return "arm", "v" + rest[:1]
	}
	return arch, variant
}

// normalizeARM64Variant maps the v8 spellings ("8", "v8", "v8.0") to "",
// "N" and "vN.0" to "vN", and "N.M" to "vN.M". Other values are kept.
func normalizeARM64Variant(variant string) string {
	v := variant
	if v != "" && v[0] != 'v' {
		v = "v" + v
	}
	major, minor, ok := parseARM64Variant(v)
	if !ok {
		return variant
	}
	return formatARM64Variant(major, minor)
}

func isLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// isKnownOS reports whether os is a GOOS value (go/build's syslist).
func isKnownOS(os string) bool {
	switch os {
	case "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
		"linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos":
		return true
	}
	return false
}

// isKnownArch reports whether arch is a GOARCH value (go/build's syslist).
func isKnownArch(arch string) bool {
	switch arch {
	case "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64",
		"mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le",
		"ppc", "ppc64", "ppc64le", "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm":
		return true
	}
	return false
}
