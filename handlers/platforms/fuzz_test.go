package platforms_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers/platforms"
)

// FuzzParse checks that Parse either fails with ErrInvalidArgument or
// returns a normalized platform that FormatAll writes back losslessly and
// that every matcher built from it accepts.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"linux", "arm64", "linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/armhf", "linux/amd64/v3",
		"windows(10.0.17763)/amd64", "windows(10.0.20348+win32k)/amd64", "windows(a%2Bb+%25)/arm64",
		"macos/arm64", "linux/arm64/v9.2", "", "*", "linux//", "windows(", "a/b/c/d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := platforms.Parse(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Parse(%q) error = %v, want errdefs.ErrInvalidArgument", s, err)
			}
			return
		}
		if n := platforms.Normalize(p); !reflect.DeepEqual(n, p) {
			t.Fatalf("Parse(%q) = %#v is not normalized: %#v", s, p, n)
		}
		again, err := platforms.Parse(platforms.FormatAll(p))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("Parse(FormatAll(Parse(%q))) = %#v, %v; want %#v", s, again, err, p)
		}
		if _, err := platforms.Parse(platforms.Format(p)); err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) error = %v", s, err)
		}
		for _, m := range []platforms.Matcher{platforms.NewMatcher(p), platforms.Only(p), platforms.OnlyStrict(p)} {
			if !m.Match(p) {
				t.Fatalf("%v does not match its own platform %#v", m, p)
			}
		}
	})
}

// FuzzNormalize checks that Normalize is idempotent and that a matcher
// treats a platform and its normalized form alike.
func FuzzNormalize(f *testing.F) {
	f.Add("linux", "amd64", "v1", "")
	f.Add("Linux", "aarch64", "8", "")
	f.Add("linux", "armv7l", "", "")
	f.Add("windows", "x86_64", "", "10.0.17763.1")
	f.Add("MacOS", "arm64", "v9.05", "")
	f.Fuzz(func(t *testing.T, os, arch, variant, version string) {
		p := ocispec.Platform{OS: os, Architecture: arch, Variant: variant, OSVersion: version}
		n := platforms.Normalize(p)
		if again := platforms.Normalize(n); !reflect.DeepEqual(again, n) {
			t.Fatalf("Normalize is not idempotent: %#v → %#v → %#v", p, n, again)
		}
		if !platforms.NewMatcher(p).Match(n) || !platforms.NewMatcher(n).Match(p) {
			t.Fatalf("%#v and its normal form %#v do not match each other", p, n)
		}
		if !platforms.Only(p).Match(p) {
			t.Fatalf("Only(%#v) does not match itself", p)
		}
	})
}
