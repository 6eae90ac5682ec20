package platforms_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers/platforms"
)

func TestMatch(t *testing.T) {
	p := platforms.MustParse
	tests := []struct {
		name  string
		m     platforms.Matcher
		cand  ocispec.Platform
		match bool
	}{
		// Only(arm64): arm64 spellings, then 32-bit arm v8..v5.
		{"arm64 self", platforms.Only(p("linux/arm64")), p("linux/arm64"), true},
		{"arm64 v8 spelled out", platforms.Only(p("linux/arm64")), plat("linux", "arm64", "v8"), true},
		{"arm64 aarch64", platforms.Only(p("linux/arm64")), plat("linux", "aarch64", "8"), true},
		{"arm64 runs arm/v8", platforms.Only(p("linux/arm64")), p("linux/arm/v8"), true},
		{"arm64 runs arm/v7", platforms.Only(p("linux/arm64")), p("linux/arm/v7"), true},
		{"arm64 runs unversioned arm", platforms.Only(p("linux/arm64")), plat("linux", "arm", ""), true},
		{"arm64 runs arm/v6", platforms.Only(p("linux/arm64")), p("linux/arm/v6"), true},
		{"arm64 runs arm/v5", platforms.Only(p("linux/arm64")), p("linux/arm/v5"), true},
		{"arm64 not arm/v4", platforms.Only(p("linux/arm64")), plat("linux", "arm", "v4"), false},
		{"arm64 not v8.1", platforms.Only(p("linux/arm64")), p("linux/arm64/v8.1"), false},
		{"arm64 not windows", platforms.Only(p("linux/arm64")), plat("windows", "arm64", ""), false},
		{"arm64 not amd64", platforms.Only(p("linux/arm64")), p("linux/amd64"), false},
		{"arm64 not empty OS", platforms.Only(p("linux/arm64")), plat("", "arm64", ""), false},
		{"arm64/v8.2 runs v8.1", platforms.Only(p("linux/arm64/v8.2")), p("linux/arm64/v8.1"), true},
		{"arm64/v8.2 runs v8", platforms.Only(p("linux/arm64/v8.2")), p("linux/arm64"), true},
		{"arm64/v8.2 runs arm/v7", platforms.Only(p("linux/arm64/v8.2")), p("linux/arm/v7"), true},
		{"arm64/v8.2 not v8.3", platforms.Only(p("linux/arm64/v8.2")), p("linux/arm64/v8.3"), false},
		{"arm64/v9.1 runs v9", platforms.Only(p("linux/arm64/v9.1")), p("linux/arm64/v9"), true},
		{"arm64/v9.1 runs v8.6", platforms.Only(p("linux/arm64/v9.1")), p("linux/arm64/v8.6"), true},
		{"arm64/v9.1 not v8.7", platforms.Only(p("linux/arm64/v9.1")), p("linux/arm64/v8.7"), false},
		{"arm64/v9.1 not v9.2", platforms.Only(p("linux/arm64/v9.1")), p("linux/arm64/v9.2"), false},
		{"arm64/v9.1 runs arm/v8", platforms.Only(p("linux/arm64/v9.1")), p("linux/arm/v8"), true},
		// Only(arm/vN): vN down to v5.
		{"arm/v7 self", platforms.Only(p("linux/arm/v7")), plat("linux", "armhf", ""), true},
		{"arm/v7 runs v6", platforms.Only(p("linux/arm/v7")), p("linux/arm/v6"), true},
		{"arm/v7 runs armel", platforms.Only(p("linux/arm/v7")), plat("linux", "armel", ""), true},
		{"arm/v7 runs v5", platforms.Only(p("linux/arm/v7")), p("linux/arm/v5"), true},
		{"arm/v7 not v8", platforms.Only(p("linux/arm/v7")), p("linux/arm/v8"), false},
		{"arm/v7 not arm64", platforms.Only(p("linux/arm/v7")), p("linux/arm64"), false},
		{"arm/v6 not v7", platforms.Only(p("linux/arm/v6")), p("linux/arm/v7"), false},
		{"arm/v6 runs v5", platforms.Only(p("linux/arm/v6")), p("linux/arm/v5"), true},
		{"arm/v5 not v6", platforms.Only(p("linux/arm/v5")), p("linux/arm/v6"), false},
		// Only(amd64/vN): vN down to v1, then 386.
		{"amd64 self", platforms.Only(p("linux/amd64")), plat("Linux", "x86_64", "v1"), true},
		{"amd64 runs 386", platforms.Only(p("linux/amd64")), p("linux/386"), true},
		{"amd64 not v2", platforms.Only(p("linux/amd64")), p("linux/amd64/v2"), false},
		{"amd64/v3 runs v3", platforms.Only(p("linux/amd64/v3")), p("linux/amd64/v3"), true},
		{"amd64/v3 runs v2", platforms.Only(p("linux/amd64/v3")), p("linux/amd64/v2"), true},
		{"amd64/v3 runs v1", platforms.Only(p("linux/amd64/v3")), plat("linux", "amd64", "v1"), true},
		{"amd64/v3 runs plain", platforms.Only(p("linux/amd64/v3")), p("linux/amd64"), true},
		{"amd64/v3 runs 386", platforms.Only(p("linux/amd64/v3")), p("linux/386"), true},
		{"amd64/v3 not v4", platforms.Only(p("linux/amd64/v3")), p("linux/amd64/v4"), false},
		{"amd64 not arm64", platforms.Only(p("linux/amd64")), p("linux/arm64"), false},
		{"386 not amd64", platforms.Only(p("linux/386")), p("linux/amd64"), false},
		{"ppc64le not ppc64", platforms.Only(p("linux/ppc64le")), p("linux/ppc64"), false},
		{"riscv64 self", platforms.Only(p("linux/riscv64")), p("linux/riscv64"), true},
		// OS features are requirements of the image.
		{"image needs win32k, spec lacks it", platforms.Only(win("")), win("", "win32k"), false},
		{"spec has win32k, image needs none", platforms.Only(win("", "win32k")), win(""), true},
		{"spec has win32k, image needs it", platforms.Only(win("", "win32k")), win("", "win32k"), true},
		{"image needs more than spec has", platforms.Only(win("", "win32k")), win("", "a", "win32k"), false},
		{"features, strict", platforms.NewMatcher(win("", "a", "win32k")), win("", "win32k", "win32k"), true},
		// Windows OS versions: Only ranks, strict matchers filter.
		{"windows any version under Only", platforms.Only(win("10.0.17763")), win("10.0.20348"), true},
		{"windows same build, strict", platforms.OnlyStrict(win("10.0.17763")), win("10.0.17763.5830"), true},
		{"windows unversioned image, strict", platforms.OnlyStrict(win("10.0.17763")), win(""), true},
		{"windows unversioned spec, strict", platforms.OnlyStrict(win("")), win("10.0.17763.1"), true},
		{"windows newer build, strict", platforms.OnlyStrict(win("10.0.17763")), win("10.0.20348"), false},
		{"windows older build, strict", platforms.OnlyStrict(win("10.0.17763")), win("10.0.14393"), false},
		{"windows stable ABI, strict", platforms.OnlyStrict(win("10.0.26100")), win("10.0.20348.2700"), true},
		{"windows pre-ABI build, strict", platforms.OnlyStrict(win("10.0.26100")), win("10.0.17763"), false},
		{"windows unparsable spec prefix", platforms.NewMatcher(win("10.0")), win("10.0.17763"), true},
		{"windows unparsable spec other", platforms.NewMatcher(win("10.0")), win("10.01.1"), false},
		{"linux ignores os.version", platforms.NewMatcher(ocispec.Platform{OS: "linux", Architecture: "amd64", OSVersion: "5.15"}), p("linux/amd64"), true},
		// Strict and exact matchers have no fallbacks.
		{"strict arm64 spellings", platforms.OnlyStrict(p("linux/arm64")), plat("linux", "aarch64", "8"), true},
		{"strict arm/v7 not v6", platforms.OnlyStrict(p("linux/arm/v7")), p("linux/arm/v6"), false},
		{"strict amd64 not 386", platforms.OnlyStrict(p("linux/amd64")), p("linux/386"), false},
		{"exact amd64/v2 not v1", platforms.NewMatcher(p("linux/amd64/v2")), p("linux/amd64"), false},
		{"exact case-insensitive", platforms.NewMatcher(p("linux/amd64")), plat("LINUX", "AMD64", ""), true},
		{"exact macos", platforms.NewMatcher(plat("macos", "arm64", "")), plat("darwin", "aarch64", ""), true},
		{"exact zero", platforms.NewMatcher(ocispec.Platform{}), ocispec.Platform{}, true},
		{"exact zero not linux", platforms.NewMatcher(ocispec.Platform{}), p("linux/amd64"), false},
		// Ordered, Any, All.
		{"ordered second", platforms.Ordered(p("linux/arm64"), p("linux/amd64")), p("linux/amd64"), true},
		{"ordered none", platforms.Ordered(p("linux/arm64"), p("linux/amd64")), p("linux/386"), false},
		{"ordered empty", platforms.Ordered(), p("linux/amd64"), false},
		{"any first", platforms.Any(p("linux/arm64"), p("linux/amd64")), p("linux/arm64"), true},
		{"any none", platforms.Any(p("linux/arm64")), p("linux/arm/v8"), false},
		{"any empty", platforms.Any(), p("linux/amd64"), false},
		{"all zero", platforms.All, ocispec.Platform{}, true},
		{"all anything", platforms.All, plat("plan9", "mips", "x"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Match(tt.cand); got != tt.match {
				t.Fatalf("%v.Match(%s) = %v, want %v", tt.m, platforms.FormatAll(tt.cand), got, tt.match)
			}
		})
	}
}

