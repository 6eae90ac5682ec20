package auth

import (
	"net/url"
	"strings"
	"testing"
)

func TestHostOf(t *testing.T) {
	tests := []struct{ in, host, origin string }{
		{"https://Registry.Example/v2/", "registry.example", "https://registry.example"},
		{"https://registry.example:443/v2/", "registry.example", "https://registry.example"},
		{"http://registry.example:80/v2/", "registry.example", "http://registry.example"},
		{"http://registry.example:443/v2/", "registry.example:443", "http://registry.example:443"},
		{"https://localhost:5000/v2/", "localhost:5000", "https://localhost:5000"},
		{"http://[::1]:5000/v2/", "[::1]:5000", "http://[::1]:5000"},
		{"https://[::1]/v2/", "[::1]", "https://[::1]"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := hostOf(u); got != tt.host {
			t.Errorf("hostOf(%q) = %q, want %q", tt.in, got, tt.host)
		}
		if got := originOf(u); got != tt.origin {
			t.Errorf("originOf(%q) = %q, want %q", tt.in, got, tt.origin)
		}
	}
}

func TestScopeSet(t *testing.T) {
	s := scopeSet{}
	s.add("repository:b:push repository:a:pull", "repository:b:pull,push", "registry:catalog:*", "repository:odd")
	want := "registry:catalog:* repository:a:pull repository:b:pull,push repository:odd"
	if got := strings.Join(s.list(), " "); got != want {
		t.Fatalf("list() = %q, want %q", got, want)
	}
	sub := scopeSet{}
	sub.add("repository:b:pull")
	if !s.covers(sub) || !s.covers(scopeSet{}) {
		t.Fatal("covers() = false for a subset")
	}
	other := scopeSet{}
	other.add("repository:b:delete")
	if s.covers(other) {
		t.Fatal("covers() = true for a missing action")
	}
}
