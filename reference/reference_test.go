package reference_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	dref "github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"

	"github.com/pullkit/pullkit/reference"
)

var (
	d256 = digest.FromString("pullkit")
	d384 = digest.SHA384.FromString("pullkit")
	d512 = digest.SHA512.FromString("pullkit")
	// hex64 looks like an image ID.
	hex64 = d256.Encoded()
)

type validCase struct {
	in       string
	want     reference.Reference
	str      string // want String()
	familiar string // want Familiar()
}

func ref(registry, repository, tag string, d digest.Digest) reference.Reference {
	return reference.Reference{Registry: registry, Repository: repository, Tag: tag, Digest: d}
}

func validCases() []validCase {
	hub := func(repo, tag string, d digest.Digest) reference.Reference { return ref("docker.io", repo, tag, d) }
	return []validCase{
		// Docker Hub normalization.
		{"ubuntu", hub("library/ubuntu", "latest", ""), "docker.io/library/ubuntu:latest", "ubuntu:latest"},
		{"ubuntu:22.04", hub("library/ubuntu", "22.04", ""), "docker.io/library/ubuntu:22.04", "ubuntu:22.04"},
		{"library/ubuntu", hub("library/ubuntu", "latest", ""), "docker.io/library/ubuntu:latest", "ubuntu:latest"},
		{"docker.io/ubuntu", hub("library/ubuntu", "latest", ""), "docker.io/library/ubuntu:latest", "ubuntu:latest"},
		{"docker.io/library/ubuntu:latest", hub("library/ubuntu", "latest", ""), "docker.io/library/ubuntu:latest", "ubuntu:latest"},
		// The legacy index host is rewritten to docker.io, as distribution does.
		{"index.docker.io/ubuntu", hub("library/ubuntu", "latest", ""), "docker.io/library/ubuntu:latest", "ubuntu:latest"},
		{"index.docker.io/acme/app:1", hub("acme/app", "1", ""), "docker.io/acme/app:1", "acme/app:1"},
		// Other Docker Hub hosts are registries like any other: no rewrite, no library/.
		{"registry-1.docker.io/ubuntu", ref("registry-1.docker.io", "ubuntu", "latest", ""), "registry-1.docker.io/ubuntu:latest", "registry-1.docker.io/ubuntu:latest"},
		{"acme/app", hub("acme/app", "latest", ""), "docker.io/acme/app:latest", "acme/app:latest"},
		{"acme/team/app:v1", hub("acme/team/app", "v1", ""), "docker.io/acme/team/app:v1", "acme/team/app:v1"},
		{"library/foo/bar", hub("library/foo/bar", "latest", ""), "docker.io/library/foo/bar:latest", "library/foo/bar:latest"},
		{"docker.io", hub("library/docker.io", "latest", ""), "docker.io/library/docker.io:latest", "docker.io:latest"},

		// Other registries.
		{"ghcr.io/acme/app:1.2", ref("ghcr.io", "acme/app", "1.2", ""), "ghcr.io/acme/app:1.2", "ghcr.io/acme/app:1.2"},
		{"example.com/app", ref("example.com", "app", "latest", ""), "example.com/app:latest", "example.com/app:latest"},
		{"example.com:5000/a/b/c", ref("example.com:5000", "a/b/c", "latest", ""), "example.com:5000/a/b/c:latest", "example.com:5000/a/b/c:latest"},
		{"127.0.0.1:5000/app", ref("127.0.0.1:5000", "app", "latest", ""), "127.0.0.1:5000/app:latest", "127.0.0.1:5000/app:latest"},
		{"foo.bar/app", ref("foo.bar", "app", "latest", ""), "foo.bar/app:latest", "foo.bar/app:latest"},
		{"localhost/app", ref("localhost", "app", "latest", ""), "localhost/app:latest", "localhost/app:latest"},
		{"localhost:5000/app:dev", ref("localhost:5000", "app", "dev", ""), "localhost:5000/app:dev", "localhost:5000/app:dev"},
		{"[::1]:5000/app", ref("[::1]:5000", "app", "latest", ""), "[::1]:5000/app:latest", "[::1]:5000/app:latest"},
		{"[::1]/app", ref("[::1]", "app", "latest", ""), "[::1]/app:latest", "[::1]/app:latest"},
		{"[2001:db8::1]:443/team/app:v2", ref("[2001:db8::1]:443", "team/app", "v2", ""), "[2001:db8::1]:443/team/app:v2", "[2001:db8::1]:443/team/app:v2"},
		// Hosts may have uppercase letters and are kept as written; an
		// uppercase first element is taken as a host.
		{"Example.COM/app", ref("Example.COM", "app", "latest", ""), "Example.COM/app:latest", "Example.COM/app:latest"},
		{"FOO/bar", ref("FOO", "bar", "latest", ""), "FOO/bar:latest", "FOO/bar:latest"},

		// A single element is never a host, as in docker.
		{"localhost", hub("library/localhost", "latest", ""), "docker.io/library/localhost:latest", "localhost:latest"},
		{"localhost:5000", hub("library/localhost", "5000", ""), "docker.io/library/localhost:5000", "localhost:5000"},
		{"a.b", hub("library/a.b", "latest", ""), "docker.io/library/a.b:latest", "a.b:latest"},
		{"sha256:" + hex64, hub("library/sha256", hex64, ""), "docker.io/library/sha256:" + hex64, "sha256:" + hex64},

		// Docker Hub names whose short form would name another registry keep
		// the registry in Familiar (distribution's FamiliarString drops it).
		{"docker.io/foo.bar/app", hub("foo.bar/app", "latest", ""), "docker.io/foo.bar/app:latest", "docker.io/foo.bar/app:latest"},
		{"docker.io/localhost/app", hub("localhost/app", "latest", ""), "docker.io/localhost/app:latest", "docker.io/localhost/app:latest"},
		{"docker.io/index.docker.io/app", hub("index.docker.io/app", "latest", ""), "docker.io/index.docker.io/app:latest", "docker.io/index.docker.io/app:latest"},

		// Separators in paths and tags.
		{"my_repo/app.name-x:tag", hub("my_repo/app.name-x", "tag", ""), "docker.io/my_repo/app.name-x:tag", "my_repo/app.name-x:tag"},
		{"a__b/c--d", hub("a__b/c--d", "latest", ""), "docker.io/a__b/c--d:latest", "a__b/c--d:latest"},
		{"0/0", hub("0/0", "latest", ""), "docker.io/0/0:latest", "0/0:latest"},
		{"app:Latest_1.0-rc", hub("library/app", "Latest_1.0-rc", ""), "docker.io/library/app:Latest_1.0-rc", "app:Latest_1.0-rc"},
		{"app:_", hub("library/app", "_", ""), "docker.io/library/app:_", "app:_"},
		{"app:" + strings.Repeat("t", 128), hub("library/app", strings.Repeat("t", 128), ""), "docker.io/library/app:" + strings.Repeat("t", 128), "app:" + strings.Repeat("t", 128)},
		{"example.com/" + strings.Repeat("a", 255), ref("example.com", strings.Repeat("a", 255), "latest", ""), "example.com/" + strings.Repeat("a", 255) + ":latest", "example.com/" + strings.Repeat("a", 255) + ":latest"},
		{strings.Repeat("a", 247), hub("library/"+strings.Repeat("a", 247), "latest", ""), "docker.io/library/" + strings.Repeat("a", 247) + ":latest", strings.Repeat("a", 247) + ":latest"},
		// A 64-hex name with a tag is a name, not an image ID.
		{hex64 + ":v1", hub("library/"+hex64, "v1", ""), "docker.io/library/" + hex64 + ":v1", hex64 + ":v1"},

		// Digests: no default tag; both kept when both are given.
		{"ubuntu@" + d256.String(), hub("library/ubuntu", "", d256), "docker.io/library/ubuntu@" + d256.String(), "ubuntu@" + d256.String()},
		{"ubuntu:22.04@" + d256.String(), hub("library/ubuntu", "22.04", d256), "docker.io/library/ubuntu:22.04@" + d256.String(), "ubuntu:22.04@" + d256.String()},
		{"acme/app@" + d512.String(), hub("acme/app", "", d512), "docker.io/acme/app@" + d512.String(), "acme/app@" + d512.String()},
		{"ghcr.io/acme/app@" + d384.String(), ref("ghcr.io", "acme/app", "", d384), "ghcr.io/acme/app@" + d384.String(), "ghcr.io/acme/app@" + d384.String()},
		{"ghcr.io/acme/app:1.2@" + d512.String(), ref("ghcr.io", "acme/app", "1.2", d512), "ghcr.io/acme/app:1.2@" + d512.String(), "ghcr.io/acme/app:1.2@" + d512.String()},
		{"localhost:5000/app:1@" + d256.String(), ref("localhost:5000", "app", "1", d256), "localhost:5000/app:1@" + d256.String(), "localhost:5000/app:1@" + d256.String()},
		{"[::1]:5000/app@" + d256.String(), ref("[::1]:5000", "app", "", d256), "[::1]:5000/app@" + d256.String(), "[::1]:5000/app@" + d256.String()},
		{hex64 + "@" + d256.String(), hub("library/"+hex64, "", d256), "docker.io/library/" + hex64 + "@" + d256.String(), hex64 + "@" + d256.String()},
	}
}

