package platforms

import (
	"slices"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Matcher reports whether a platform, typically one declared by an image
// index entry, is acceptable. Implementations in this package normalize the
// platform before they compare it and are safe for concurrent use.
type Matcher interface {
	Match(platform ocispec.Platform) bool
}

// MatchComparer is a [Matcher] that also orders the platforms it matches.
// Less(a, b) reports whether a is a better match than b: a matching platform
// is better than a non-matching one, and two non-matching platforms are
// equally bad. Less is a strict weak ordering, so it can drive
// sort.SliceStable or slices.SortStableFunc, and the best match sorts first.
type MatchComparer interface {
	Matcher
	Less(a, b ocispec.Platform) bool
}

// NewMatcher returns a Matcher that accepts exactly p, after normalizing
// both sides: same OS, architecture and variant (so "arm64" and "arm64/v8",
// or "amd64" and "amd64/v1", are the same platform), and OS features that
// are a subset of p's. The zero Platform matches only platforms whose
// normalized OS, architecture and variant are all empty.
//
// For Windows, when both p and the candidate have an OS version, the
// candidate must either share p's major.minor.build or be a build p can run
// with process isolation (the stable ABI of Windows Server 2022, build
// 20348, and later: any build from 20348 up to p's). If p's OS version is
// not of the form major.minor.build[.revision], it must equal the
// candidate's or be a dot-separated prefix of it. OS versions of other
// operating systems are ignored.
func NewMatcher(p ocispec.Platform) Matcher {
	return newExact(p)
}

type exact struct {
	p ocispec.Platform // normalized
}

func newExact(p ocispec.Platform) exact {
	return exact{p: Normalize(p)}
}

func (m exact) Match(p ocispec.Platform) bool {
	return m.matchNormalized(Normalize(p))
}

func (m exact) matchNormalized(n ocispec.Platform) bool {
	if !sameKind(m.p, n) || !isSubset(n.OSFeatures, m.p.OSFeatures) {
		return false
	}
	if m.p.OS == "windows" {
		t, _, _ := windowsRank(m.p.OSVersion, n.OSVersion)
		return t <= tierUnversioned
	}
	return true
}

func (m exact) String() string { return FormatAll(m.p) }

// sameKind reports whether normalized a and b have the same OS,
// architecture and variant.
func sameKind(a, b ocispec.Platform) bool {
	return a.OS == b.OS && a.Architecture == b.Architecture && a.Variant == b.Variant
}

// isSubset reports whether every element of sorted sub is in sorted set.
func isSubset(sub, set []string) bool {
	j := 0
	for _, s := range sub {
		for j < len(set) && set[j] < s {
			j++
		}
		if j == len(set) || set[j] != s {
			return false
		}
		j++
	}
	return true
}

// Only returns a MatchComparer for p and the platforms a host of platform p
// can also run, best first (see the package documentation for the lists):
// arm64 also matches arm/v8 down to arm/v5, arm/vN matches arm/vN down to
// arm/v5, amd64/vN matches amd64/vN down to plain amd64 and then 386. Each
// fallback keeps p's OS and OS features. For Windows, p's OS version ranks
// the candidates without excluding any (same build first); see the package
// documentation. Only(ocispec.Platform{}) matches only platforms whose
// normalized OS, architecture and variant are empty.
func Only(p ocispec.Platform) MatchComparer {
	spec := Normalize(p)
	return &only{spec: spec, vector: fallbacks(spec)}
}

type only struct {
	spec   ocispec.Platform   // normalized
	vector []ocispec.Platform // spec first, then its fallbacks
}

func (o *only) Match(p ocispec.Platform) bool {
	_, ok := o.rank(p)
	return ok
}

func (o *only) Less(a, b ocispec.Platform) bool {
	return lessBy(o.rank, a, b)
}

func (o *only) rank(p ocispec.Platform) (rankKey, bool) {
	n := Normalize(p)
	if !isSubset(n.OSFeatures, o.spec.OSFeatures) {
		return rankKey{}, false
	}
	for i, v := range o.vector {
		if !sameKind(v, n) {
			continue
		}
		k := rankKey{int64(i)}
		if o.spec.OS == "windows" {
			t, build, rev := windowsRank(o.spec.OSVersion, n.OSVersion)
			k[1], k[2], k[3] = int64(t), -build, -rev
		}
		return k, true
	}
	return rankKey{}, false
}

func (o *only) String() string {
	return formatList(o.vector)
}

// OnlyStrict returns a MatchComparer that matches p as [NewMatcher] does,
// without the fallbacks of [Only]: "arm/v7" does not match "arm/v6", and
// "amd64" does not match "386". It still treats spellings that normalize to
// the same platform as equal ("aarch64" matches "arm64/v8").
func OnlyStrict(p ocispec.Platform) MatchComparer {
	return Ordered(p)
}

// Ordered returns a MatchComparer that matches any of ps, each as
// [NewMatcher] would, and prefers platforms that match an earlier element of
// ps. With no platforms it matches nothing.
func Ordered(ps ...ocispec.Platform) MatchComparer {
	return ordered(exacts(ps))
}

type ordered []exact

func (o ordered) Match(p ocispec.Platform) bool {
	_, ok := o.rank(p)
	return ok
}

func (o ordered) Less(a, b ocispec.Platform) bool {
	return lessBy(o.rank, a, b)
}

func (o ordered) rank(p ocispec.Platform) (rankKey, bool) {
	n := Normalize(p)
	for i, m := range o {
		if m.matchNormalized(n) {
			return rankKey{int64(i)}, true
		}
	}
	return rankKey{}, false
}

func (o ordered) String() string { return formatExacts(o) }

// Any returns a MatchComparer that matches any of ps, each as [NewMatcher]
// would, with no preference between them: Less only puts matching platforms
// before non-matching ones. With no platforms it matches nothing.
func Any(ps ...ocispec.Platform) MatchComparer {
	return anyOf(exacts(ps))
}

type anyOf []exact

func (a anyOf) Match(p ocispec.Platform) bool {
	n := Normalize(p)
	for _, m := range a {
		if m.matchNormalized(n) {
			return true
		}
	}
	return false
}

func (a anyOf) Less(x, y ocispec.Platform) bool {
	return a.Match(x) && !a.Match(y)
}

func (a anyOf) String() string { return "any of " + formatExacts(a) }

// All matches every platform, including the zero Platform, and prefers
// none: its Less always reports false.
var All MatchComparer = all{}

type all struct{}

func (all) Match(ocispec.Platform) bool     { return true }
func (all) Less(_, _ ocispec.Platform) bool { return false }
func (all) String() string                  { return "all platforms" }

func exacts(ps []ocispec.Platform) []exact {
	ms := make([]exact, len(ps))
	for i, p := range ps {
		ms[i] = newExact(p)
	}
	return ms
}

func formatExacts(ms []exact) string {
	ps := make([]ocispec.Platform, len(ms))
	for i, m := range ms {
		ps[i] = m.p
	}
	return formatList(ps)
}

func formatList(ps []ocispec.Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = FormatAll(p)
	}
	return strings.Join(s, ", ")
}