// sortedBy sorts a copy of ps with m.Less as sort.SliceStable would.
func sortedBy(m platforms.MatchComparer, ps []ocispec.Platform) []string {
	ps = slices.Clone(ps)
	sort.SliceStable(ps, func(i, j int) bool { return m.Less(ps[i], ps[j]) })
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = platforms.FormatAll(p)
		if !m.Match(p) {
			out[i] = "!" + out[i]
		}
	}
	return out
}

func parseAll(t *testing.T, specs string) []ocispec.Platform {
	t.Helper()
	ps, err := platforms.ParseAll(strings.Fields(specs))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestLessOrder(t *testing.T) {
	p := platforms.MustParse
	tests := []struct {
		name  string
		m     platforms.MatchComparer
		in    string // specifiers, space-separated
		want  string // FormatAll of the sorted list, "!" marks a non-match
		order string
	}{
		{
			name: "arm64 host",
			m:    platforms.Only(p("linux/arm64")),
			in:   "linux/amd64 linux/arm/v5 linux/arm/v7 linux/arm64/v8 linux/arm/v6 linux/arm/v8 windows/arm64",
			want: "linux/arm64 linux/arm/v8 linux/arm/v7 linux/arm/v6 linux/arm/v5 !linux/amd64 !windows/arm64",
		},
		{
			name: "amd64/v3 host",
			m:    platforms.Only(p("linux/amd64/v3")),
			in:   "linux/386 linux/amd64/v4 linux/amd64 linux/amd64/v2 linux/amd64/v3 linux/arm64",
			want: "linux/amd64/v3 linux/amd64/v2 linux/amd64 linux/386 !linux/amd64/v4 !linux/arm64",
		},
		{
			name: "amd64/v4 host",
			m:    platforms.Only(p("linux/amd64/v4")),
			in:   "linux/386 linux/amd64 linux/amd64/v2 linux/amd64/v3 linux/amd64/v4",
			want: "linux/amd64/v4 linux/amd64/v3 linux/amd64/v2 linux/amd64 linux/386",
		},
		{
			name: "arm64/v9.2 host",
			m:    platforms.Only(p("linux/arm64/v9.2")),
			in:   "linux/arm64/v8.7 linux/arm64/v9 linux/arm/v7 linux/arm64 linux/arm64/v9.1 linux/arm64/v8.8 linux/arm64/v9.2",
			want: "linux/arm64/v9.2 linux/arm64/v9.1 linux/arm64/v9 linux/arm64/v8.7 linux/arm64 linux/arm/v7 !linux/arm64/v8.8",
		},
		{
			name: "arm/v7 host",
			m:    platforms.Only(p("linux/arm/v7")),
			in:   "linux/arm/v5 linux/arm/v6 linux/arm64 linux/arm/v7",
			want: "linux/arm/v7 linux/arm/v6 linux/arm/v5 !linux/arm64",
		},
		{
			name: "windows ltsc2025 host",
			m:    platforms.Only(win("10.0.26100")),
			in: "windows(10.0.17763.100)/amd64 windows/amd64 windows(10.0.20348.100)/amd64 windows(10.0.26100.10)/amd64 " +
				"windows(10.0.26100.50)/amd64 windows(10.0.27000)/amd64 linux/amd64 windows(10.0.20348.200)/amd64",
			want: "windows(10.0.26100.50)/amd64 windows(10.0.26100.10)/amd64 windows(10.0.20348.200)/amd64 windows(10.0.20348.100)/amd64 " +
				"windows/amd64 windows(10.0.17763.100)/amd64 windows(10.0.27000)/amd64 !linux/amd64",
		},
		{
			name: "windows ltsc2019 host",
			m:    platforms.Only(win("10.0.17763")),
			in:   "windows(10.0.20348)/amd64 windows(10.0.17763.1)/amd64 windows/amd64 windows(10.0.14393)/amd64 windows(junk)/amd64 windows/386",
			want: "windows(10.0.17763.1)/amd64 windows/amd64 windows(10.0.14393)/amd64 windows(10.0.20348)/amd64 windows(junk)/amd64 windows/386",
		},
		{
			name: "windows host without version has no version preference",
			m:    platforms.Only(win("")),
			in:   "windows(10.0.14393)/amd64 windows(10.0.20348)/amd64 windows/386 windows/amd64",
			want: "windows(10.0.14393)/amd64 windows(10.0.20348)/amd64 windows/amd64 windows/386",
		},
		{
			name: "ordered",
			m:    platforms.Ordered(p("linux/arm64"), p("linux/amd64")),
			in:   "linux/386 linux/amd64 linux/arm64 linux/arm/v7",
			want: "linux/arm64 linux/amd64 !linux/386 !linux/arm/v7",
		},
		{
			name: "any keeps input order among matches",
			m:    platforms.Any(p("linux/arm64"), p("linux/amd64")),
			in:   "linux/386 linux/amd64 linux/s390x linux/arm64",
			want: "linux/amd64 linux/arm64 !linux/386 !linux/s390x",
		},
		{
			name: "all keeps input order",
			m:    platforms.All,
			in:   "linux/386 linux/amd64 windows/arm64",
			want: "linux/386 linux/amd64 windows/arm64",
		},
		{
			name: "strict",
			m:    platforms.OnlyStrict(p("linux/arm/v7")),
			in:   "linux/arm/v6 linux/armhf",
			want: "linux/arm/v7 !linux/arm/v6",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(sortedBy(tt.m, parseAll(t, tt.in)), " ")
			if got != tt.want {
				t.Fatalf("sorted by %v:\n got %s\nwant %s", tt.m, got, tt.want)
			}
		})
	}
}

