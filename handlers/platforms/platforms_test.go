package platforms_test

import (
	"errors"
	"reflect"
	"runtime"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers/platforms"
)

func plat(os, arch, variant string) ocispec.Platform {
	return ocispec.Platform{OS: os, Architecture: arch, Variant: variant}
}

func win(version string, features ...string) ocispec.Platform {
	return ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: version, OSFeatures: features}
}

func TestParse(t *testing.T) {
	host := platforms.DefaultSpec()
	hostArmVariant := ""
	if host.Architecture == "arm" {
		hostArmVariant = host.Variant
	}
	withVersion := func(p ocispec.Platform, v string, f ...string) ocispec.Platform {
		p.OSVersion, p.OSFeatures = v, f
		return p
	}
	tests := []struct {
		in   string
		want ocispec.Platform
	}{
		// os/arch
		{"linux/amd64", plat("linux", "amd64", "")},
		{"Linux/AMD64", plat("linux", "amd64", "")},
		{"linux/x86_64", plat("linux", "amd64", "")},
		{"linux/x86-64", plat("linux", "amd64", "")},
		{"linux/x64", plat("linux", "amd64", "")},
		{"linux/i386", plat("linux", "386", "")},
		{"linux/i686", plat("linux", "386", "")},
		{"linux/386", plat("linux", "386", "")},
		{"linux/aarch64", plat("linux", "arm64", "")},
		{"linux/arm64", plat("linux", "arm64", "")},
		{"linux/arm", plat("linux", "arm", "v7")},
		{"linux/armhf", plat("linux", "arm", "v7")},
		{"linux/armel", plat("linux", "arm", "v6")},
		{"linux/armv7l", plat("linux", "arm", "v7")},
		{"linux/armv6l", plat("linux", "arm", "v6")},
		{"linux/armv5tel", plat("linux", "arm", "v5")},
		{"linux/armv8l", plat("linux", "arm", "v8")},
		{"linux/ppc64le", plat("linux", "ppc64le", "")},
		{"linux/ppc64el", plat("linux", "ppc64le", "")},
		{"linux/s390x", plat("linux", "s390x", "")},
		{"linux/riscv64", plat("linux", "riscv64", "")},
		{"linux/loongarch64", plat("linux", "loong64", "")},
		{"linux/mips64le", plat("linux", "mips64le", "")},
		{"macos/arm64", plat("darwin", "arm64", "")},
		{"darwin/amd64", plat("darwin", "amd64", "")},
		{"freebsd/amd64", plat("freebsd", "amd64", "")},
		{"wasip1/wasm", plat("wasip1", "wasm", "")},
		{"windows/amd64", plat("windows", "amd64", "")},
		{"someos/somearch", plat("someos", "somearch", "")},
		// os/arch/variant
		{"linux/amd64/v1", plat("linux", "amd64", "")},
		{"linux/amd64/v2", plat("linux", "amd64", "v2")},
		{"linux/amd64/3", plat("linux", "amd64", "v3")},
		{"linux/x86_64/V4", plat("linux", "amd64", "v4")},
		{"linux/arm64/v8", plat("linux", "arm64", "")},
		{"linux/arm64/8", plat("linux", "arm64", "")},
		{"linux/aarch64/v8.0", plat("linux", "arm64", "")},
		{"linux/arm64/v8.2", plat("linux", "arm64", "v8.2")},
		{"linux/arm64/8.2", plat("linux", "arm64", "v8.2")},
		{"linux/arm64/9", plat("linux", "arm64", "v9")},
		{"linux/arm64/v9.0", plat("linux", "arm64", "v9")},
		{"linux/arm/v7", plat("linux", "arm", "v7")},
		{"linux/arm/7", plat("linux", "arm", "v7")},
		{"linux/arm/v6", plat("linux", "arm", "v6")},
		{"linux/arm/5", plat("linux", "arm", "v5")},
		{"linux/arm/v8", plat("linux", "arm", "v8")},
		{"linux/armhf/v6", plat("linux", "arm", "v7")},
		{"linux/ppc64le/power9", plat("linux", "ppc64le", "power9")},
		// OS options
		{"windows(10.0.17763)/amd64", win("10.0.17763")},
		{"windows(10.0.17763.5830)/amd64", win("10.0.17763.5830")},
		{"windows(10.0.20348+win32k)/amd64", win("10.0.20348", "win32k")},
		{"windows(+win32k)/amd64", win("", "win32k")},
		{"windows(+win32k+a+win32k)/amd64", win("", "a", "win32k")},
		{"windows()/amd64", win("")},
		{"windows(a%2Bb+c%2Fd)/amd64", win("a+b", "c/d")},
		{"Windows(10.0.17763)/ARM64", withVersion(plat("windows", "arm64", ""), "10.0.17763")},
		// one part: an OS takes the host's architecture, an architecture the host's OS
		{"linux", plat("linux", host.Architecture, hostArmVariant)},
		{"Linux", plat("linux", host.Architecture, hostArmVariant)},
		{"macos", plat("darwin", host.Architecture, hostArmVariant)},
		{"windows", plat("windows", host.Architecture, hostArmVariant)},
		{"windows(10.0.17763)", withVersion(plat("windows", host.Architecture, hostArmVariant), "10.0.17763")},
		{"arm64", plat(runtime.GOOS, "arm64", "")},
		{"aarch64", plat(runtime.GOOS, "arm64", "")},
		{"amd64", plat(runtime.GOOS, "amd64", "")},
		{"x86_64", plat(runtime.GOOS, "amd64", "")},
		{"i386", plat(runtime.GOOS, "386", "")},
		{"arm", plat(runtime.GOOS, "arm", "v7")},
		{"armhf", plat(runtime.GOOS, "arm", "v7")},
		{"armv6l", plat(runtime.GOOS, "arm", "v6")},
		{"riscv64", plat(runtime.GOOS, "riscv64", "")},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := platforms.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q) error = %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			// The result is canonical and survives a FormatAll round trip.
			if n := platforms.Normalize(got); !reflect.DeepEqual(n, got) {
				t.Errorf("Normalize(Parse(%q)) = %#v, want it unchanged", tt.in, n)
			}
			again, err := platforms.Parse(platforms.FormatAll(got))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("Parse(FormatAll(%#v)) = %#v, %v; want the same platform", got, again, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"*",
		"linux/*",
		"linux/amd64/v8/extra",
		"/amd64",
		"linux/",
		"linux//v7",
		"linux/amd64/",
		"notanos",
		"li nux/amd64",
		"linux/am d64",
		"linux/amd64\n",
		"linux/amd64/v1:",
		"lin.ux/amd64",
		"linux(1.0",
		"windows(1.0)x/amd64",
		"windows(1(2))/amd64",
		"windows(a++b)/amd64",
		"windows(+)/amd64",
		"windows(%zz)/amd64",
		"windows(1 0)/amd64",
		"(1.0)/amd64",
		"arm64(1.0)",
		"../amd64",
	} {
		t.Run(in, func(t *testing.T) {
			p, err := platforms.Parse(in)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Parse(%q) = %#v, %v; want an error that is errdefs.ErrInvalidArgument", in, p, err)
			}
			if !reflect.DeepEqual(p, ocispec.Platform{}) {
				t.Errorf("Parse(%q) returned %#v with its error, want the zero Platform", in, p)
			}
		})
	}
}