// rankKey orders matches: lower is better, compared element by element.
type rankKey [4]int64

func lessBy(rank func(ocispec.Platform) (rankKey, bool), a, b ocispec.Platform) bool {
	ka, ok := rank(a)
	if !ok {
		return false
	}
	kb, ok := rank(b)
	if !ok {
		return true
	}
	return slices.Compare(ka[:], kb[:]) < 0
}

// fallbacks returns normalized p followed by the platforms a p host can
// also run, best first.
func fallbacks(p ocispec.Platform) []ocispec.Platform {
	with := func(arch, variant string) ocispec.Platform {
		q := p
		q.Architecture, q.Variant = arch, variant
		return q
	}
	vector := []ocispec.Platform{p}
	switch p.Architecture {
	case "amd64":
		if level, ok := amd64Level(p.Variant); ok {
			for l := level - 1; l >= 1; l-- {
				vector = append(vector, with("amd64", amd64Variant(l)))
			}
		}
		vector = append(vector, with("386", ""))
	case "arm":
		if v, ok := armVersion(p.Variant); ok {
			for v--; v >= 5; v-- {
				vector = append(vector, with("arm", "v"+strconv.Itoa(v)))
			}
		}
	case "arm64":
		major, minor, ok := parseARM64Variant(p.Variant)
		if !ok || major < 8 {
			break
		}
		if major == 9 {
			for m := minor - 1; m >= 0; m-- {
				vector = append(vector, with("arm64", formatARM64Variant(9, m)))
			}
			// Armv9.0 is aligned with Armv8.5, so v9.x runs v8.(x+5).
			major, minor = 8, minor+5
			vector = append(vector, with("arm64", formatARM64Variant(major, minor)))
		}
		if major == 8 {
			for m := minor - 1; m >= 0; m-- {
				vector = append(vector, with("arm64", formatARM64Variant(8, m)))
			}
		}
		vector = append(vector, fallbacks(with("arm", "v8"))...)
	}
	return vector
}

// amd64Level returns the micro-architecture level of a normalized amd64
// variant: "" is v1, "vN" is N for N in 2..9.
func amd64Level(variant string) (int, bool) {
	if variant == "" {
		return 1, true
	}
	if len(variant) == 2 && variant[0] == 'v' && '2' <= variant[1] && variant[1] <= '9' {
		return int(variant[1] - '0'), true
	}
	return 0, false
}

// amd64Variant is the normalized variant of amd64 level l.
func amd64Variant(l int) string {
	if l <= 1 {
		return ""
	}
	return "v" + strconv.Itoa(l)
}

// armVersion returns N for a normalized arm variant "vN", N in 1..9.
func armVersion(variant string) (int, bool) {
	if len(variant) == 2 && variant[0] == 'v' && '1' <= variant[1] && variant[1] <= '9' {
		return int(variant[1] - '0'), true
	}
	return 0, false
}

// parseARM64Variant reads "", "vN" or "vN.M" (N and M up to three decimal
// digits); "" is v8.0.
func parseARM64Variant(v string) (major, minor int, ok bool) {
	if v == "" {
		return 8, 0, true
	}
	rest, ok := strings.CutPrefix(v, "v")
	if !ok {
		return 0, 0, false
	}
	ma, mi, hasMinor := strings.Cut(rest, ".")
	if major, ok = smallNumber(ma); !ok {
		return 0, 0, false
	}
	if hasMinor {
		if minor, ok = smallNumber(mi); !ok {
			return 0, 0, false
		}
	}
	return major, minor, true
}

func formatARM64Variant(major, minor int) string {
	switch {
	case major == 8 && minor == 0:
		return ""
	case minor == 0:
		return "v" + strconv.Itoa(major)
	}
	return "v" + strconv.Itoa(major) + "." + strconv.Itoa(minor)
}

// smallNumber parses one to three decimal digits.
func smallNumber(s string) (int, bool) {
	if s == "" || len(s) > 3 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
