package platforms_test

import (
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/cpu"

	"github.com/pullkit/pullkit/handlers/platforms"
)

func TestDefaultSpec(t *testing.T) {
	spec := platforms.DefaultSpec()
	t.Logf("host platform: %s", platforms.DefaultString())
	if spec.OS != runtime.GOOS || spec.Architecture != runtime.GOARCH {
		t.Fatalf("DefaultSpec() = %s, want %s/%s", platforms.FormatAll(spec), runtime.GOOS, runtime.GOARCH)
	}
	if n := platforms.Normalize(spec); !reflect.DeepEqual(n, spec) {
		t.Fatalf("DefaultSpec() = %#v is not normalized (%#v)", spec, n)
	}
	switch runtime.GOARCH {
	case "arm":
		if !strings.HasPrefix(spec.Variant, "v") {
			t.Fatalf("arm host variant = %q, want vN", spec.Variant)
		}
	case "amd64":
		switch spec.Variant {
		case "", "v2", "v3", "v4":
		default:
			t.Fatalf("amd64 host variant = %q, want \"\" (v1), v2, v3 or v4", spec.Variant)
		}
	case "arm64":
		if spec.Variant != "" {
			t.Fatalf("arm64 host variant = %q, want \"\" (v8)", spec.Variant)
		}
	}
	if runtime.GOOS != "windows" && (spec.OSVersion != "" || spec.OSFeatures != nil) {
		t.Fatalf("DefaultSpec() on %s has OS version %q and features %q, want none", runtime.GOOS, spec.OSVersion, spec.OSFeatures)
	}
	if runtime.GOOS == "windows" && strings.Count(spec.OSVersion, ".") != 2 {
		t.Fatalf("DefaultSpec().OSVersion = %q, want major.minor.build", spec.OSVersion)
	}

	// Callers get copies.
	spec.OSFeatures = append(spec.OSFeatures, "mutated")
	if again := platforms.DefaultSpec(); slices.Contains(again.OSFeatures, "mutated") {
		t.Fatal("DefaultSpec() shares OSFeatures between calls")
	}
}

func TestDefaultStringRoundTrips(t *testing.T) {
	s := platforms.DefaultString()
	if s != platforms.FormatAll(platforms.DefaultSpec()) {
		t.Fatalf("DefaultString() = %q, want FormatAll(DefaultSpec()) = %q", s, platforms.FormatAll(platforms.DefaultSpec()))
	}
	p, err := platforms.Parse(s)
	if err != nil || !reflect.DeepEqual(p, platforms.DefaultSpec()) {
		t.Fatalf("Parse(DefaultString()) = %#v, %v; want %#v", p, err, platforms.DefaultSpec())
	}
}

func TestDefault(t *testing.T) {
	d := platforms.Default()
	spec := platforms.DefaultSpec()
	if !d.Match(spec) {
		t.Fatalf("Default() does not match DefaultSpec() %s", platforms.FormatAll(spec))
	}
	hostOS := runtime.GOOS
	switch runtime.GOARCH {
	case "amd64":
		// Every amd64 host runs the baseline and 386, and prefers its own level.
		for _, s := range []string{"amd64", "amd64/v1", "386"} {
			if p := platforms.MustParse(hostOS + "/" + s); !d.Match(p) {
				t.Errorf("Default() does not match %s on an amd64 host", platforms.Format(p))
			}
		}
		level := 1
		if spec.Variant != "" {
			level = int(spec.Variant[1] - '0')
		}
		above := ocispec.Platform{OS: hostOS, Architecture: "amd64", Variant: "v" + strconv.Itoa(level+1)}
		if d.Match(above) {
			t.Errorf("Default() on a v%d host matches %s", level, platforms.Format(above))
		}
		baseline := platforms.MustParse(hostOS + "/amd64")
		if level > 1 && !d.Less(spec, baseline) {
			t.Errorf("Default() does not prefer %s to %s", platforms.Format(spec), platforms.Format(baseline))
		}
		if !d.Less(baseline, platforms.MustParse(hostOS+"/386")) {
			t.Errorf("Default() does not prefer amd64 to 386")
		}
	case "arm64":
		for _, s := range []string{"arm64", "arm64/v8", "arm/v7"} {
			if p := platforms.MustParse(hostOS + "/" + s); !d.Match(p) {
				t.Errorf("Default() does not match %s on an arm64 host", platforms.Format(p))
			}
		}
	}
	other := ocispec.Platform{OS: "plan9", Architecture: "mips64", Variant: "nope"}
	if d.Match(other) {
		t.Errorf("Default() matches %s", platforms.Format(other))
	}
	if got, want := platforms.MustParse(hostOS).Architecture, runtime.GOARCH; got != want {
		t.Errorf("Parse(%q).Architecture = %q, want the host's %q", hostOS, got, want)
	}
}

// TestDefaultAMD64LevelAgreesWithCPUID cross-checks the detected level
// against the features golang.org/x/sys/cpu reads with CPUID, and against
// the GOAMD64 level the test binary was built for.
func TestDefaultAMD64LevelAgreesWithCPUID(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("not an amd64 host")
	}
	v := platforms.DefaultSpec().Variant
	level := 1
	if v != "" {
		level = int(v[1] - '0')
	}
	x := cpu.X86
	if level >= 2 && !(x.HasCX16 && x.HasPOPCNT && x.HasSSE3 && x.HasSSSE3 && x.HasSSE41 && x.HasSSE42) {
		t.Errorf("level v%d detected but CPUID lacks a v2 feature: %+v", level, x)
	}
	if level >= 3 && !(x.HasAVX && x.HasAVX2 && x.HasBMI1 && x.HasBMI2 && x.HasFMA && x.HasOSXSAVE) {
		t.Errorf("level v%d detected but CPUID lacks a v3 feature: %+v", level, x)
	}
	if level >= 4 && !(x.HasAVX512F && x.HasAVX512BW && x.HasAVX512CD && x.HasAVX512DQ && x.HasAVX512VL) {
		t.Errorf("level v%d detected but CPUID lacks a v4 feature: %+v", level, x)
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "GOAMD64" && len(s.Value) == 2 && int(s.Value[1]-'0') > level {
				t.Errorf("level v%d detected below the GOAMD64=%s the binary runs with", level, s.Value)
			}
		}
	}
}