type invalidCase struct {
	name, in string
	why      string // a part of the error message that says what is wrong
}

func invalidCases() []invalidCase {
	return []invalidCase{
		{"empty", "", "reference is empty"},
		{"uppercase", "Foo", "repository name must be lowercase"},
		{"uppercase with tag", "UBUNTU:latest", "repository name must be lowercase"},
		{"uppercase repository after host", "example.com/App", "repository name must be lowercase"},
		{"uppercase repository after uppercase host", "Foo/Bar", "repository name must be lowercase"},
		{"uppercase library", "docker.io/Library/ubuntu", "repository name must be lowercase"},
		{"trailing colon", "ubuntu:", `tag after ":" is empty`},
		{"trailing colon after host", "localhost:5000/app:", `tag after ":" is empty`},
		{"trailing at", "ubuntu@", `digest after "@" is empty`},
		{"short digest", "ubuntu@sha256:abc", "invalid checksum digest length"},
		{"uppercase digest hex", "ubuntu@sha256:" + strings.ToUpper(hex64), "invalid checksum digest format"},
		{"non-hex digest", "ubuntu@sha256:" + hex64[:63] + "g", "invalid checksum digest format"},
		{"unsupported algorithm", "ubuntu@md5:" + hex64[:32], "unsupported digest algorithm"},
		{"sha512 too short", "ubuntu@sha512:" + hex64, "invalid checksum digest length"},
		{"digest without algorithm", "ubuntu@" + hex64, "invalid checksum digest format"},
		{"two digests", "ubuntu@" + d256.String() + "@" + d256.String(), `more than one "@"`},
		{"digest then tag", "ubuntu@" + d256.String() + ":v1", "invalid checksum digest"},
		{"tag only", ":latest", "repository name is empty"},
		{"digest only", "@" + d256.String(), "repository name is empty"},
		{"image ID", hex64, "image ID"},
		{"tag starts with dash", "ubuntu:-tag", "tag \"-tag\" is invalid"},
		{"tag starts with dot", "ubuntu:.tag", "tag \".tag\" is invalid"},
		{"tag too long", "ubuntu:" + strings.Repeat("t", 129), "is invalid: a tag is 1 to 128 characters"},
		{"tag with space", "ubuntu:tag with space", "is invalid"},
		{"two tags", "ubuntu:latest:extra", `path element "ubuntu:latest" is invalid`},
		{"leading space", " ubuntu", `path element " ubuntu" is invalid`},
		{"double slash", "a//b", "empty path element"},
		{"trailing slash", "a/b/", "empty path element"},
		{"leading slash", "/a", "empty path element"},
		{"host without path", "localhost:5000/", "empty path element"},
		{"leading dash", "-a", `path element "-a" is invalid`},
		{"trailing dash", "a-", `path element "a-" is invalid`},
		{"double dot", "a..b", `path element "a..b" is invalid`},
		{"triple underscore", "a___b", `path element "a___b" is invalid`},
		{"non-ascii", "ubüntu", "is invalid"},
		{"empty port", "example.com:/app", `registry host "example.com:" is invalid`},
		{"non-numeric port", "example.com:http/app", `registry host "example.com:http" is invalid`},
		{"ipv6 without brackets", "::1/app", `registry host "::1" is invalid`},
		{"unclosed ipv6", "[::1/app", `registry host "[::1" is invalid`},
		{"underscore in host", "exa_mple.com/app", `registry host "exa_mple.com" is invalid`},
		// distribution reads these as a path with no registry; Parse refuses them.
		{"underscore in host, valid as path", "a_b.c/app:1", `registry host "a_b.c" is invalid`},
		{"host starts with dash", "-example.com/app", `registry host "-example.com" is invalid`},
		{"repository too long", "example.com/" + strings.Repeat("a", 256), "is 256 characters, more than 255"},
		// library/ counts: 248 characters become 256.
		{"official name too long", strings.Repeat("a", 248), "is 256 characters, more than 255"},
	}
}

