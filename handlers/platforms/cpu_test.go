package platforms

import (
	"runtime"
	"strings"
	"testing"
)

const (
	flagsQEMU64    = "fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 syscall nx lm rep_good nopl pni cx16 x2apic hypervisor lahf_lm"
	flagsNehalem   = flagsQEMU64 + " ssse3 sse4_1 sse4_2 popcnt"
	flagsHaswell   = flagsNehalem + " avx avx2 bmi1 bmi2 f16c fma abm movbe xsave"
	flagsSkylakeSP = flagsHaswell + " avx512f avx512dq avx512cd avx512bw avx512vl"
)

func TestAMD64LevelFromFlags(t *testing.T) {
	tests := []struct {
		name  string
		flags string
		want  int
	}{
		{"none", "", 1},
		{"qemu64 baseline", flagsQEMU64, 1},
		{"nehalem", flagsNehalem, 2},
		{"v2 without lahf_lm", strings.Replace(flagsNehalem, "lahf_lm", "", 1), 1},
		{"haswell", flagsHaswell, 3},
		{"v3 without movbe", strings.Replace(flagsHaswell, "movbe", "", 1), 2},
		{"v3 without xsave", strings.Replace(flagsHaswell, " xsave", "", 1), 2},
		{"skylake-sp", flagsSkylakeSP, 4},
		{"v4 without avx512vl", strings.Replace(flagsSkylakeSP, "avx512vl", "", 1), 3},
		{"avx512 without v3", flagsNehalem + " avx512f avx512dq avx512cd avx512bw avx512vl", 2},
		{"avx2 without v2", flagsQEMU64 + " avx avx2 bmi1 bmi2 f16c fma abm movbe xsave", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := amd64LevelFromFlags(parseFlags(tt.flags)); got != tt.want {
				t.Fatalf("amd64LevelFromFlags() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCPUIDFlagsAgreeWithProc(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("not an amd64 host")
	}
	proc, ok := hostCPUFlags()
	if !ok {
		t.Skip("no /proc/cpuinfo flags")
	}
	// The CPUID estimate may assume F16C, LZCNT and MOVBE, but it never
	// reports a level the kernel does not list the core features of.
	procLevel, cpuidLevel := amd64LevelFromFlags(proc), amd64LevelFromFlags(cpuidFlags())
	t.Logf("/proc/cpuinfo: v%d, CPUID: v%d", procLevel, cpuidLevel)
	for _, f := range []string{"avx2", "bmi2", "fma", "avx512f", "sse4_2", "popcnt"} {
		if cpuidFlags()[f] && !proc[f] {
			t.Errorf("CPUID reports %s but /proc/cpuinfo does not", f)
		}
	}
}

const cpuinfoX86 = `processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) CPU
flags		: ` + flagsHaswell + `

processor	: 1
vendor_id	: GenuineIntel
flags		: fpu
`

const cpuinfoRaspberryPiZero = `processor	: 0
model name	: ARMv6-compatible processor rev 7 (v6l)
BogoMIPS	: 697.95
Features	: half thumb fastmult vfp edsp java tls
CPU implementer	: 0x41
CPU architecture: 7
CPU variant	: 0x0
CPU part	: 0xb76

Hardware	: BCM2835
`

const cpuinfoRaspberryPi4 = `processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
`

func TestCPUInfoField(t *testing.T) {
	tests := []struct {
		name, text, key, want string
		ok                    bool
	}{
		{"x86 flags of the first cpu", cpuinfoX86, "flags", flagsHaswell, true},
		{"x86 model", cpuinfoX86, "model name", "Intel(R) Xeon(R) CPU", true},
		{"x86 no arm field", cpuinfoX86, "CPU architecture", "", false},
		{"pi zero architecture", cpuinfoRaspberryPiZero, "CPU architecture", "7", true},
		{"case-insensitive key", cpuinfoRaspberryPiZero, "cpu ARCHITECTURE", "7", true},
		{"pi zero model", cpuinfoRaspberryPiZero, "model name", "ARMv6-compatible processor rev 7 (v6l)", true},
		{"pi 4 architecture", cpuinfoRaspberryPi4, "CPU architecture", "8", true},
		{"empty", "", "flags", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cpuInfoField(strings.NewReader(tt.text), tt.key)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("cpuInfoField(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestARMVersionFromCPUInfo(t *testing.T) {
	tests := []struct {
		arch, model string
		want        int
	}{
		{"8", "", 8},
		{"AArch64", "", 8},
		{"7", "ARMv7 Processor rev 4 (v7l)", 7},
		{"7", "ARMv6-compatible processor rev 7 (v6l)", 6},
		{"7M", "", 7},
		{"?(12)", "", 7},
		{"6TEJ", "", 6},
		{"5TEJ", "", 5},
		{"5te", "", 5},
		{"4T", "", 0},
		{"", "", 0},
		{"x", "", 0},
		{"10", "", 0},
	}
	for _, tt := range tests {
		if got := armVersionFromCPUInfo(tt.arch, tt.model); got != tt.want {
			t.Errorf("armVersionFromCPUInfo(%q, %q) = %d, want %d", tt.arch, tt.model, got, tt.want)
		}
	}
}

func TestARMVersionFromMachine(t *testing.T) {
	tests := []struct {
		machine string
		want    int
	}{
		{"armv7l", 7},
		{"armv6l", 6},
		{"armv5tel", 5},
		{"armv8l", 8},
		{"aarch64", 8},
		{"arm64", 8},
		{"arm", 0},
		{"armv4l", 0},
		{"x86_64", 0},
		{"", 0},
	}
	for _, tt := range tests {
		if got := armVersionFromMachine(tt.machine); got != tt.want {
			t.Errorf("armVersionFromMachine(%q) = %d, want %d", tt.machine, got, tt.want)
		}
	}
}

func TestBuildLevel(t *testing.T) {
	if runtime.GOARCH == "amd64" && buildLevel("GOAMD64") < 1 {
		t.Errorf("buildLevel(GOAMD64) = %d, want at least 1 in an amd64 test binary", buildLevel("GOAMD64"))
	}
	if got := buildLevel("NO_SUCH_SETTING"); got != 0 {
		t.Errorf("buildLevel(NO_SUCH_SETTING) = %d, want 0", got)
	}
}

func TestWindowsRank(t *testing.T) {
	tests := []struct {
		host, image string
		tier        int
		build, rev  int64
	}{
		{"", "10.0.17763.1", tierSameBuild, 0, 0},
		{"10.0.17763", "", tierUnversioned, 0, 0},
		{"10.0.17763", "10.0.17763", tierSameBuild, 17763, 0},
		{"10.0.17763.100", "10.0.17763.5830", tierSameBuild, 17763, 5830},
		{"10.0.17763", "10.0.14393.1", tierOlder, 14393, 1},
		{"10.0.17763", "10.0.20348", tierOther, 20348, 0},
		{"10.0.26100", "10.0.20348.9", tierCompatible, 20348, 9},
		{"10.0.26100", "10.0.22621", tierCompatible, 22621, 0},
		{"10.0.26100", "10.0.17763", tierOlder, 17763, 0},
		{"10.0.20348", "10.0.26100", tierOther, 26100, 0},
		{"10.0.26100", "6.3.26000", tierOlder, 26000, 0},
		{"10.0.26100", "11.0.20348", tierOther, 20348, 0},
		{"10.0.26100", "10.0", tierOther, 0, 0},
		{"10.0.26100", "10.0.x", tierOther, 0, 0},
		{"10.0", "10.0.17763.2", tierSameBuild, 17763, 2},
		{"10.0", "10.0", tierSameBuild, 0, 0},
		{"10.0", "10.01.1", tierOther, 1, 0},
		{"junk", "junk", tierSameBuild, 0, 0},
	}
	for _, tt := range tests {
		tier, build, rev := windowsRank(tt.host, tt.image)
		if tier != tt.tier || build != tt.build || rev != tt.rev {
			t.Errorf("windowsRank(%q, %q) = %d, %d, %d; want %d, %d, %d", tt.host, tt.image, tier, build, rev, tt.tier, tt.build, tt.rev)
		}
	}
}

func TestFallbacks(t *testing.T) {
	tests := []struct {
		spec, want string
	}{
		{"linux/amd64", "linux/amd64 linux/386"},
		{"linux/amd64/v2", "linux/amd64/v2 linux/amd64 linux/386"},
		{"linux/amd64/v4", "linux/amd64/v4 linux/amd64/v3 linux/amd64/v2 linux/amd64 linux/386"},
		{"linux/amd64/znver4", "linux/amd64/znver4 linux/386"},
		{"linux/386", "linux/386"},
		{"linux/arm/v5", "linux/arm/v5"},
		{"linux/arm/v8", "linux/arm/v8 linux/arm/v7 linux/arm/v6 linux/arm/v5"},
		{"linux/arm64", "linux/arm64 linux/arm/v8 linux/arm/v7 linux/arm/v6 linux/arm/v5"},
		{"linux/arm64/v8.2", "linux/arm64/v8.2 linux/arm64/v8.1 linux/arm64 linux/arm/v8 linux/arm/v7 linux/arm/v6 linux/arm/v5"},
		{"linux/arm64/v9", "linux/arm64/v9 linux/arm64/v8.5 linux/arm64/v8.4 linux/arm64/v8.3 linux/arm64/v8.2 linux/arm64/v8.1 linux/arm64 " +
			"linux/arm/v8 linux/arm/v7 linux/arm/v6 linux/arm/v5"},
		{"linux/arm64/v10", "linux/arm64/v10 linux/arm/v8 linux/arm/v7 linux/arm/v6 linux/arm/v5"},
		{"linux/arm64/neoverse", "linux/arm64/neoverse"},
		{"linux/s390x", "linux/s390x"},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range fallbacks(MustParse(tt.spec)) {
			got = append(got, Format(p))
		}
		if s := strings.Join(got, " "); s != tt.want {
			t.Errorf("fallbacks(%s) = %s, want %s", tt.spec, s, tt.want)
		}
	}
}
