package platforms

import (
	"bufio"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/cpu"
)

// hostVariant returns the variant of the running CPU for runtime.GOARCH,
// or "" where there is none to report.
func hostVariant() string {
	switch runtime.GOARCH {
	case "amd64":
		level := buildLevel("GOAMD64")
		if flags, ok := hostCPUFlags(); ok {
			level = max(level, amd64LevelFromFlags(flags))
		} else {
			level = max(level, amd64LevelFromFlags(cpuidFlags()))
		}
		return amd64Variant(level)
	case "arm":
		v := max(buildLevel("GOARM"), hostARMVersion())
		if v == 0 {
			return "v7"
		}
		return "v" + strconv.Itoa(v)
	}
	return ""
}

// buildLevel returns the level the binary was built for from the build
// setting key (GOAMD64 "v3" → 3, GOARM "6,softfloat" → 6), or 0. The Go
// runtime refuses to start on a CPU below that level, so it is a floor.
func buildLevel(key string) int {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return 0
	}
	for _, s := range info.Settings {
		if s.Key != key {
			continue
		}
		v, _, _ := strings.Cut(strings.TrimPrefix(s.Value, "v"), ",")
		if len(v) == 1 && '1' <= v[0] && v[0] <= '9' {
			return int(v[0] - '0')
		}
	}
	return 0
}

// amd64LevelFromFlags returns the x86-64 psABI micro-architecture level
// (1 to 4) that a set of Linux /proc/cpuinfo flag names provides.
func amd64LevelFromFlags(flags map[string]bool) int {
	levels := [...][]string{
		2: {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"},
		3: {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"},
		4: {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
	}
	level := 1
	for l := 2; l < len(levels); l++ {
		for _, f := range levels[l] {
			if !flags[f] {
				return level
			}
		}
		level = l
	}
	return level
}

// cpuidFlags maps what golang.org/x/sys/cpu reports to /proc/cpuinfo flag
// names. x/sys/cpu does not report LAHF-SAHF, F16C, LZCNT (abm) or MOVBE;
// they are assumed present when the features of the same level that every
// CPU with them also has are present (SSE4.2 and POPCNT; AVX2, BMI2 and FMA).
func cpuidFlags() map[string]bool {
	x := &cpu.X86
	level3Core := x.HasAVX2 && x.HasBMI2 && x.HasFMA
	return map[string]bool{
		"cx16":     x.HasCX16,
		"lahf_lm":  x.HasSSE42 && x.HasPOPCNT,
		"popcnt":   x.HasPOPCNT,
		"pni":      x.HasSSE3,
		"sse4_1":   x.HasSSE41,
		"sse4_2":   x.HasSSE42,
		"ssse3":    x.HasSSSE3,
		"avx":      x.HasAVX,
		"avx2":     x.HasAVX2,
		"bmi1":     x.HasBMI1,
		"bmi2":     x.HasBMI2,
		"fma":      x.HasFMA,
		"xsave":    x.HasOSXSAVE,
		"f16c":     level3Core,
		"abm":      level3Core,
		"movbe":    level3Core,
		"avx512f":  x.HasAVX512F,
		"avx512bw": x.HasAVX512BW,
		"avx512cd": x.HasAVX512CD,
		"avx512dq": x.HasAVX512DQ,
		"avx512vl": x.HasAVX512VL,
	}
}

// cpuInfoField returns the value of the first "key : value" line of a
// /proc/cpuinfo listing whose key equals key, ignoring case and spaces.
func cpuInfoField(r io.Reader, key string) (string, bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), key) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// parseFlags splits a cpuinfo "flags" value into a set.
func parseFlags(v string) map[string]bool {
	set := make(map[string]bool)
	for _, f := range strings.Fields(v) {
		set[f] = true
	}
	return set
}

// armVersionFromCPUInfo returns the Arm architecture version (5 to 9) that
// the "CPU architecture" and "model name" fields of /proc/cpuinfo report,
// or 0. Older Raspberry Pi kernels report ARMv6 cores as architecture 7
// and are recognized by their model name.
func armVersionFromCPUInfo(arch, model string) int {
	a := strings.ToLower(strings.TrimSpace(arch))
	var v int
	switch {
	case a == "aarch64":
		v = 8
	case strings.HasPrefix(a, "?("):
		// Kernels print "?(N)" for CPUID-scheme ARMv7 cores they cannot name.
		v = 7
	default:
		n := 0
		for n < len(a) && '0' <= a[n] && a[n] <= '9' {
			n++
		}
		if n == 1 {
			v = int(a[0] - '0')
		}
	}
	if v == 7 && strings.HasPrefix(strings.ToLower(strings.TrimSpace(model)), "armv6-compatible") {
		v = 6
	}
	if v < 5 {
		return 0
	}
	return v
}

// armVersionFromMachine returns the Arm architecture version that a uname
// machine name such as "armv7l" or "aarch64" implies, or 0.
func armVersionFromMachine(machine string) int {
	if strings.EqualFold(machine, "arm") {
		return 0 // no version in the name
	}
	arch, variant := normalizeArch(machine, "")
	switch arch {
	case "arm64":
		return 8
	case "arm":
		if v, ok := armVersion(variant); ok && v >= 5 {
			return v
		}
	}
	return 0
}