func TestParse(t *testing.T) {
	for _, tt := range validCases() {
		t.Run(tt.in, func(t *testing.T) {
			got, err := reference.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q) error = %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			if s := got.Familiar(); s != tt.familiar {
				t.Errorf("Familiar() = %q, want %q", s, tt.familiar)
			}
			for _, form := range []string{got.String(), got.Familiar()} {
				if again, err := reference.Parse(form); err != nil || again != got {
					t.Errorf("Parse(%q) = %#v, %v; want %#v", form, again, err, got)
				}
			}
		})
	}
	for _, tt := range invalidCases() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := reference.Parse(tt.in)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Parse(%q) error = %v, want errdefs.ErrInvalidArgument", tt.in, err)
			}
			if got != (reference.Reference{}) {
				t.Errorf("Parse(%q) = %#v on error, want the zero Reference", tt.in, got)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "parse reference ") || !strings.Contains(msg, tt.why) {
				t.Errorf("Parse(%q) error = %q, want it to start with \"parse reference \" and say %q", tt.in, msg, tt.why)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	_, err := reference.Parse("Foo")
	const want = `parse reference "Foo": repository name must be lowercase: invalid argument`
	if err == nil || err.Error() != want {
		t.Fatalf("Parse(%q) error = %v, want %s", "Foo", err, want)
	}
}

