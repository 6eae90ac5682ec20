package auth_test

import (
	"maps"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/pullkit/pullkit/auth"
)

func TestParseChallenges(t *testing.T) {
	type c = auth.Challenge
	type p = map[string]string
	tests := []struct {
		name   string
		values []string
		want   []auth.Challenge
	}{
		{"none", nil, nil},
		{"empty", []string{""}, nil},
		{
			"docker hub",
			[]string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`},
			[]c{{"bearer", p{"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/alpine:pull"}}},
		},
		{
			"case-insensitive scheme and names",
			[]string{`BEARER Realm="r", SERVICE=svc`},
			[]c{{"bearer", p{"realm": "r", "service": "svc"}}},
		},
		{
			"two challenges in one field",
			[]string{`Bearer realm="https://a/token", service="a", Basic realm="b"`},
			[]c{{"bearer", p{"realm": "https://a/token", "service": "a"}}, {"basic", p{"realm": "b"}}},
		},
		{
			"two fields",
			[]string{`Basic realm="x"`, `Bearer realm="y"`},
			[]c{{"basic", p{"realm": "x"}}, {"bearer", p{"realm": "y"}}},
		},
		{
			"comma and escapes in a quoted value",
			[]string{`Bearer scope="repository:a:pull,push", realm="say \"hi\\\" \x"`},
			[]c{{"bearer", p{"scope": "repository:a:pull,push", "realm": `say "hi\" x`}}},
		},
		{
			"insufficient_scope",
			[]string{`Bearer realm="r",error="insufficient_scope",scope="repository:a:push"`},
			[]c{{"bearer", p{"realm": "r", "error": "insufficient_scope", "scope": "repository:a:push"}}},
		},
		{
			"spaces around equals and empty elements",
			[]string{` , Bearer  realm = "r" ,, service = s ,`},
			[]c{{"bearer", p{"realm": "r", "service": "s"}}},
		},
		{
			"scheme without parameters",
			[]string{`Negotiate, Basic`},
			[]c{{"negotiate", p{}}, {"basic", p{}}},
		},
		{
			"token68 skipped",
			[]string{`Negotiate abc123==, Basic realm="b"`},
			[]c{{"negotiate", p{}}, {"basic", p{"realm": "b"}}},
		},
		{
			"first of repeated parameters wins",
			[]string{`Bearer realm="one", realm="two"`},
			[]c{{"bearer", p{"realm": "one"}}},
		},
		{
			"unterminated quote runs to the end",
			[]string{`Bearer realm="abc, service=x`},
			[]c{{"bearer", p{"realm": "abc, service=x"}}},
		},
		{
			"garbage element skipped",
			[]string{`Bearer realm="r", @@@ "q,x" , service="s"`},
			[]c{{"bearer", p{"realm": "r", "service": "s"}}},
		},
		{
			"parameters before any scheme dropped",
			[]string{`realm="r", Basic`},
			[]c{{"basic", p{}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("WWW-Authenticate", v)
			}
			got := auth.ParseChallenges(h)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseChallenges(%q) = %v, want %v", tt.values, got, tt.want)
			}
		})
	}
}

func TestChallengeString(t *testing.T) {
	c := auth.Challenge{Scheme: "bearer", Parameters: map[string]string{"service": "s", "realm": `a "b" \c`}}
	const want = `bearer realm="a \"b\" \\c", service="s"`
	if got := c.String(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

// FuzzParseChallenges checks that every parsed challenge has a non-empty
// lower-case token scheme and lower-case token parameter names, and that
// formatting the result and parsing it again gives the same challenges.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`,
		`Basic realm="x", Bearer realm="y",error="insufficient_scope"`,
		`Bearer scope="a,b", realm="\"q\""`,
		`Negotiate abc==, Basic`,
		`Bearer realm="unterminated`,
		`realm=x`,
		`, ,Bearer=,=`,
		"Bearer realm=\"\x00\xff\"",
		`Basic realm="\`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := auth.ParseChallenges(http.Header{"Www-Authenticate": {s}})
		var parts []string
		for _, c := range got {
			checkToken(t, "scheme", c.Scheme)
			if c.Parameters == nil {
				t.Fatalf("challenge %q has nil Parameters", c.Scheme)
			}
			for k := range c.Parameters {
				checkToken(t, "parameter name", k)
			}
			parts = append(parts, c.String())
		}
		formatted := strings.Join(parts, ", ")
		again := auth.ParseChallenges(http.Header{"Www-Authenticate": {formatted}})
		if len(again) != len(got) {
			t.Fatalf("%q: round trip through %q gave %d challenges, want %d", s, formatted, len(again), len(got))
		}
		for i := range got {
			if again[i].Scheme != got[i].Scheme || !maps.Equal(again[i].Parameters, got[i].Parameters) {
				t.Fatalf("%q: round trip through %q gave %v, want %v", s, formatted, again[i], got[i])
			}
		}
	})
}

func checkToken(t *testing.T, what, s string) {
	t.Helper()
	if s == "" {
		t.Fatalf("empty %s", what)
	}
	if s != strings.ToLower(s) {
		t.Fatalf("%s %q is not lower case", what, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			t.Fatalf("%s %q has a non-token byte %q", what, s, c)
		}
	}
}