// TestLessIsStrictWeakOrder checks the properties sort relies on for every
// comparer over a pool of platforms that mixes matches and non-matches.
func TestLessIsStrictWeakOrder(t *testing.T) {
	pool := parseAll(t, "linux/amd64 linux/amd64/v2 linux/amd64/v3 linux/amd64/v4 linux/386 linux/arm64 linux/arm64/v8.1 "+
		"linux/arm64/v9 linux/arm/v5 linux/arm/v6 linux/arm/v7 linux/arm/v8 linux/s390x darwin/arm64 windows/amd64 "+
		"windows(10.0.17763.1)/amd64 windows(10.0.17763.9)/amd64 windows(10.0.20348)/amd64 windows(10.0.26100.3)/amd64 "+
		"windows(+win32k)/amd64 windows(x.y)/amd64")
	p := platforms.MustParse
	comparers := []platforms.MatchComparer{
		platforms.Only(p("linux/arm64/v9.1")),
		platforms.Only(p("linux/amd64/v3")),
		platforms.Only(p("linux/arm/v7")),
		platforms.Only(win("10.0.26100", "win32k")),
		platforms.Only(win("10.0.17763")),
		platforms.OnlyStrict(win("10.0.26100")),
		platforms.Ordered(p("linux/arm64"), p("linux/amd64"), p("darwin/arm64")),
		platforms.Any(p("linux/arm64"), p("linux/amd64")),
		platforms.All,
		platforms.Default(),
	}
	for _, m := range comparers {
		t.Run(fmt.Sprint(m), func(t *testing.T) {
			less := m.Less
			equiv := func(a, b ocispec.Platform) bool { return !less(a, b) && !less(b, a) }
			for _, a := range pool {
				if less(a, a) {
					t.Fatalf("Less(%s, itself) = true", platforms.FormatAll(a))
				}
				for _, b := range pool {
					if less(a, b) && less(b, a) {
						t.Fatalf("Less is not asymmetric for %s and %s", platforms.FormatAll(a), platforms.FormatAll(b))
					}
					if m.Match(a) && !m.Match(b) && !less(a, b) {
						t.Fatalf("matching %s does not sort before non-matching %s", platforms.FormatAll(a), platforms.FormatAll(b))
					}
					for _, c := range pool {
						if less(a, b) && less(b, c) && !less(a, c) {
							t.Fatalf("Less is not transitive: %s < %s < %s", platforms.FormatAll(a), platforms.FormatAll(b), platforms.FormatAll(c))
						}
						if equiv(a, b) && equiv(b, c) && !equiv(a, c) {
							t.Fatalf("equivalence is not transitive: %s ~ %s ~ %s", platforms.FormatAll(a), platforms.FormatAll(b), platforms.FormatAll(c))
						}
					}
				}
			}
		})
	}
}

func TestComparerStrings(t *testing.T) {
	p := platforms.MustParse
	tests := []struct {
		m    platforms.Matcher
		want string
	}{
		{platforms.Only(p("linux/amd64/v3")), "linux/amd64/v3, linux/amd64/v2, linux/amd64, linux/386"},
		{platforms.Only(p("linux/arm64")), "linux/arm64, linux/arm/v8, linux/arm/v7, linux/arm/v6, linux/arm/v5"},
		{platforms.Only(win("10.0.17763")), "windows(10.0.17763)/amd64, windows(10.0.17763)/386"},
		{platforms.OnlyStrict(p("linux/arm/v6")), "linux/arm/v6"},
		{platforms.Ordered(p("linux/arm64"), p("linux/amd64")), "linux/arm64, linux/amd64"},
		{platforms.Any(p("linux/arm64"), p("linux/amd64")), "any of linux/arm64, linux/amd64"},
		{platforms.NewMatcher(plat("linux", "aarch64", "v8")), "linux/arm64"},
		{platforms.All, "all platforms"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(tt.m); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