// TestParseAgreesWithDistribution checks the normalization against
// distribution's ParseNormalizedNamed + TagNameOnly, which is what docker and
// containerd (minus its tag-dropping ParseDockerRef) do.
func TestParseAgreesWithDistribution(t *testing.T) {
	for _, tt := range validCases() {
		checkAgainstDistribution(t, tt.in)
	}
	for _, tt := range invalidCases() {
		checkAgainstDistribution(t, tt.in)
	}
}

func checkAgainstDistribution(t *testing.T, s string) {
	t.Helper()
	got, err := reference.Parse(s)
	named, derr := dref.ParseNormalizedNamed(s)
	if derr == nil && dref.Domain(named) == "" {
		// distribution reads an invalid host such as "exa_mple.com" as a
		// path element and returns no domain; Parse refuses that.
		derr = errors.New("no domain")
	}
	if (err == nil) != (derr == nil) {
		t.Fatalf("Parse(%q) error = %v, distribution error = %v", s, err, derr)
	}
	if err != nil {
		return
	}
	if want := dref.TagNameOnly(named).String(); got.String() != want {
		t.Fatalf("Parse(%q).String() = %q, distribution says %q", s, got.String(), want)
	}
}

func TestReferenceAccessors(t *testing.T) {
	tests := []struct {
		in         string
		name, obj  string
		wantDigest bool
	}{
		{"ubuntu", "docker.io/library/ubuntu", "latest", false},
		{"ghcr.io/acme/app:1.2", "ghcr.io/acme/app", "1.2", false},
		{"acme/app@" + d256.String(), "docker.io/acme/app", d256.String(), true},
		// The digest, not the tag, is what a registry is asked for.
		{"localhost:5000/app:1.2@" + d512.String(), "localhost:5000/app", d512.String(), true},
	}
	for _, tt := range tests {
		r, err := reference.Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q) error = %v", tt.in, err)
		}
		if got := r.Name(); got != tt.name {
			t.Errorf("Parse(%q).Name() = %q, want %q", tt.in, got, tt.name)
		}
		if got := r.Object(); got != tt.obj {
			t.Errorf("Parse(%q).Object() = %q, want %q", tt.in, got, tt.obj)
		}
	}
}

