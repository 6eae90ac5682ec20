package platforms

import (
	"strconv"
	"strings"
)

// Tiers of a Windows image's OS version relative to a host's, best first.
const (
	tierSameBuild   = iota // same major.minor.build
	tierCompatible         // runs with process isolation under the stable ABI
	tierUnversioned        // the image declares no OS version
	tierOlder              // an older build: needs Hyper-V isolation
	tierOther              // a newer build, or a version we cannot read
)

// firstStableABIBuild is Windows Server 2022 (LTSC 2022, 10.0.20348). Hosts
// from this build on run container images of any build from it up to their
// own with process isolation; older hosts need the exact build.
const firstStableABIBuild = 20348

// windowsVersion is a parsed "major.minor.build[.revision]".
type windowsVersion struct {
	major, minor, build, revision int64
}

func parseWindowsVersion(s string) (windowsVersion, bool) {
	fields := strings.Split(s, ".")
	if len(fields) != 3 && len(fields) != 4 {
		return windowsVersion{}, false
	}
	var n [4]int64
	for i, f := range fields {
		v, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return windowsVersion{}, false
		}
		n[i] = int64(v)
	}
	return windowsVersion{major: n[0], minor: n[1], build: n[2], revision: n[3]}, true
}

// compareBuild compares major.minor.build of a and b, ignoring revisions.
func (a windowsVersion) compareBuild(b windowsVersion) int {
	for _, d := range [...]int64{a.major - b.major, a.minor - b.minor, a.build - b.build} {
		switch {
		case d < 0:
			return -1
		case d > 0:
			return 1
		}
	}
	return 0
}

// windowsRank places an image's OS version relative to a host's: the tier,
// then the image's build and revision (higher is better within a tier).
// An empty host version puts every image in tierSameBuild with no
// preference between them.
func windowsRank(host, image string) (tier int, build, revision int64) {
	if host == "" {
		return tierSameBuild, 0, 0
	}
	if image == "" {
		return tierUnversioned, 0, 0
	}
	iv, iok := parseWindowsVersion(image)
	hv, hok := parseWindowsVersion(host)
	switch {
	case !hok:
		if image == host || strings.HasPrefix(image, host+".") {
			return tierSameBuild, iv.build, iv.revision
		}
		return tierOther, iv.build, iv.revision
	case !iok:
		return tierOther, 0, 0
	}
	switch c := iv.compareBuild(hv); {
	case c == 0:
		return tierSameBuild, iv.build, iv.revision
	case c < 0 && iv.major == hv.major && iv.minor == hv.minor && iv.build >= firstStableABIBuild:
		return tierCompatible, iv.build, iv.revision
	case c < 0:
		return tierOlder, iv.build, iv.revision
	}
	return tierOther, iv.build, iv.revision
}