func TestMustParse(t *testing.T) {
	if got, want := platforms.MustParse("linux/arm/v6"), plat("linux", "arm", "v6"); !reflect.DeepEqual(got, want) {
		t.Fatalf("MustParse() = %#v, want %#v", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustParse(\"linux/*\") did not panic")
		}
	}()
	platforms.MustParse("linux/*")
}

func TestParseAll(t *testing.T) {
	got, err := platforms.ParseAll([]string{"linux/amd64", "linux/arm64/v8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []ocispec.Platform{plat("linux", "amd64", ""), plat("linux", "arm64", "")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseAll() = %#v, want %#v", got, want)
	}
	if got, err := platforms.ParseAll(nil); got != nil || err != nil {
		t.Fatalf("ParseAll(nil) = %#v, %v; want nil, nil", got, err)
	}
	if _, err := platforms.ParseAll([]string{"linux/amd64", "bogus"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("ParseAll(bogus) error = %v, want errdefs.ErrInvalidArgument", err)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		in               ocispec.Platform
		format, all      string
		reparseCanonical bool
	}{
		{ocispec.Platform{}, "unknown", "unknown", false},
		{ocispec.Platform{OS: "linux"}, "linux", "linux", false},
		{ocispec.Platform{Architecture: "amd64"}, "unknown/amd64", "unknown/amd64", false},
		{plat("linux", "amd64", ""), "linux/amd64", "linux/amd64", true},
		{plat("linux", "arm64", "v8"), "linux/arm64/v8", "linux/arm64/v8", true},
		{plat("linux", "arm", "v7"), "linux/arm/v7", "linux/arm/v7", true},
		{plat("linux", "amd64", "v3"), "linux/amd64/v3", "linux/amd64/v3", true},
		{plat("Linux", "x86_64", ""), "Linux/x86_64", "Linux/x86_64", true},
		{win("10.0.17763"), "windows/amd64", "windows(10.0.17763)/amd64", true},
		{win("10.0.20348", "win32k"), "windows/amd64", "windows(10.0.20348+win32k)/amd64", true},
		{win("", "win32k"), "windows/amd64", "windows(+win32k)/amd64", true},
		{win("", "z", "a"), "windows/amd64", "windows(+a+z)/amd64", true},
		{win("1+2", "a/b", "(x)"), "windows/amd64", "windows(1%2B2+%28x%29+a%2Fb)/amd64", true},
		{win("10.0 %"), "windows/amd64", "windows(10.0%20%25)/amd64", true},
		{ocispec.Platform{OSVersion: "1.2", Architecture: "amd64"}, "unknown/amd64", "unknown(1.2)/amd64", false},
	}
	for _, tt := range tests {
		t.Run(tt.all, func(t *testing.T) {
			if got := platforms.Format(tt.in); got != tt.format {
				t.Errorf("Format(%#v) = %q, want %q", tt.in, got, tt.format)
			}
			if got := platforms.FormatAll(tt.in); got != tt.all {
				t.Errorf("FormatAll(%#v) = %q, want %q", tt.in, got, tt.all)
			}
			if !tt.reparseCanonical {
				return
			}
			got, err := platforms.Parse(platforms.FormatAll(tt.in))
			if want := platforms.Normalize(tt.in); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Parse(FormatAll(%#v)) = %#v, %v; want %#v", tt.in, got, err, want)
			}
		})
	}
}

func TestFormatAllKeepsFeatureOrder(t *testing.T) {
	features := []string{"z", "a"}
	platforms.FormatAll(win("", features...))
	if features[0] != "z" || features[1] != "a" {
		t.Fatalf("FormatAll sorted the caller's slice: %q", features)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want ocispec.Platform
	}{
		{ocispec.Platform{}, ocispec.Platform{}},
		{plat("", "amd64", ""), plat("", "amd64", "")},
		{plat("LINUX", "AMD64", "V3"), plat("linux", "amd64", "v3")},
		{plat("MacOS", "arm64", ""), plat("darwin", "arm64", "")},
		{plat("linux", "x86_64", "v1"), plat("linux", "amd64", "")},
		{plat("linux", "amd64", "1"), plat("linux", "amd64", "")},
		{plat("linux", "amd64", "v5"), plat("linux", "amd64", "v5")},
		{plat("linux", "i586", "sse2"), plat("linux", "386", "")},
		{plat("linux", "386", "sse2"), plat("linux", "386", "sse2")},
		{plat("linux", "aarch64", "v8"), plat("linux", "arm64", "")},
		{plat("linux", "arm64", "v08"), plat("linux", "arm64", "")},
		{plat("linux", "arm64", "v8.00"), plat("linux", "arm64", "")},
		{plat("linux", "arm64", "v9.05"), plat("linux", "arm64", "v9.5")},
		{plat("linux", "arm64", "cortex-a72"), plat("linux", "arm64", "cortex-a72")},
		{plat("linux", "arm", ""), plat("linux", "arm", "v7")},
		{plat("linux", "arm", "8"), plat("linux", "arm", "v8")},
		{plat("linux", "armel", "v7"), plat("linux", "arm", "v6")},
		{plat("linux", "armv7hl", ""), plat("linux", "arm", "v7")},
		{plat("linux", "armv9", ""), plat("linux", "armv9", "")},
		{plat("linux", "armv7.1", ""), plat("linux", "armv7.1", "")},
		{
			ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.1", OSFeatures: []string{"b", "a", "b"}},
			ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.1", OSFeatures: []string{"a", "b"}},
		},
		{
			ocispec.Platform{OS: "windows", Architecture: "amd64", OSFeatures: []string{}},
			ocispec.Platform{OS: "windows", Architecture: "amd64"},
		},
	}
	for _, tt := range tests {
		t.Run(platforms.FormatAll(tt.in), func(t *testing.T) {
			got := platforms.Normalize(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Normalize(%#v) = %#v, want %#v", tt.in, got, tt.want)
			}
			if again := platforms.Normalize(got); !reflect.DeepEqual(again, got) {
				t.Fatalf("Normalize is not idempotent: %#v then %#v", got, again)
			}
		})
	}
}

func TestNormalizeDoesNotModifyInput(t *testing.T) {
	features := []string{"b", "a", "b"}
	platforms.Normalize(ocispec.Platform{OS: "windows", OSFeatures: features})
	if !reflect.DeepEqual(features, []string{"b", "a", "b"}) {
		t.Fatalf("Normalize changed the caller's OSFeatures to %q", features)
	}
}