func TestZeroAndHandBuilt(t *testing.T) {
	var zero reference.Reference
	if zero.String() != "" || zero.Name() != "" || zero.Familiar() != "" || zero.Object() != "" {
		t.Errorf("zero Reference: String %q, Name %q, Familiar %q, Object %q; want all empty",
			zero.String(), zero.Name(), zero.Familiar(), zero.Object())
	}
	tests := []struct {
		r             reference.Reference
		str, familiar string
	}{
		// No registry: the repository alone.
		{ref("", "app", "1", ""), "app:1", "app:1"},
		// Not produced by Parse: "docker.io/app" would read back as
		// library/app, so Familiar keeps the registry.
		{ref("docker.io", "app", "1", ""), "docker.io/app:1", "docker.io/app:1"},
		// A bare 64-hex name would be refused as an image ID.
		{ref("docker.io", "library/"+hex64, "", ""), "docker.io/library/" + hex64, "docker.io/library/" + hex64},
		{ref("docker.io", "library/app", "", ""), "docker.io/library/app", "app"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.str {
			t.Errorf("%#v.String() = %q, want %q", tt.r, got, tt.str)
		}
		if got := tt.r.Familiar(); got != tt.familiar {
			t.Errorf("%#v.Familiar() = %q, want %q", tt.r, got, tt.familiar)
		}
	}
}

func TestWithTag(t *testing.T) {
	pinned, err := reference.Parse("ghcr.io/acme/app:1.2@" + d256.String())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tag     string
		want    reference.Reference
		wantErr error
	}{
		{"1.3", ref("ghcr.io", "acme/app", "1.3", ""), nil},
		{"Latest_2-rc.1", ref("ghcr.io", "acme/app", "Latest_2-rc.1", ""), nil},
		{"", reference.Reference{}, errdefs.ErrInvalidArgument},
		{"-x", reference.Reference{}, errdefs.ErrInvalidArgument},
		{"a b", reference.Reference{}, errdefs.ErrInvalidArgument},
		{strings.Repeat("t", 129), reference.Reference{}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		got, err := pinned.WithTag(tt.tag)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("WithTag(%q) error = %v, want %v", tt.tag, err, tt.wantErr)
		}
		if got != tt.want {
			t.Errorf("WithTag(%q) = %#v, want %#v", tt.tag, got, tt.want)
		}
	}
	if pinned.Digest != d256 || pinned.Tag != "1.2" {
		t.Errorf("WithTag changed its receiver: %#v", pinned)
	}
}

func TestWithDigest(t *testing.T) {
	tagged, err := reference.Parse("ghcr.io/acme/app:1.2")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		d       digest.Digest
		want    reference.Reference
		wantErr []error
	}{
		{d256, ref("ghcr.io", "acme/app", "1.2", d256), nil},
		{d512, ref("ghcr.io", "acme/app", "1.2", d512), nil},
		{"", reference.Reference{}, []error{errdefs.ErrInvalidArgument, digest.ErrDigestInvalidFormat}},
		{"sha256:abc", reference.Reference{}, []error{errdefs.ErrInvalidArgument, digest.ErrDigestInvalidLength}},
		{digest.Digest("md5:" + hex64[:32]), reference.Reference{}, []error{errdefs.ErrInvalidArgument, digest.ErrDigestUnsupported}},
	}
	for _, tt := range tests {
		got, err := tagged.WithDigest(tt.d)
		if tt.wantErr == nil && err != nil {
			t.Errorf("WithDigest(%q) error = %v", tt.d, err)
		}
		for _, want := range tt.wantErr {
			if !errors.Is(err, want) {
				t.Errorf("WithDigest(%q) error = %v, want %v", tt.d, err, want)
			}
		}
		if got != tt.want {
			t.Errorf("WithDigest(%q) = %#v, want %#v", tt.d, got, tt.want)
		}
		if err == nil && got.Object() != tt.d.String() {
			t.Errorf("WithDigest(%q).Object() = %q, want the digest", tt.d, got.Object())
		}
	}
}

// FuzzParse checks, for any input, that Parse either fails with
// errdefs.ErrInvalidArgument or returns a complete Reference that both its
// String and Familiar forms parse back to, and that it agrees with
// distribution/reference's docker normalization.
func FuzzParse(f *testing.F) {
	for _, tt := range validCases() {
		f.Add(tt.in)
	}
	for _, tt := range invalidCases() {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := reference.Parse(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Parse(%q) error = %v, want errdefs.ErrInvalidArgument", s, err)
			}
			if r != (reference.Reference{}) {
				t.Fatalf("Parse(%q) = %#v with error, want the zero Reference", s, r)
			}
		} else {
			if r.Registry == "" || r.Repository == "" || r.Object() == "" {
				t.Fatalf("Parse(%q) = %#v, want registry, repository and a tag or digest", s, r)
			}
			for _, form := range []string{r.String(), r.Familiar()} {
				again, err := reference.Parse(form)
				if err != nil {
					t.Fatalf("Parse(%q) = %#v, but Parse(%q) error = %v", s, r, form, err)
				}
				if again != r {
					t.Fatalf("Parse(%q) = %#v, but Parse(%q) = %#v", s, r, form, again)
				}
			}
		}
		checkAgainstDistribution(t, s)
	})
}
