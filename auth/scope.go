package auth

import (
	"context"
	"sort"
	"strings"
)

// Registry actions for [RepositoryScope].
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
)

// RepositoryScope returns the token scope for actions on a repository, as
// the distribution token protocol spells it: "repository:<repo>:<actions>".
// repo is the path inside the registry ("library/alpine"), without the
// host. No actions means "pull".
func RepositoryScope(repo string, actions ...string) string {
	if len(actions) == 0 {
		actions = []string{ActionPull}
	}
	return "repository:" + repo + ":" + strings.Join(actions, ",")
}

type scopesKey struct{}

// WithScopes returns a context that asks a [Client] for tokens that also
// cover scopes (see [RepositoryScope]) on every request made with it. Use
// it on a request's context (http.NewRequestWithContext) when a registry's
// challenge may not name the scope, so that the first token fetched fits
// the request, and so that later requests are pre-authorized. Scopes add up
// over nested calls; empty strings are ignored.
func WithScopes(ctx context.Context, scopes ...string) context.Context {
	prev := ScopesFromContext(ctx)
	merged := make([]string, 0, len(prev)+len(scopes))
	merged = append(merged, prev...)
	for _, s := range scopes {
		if s = strings.TrimSpace(s); s != "" {
			merged = append(merged, s)
		}
	}
	return context.WithValue(ctx, scopesKey{}, merged)
}

// ScopesFromContext returns the scopes that [WithScopes] put in ctx, or nil.
func ScopesFromContext(ctx context.Context) []string {
	s, _ := ctx.Value(scopesKey{}).([]string)
	return s
}

// scopeSet is a normalized set of scopes: resource ("type:name") → actions.
type scopeSet map[string]map[string]bool

// add adds space-separated scope strings to set. A scope without an
// action part is kept as a resource with no actions.
func (set scopeSet) add(scopes ...string) {
	for _, field := range scopes {
		for _, s := range strings.Fields(field) {
			resource, actions := s, ""
			if i := strings.LastIndexByte(s, ':'); i > 0 && strings.IndexByte(s[:i], ':') >= 0 {
				resource, actions = s[:i], s[i+1:]
			}
			m := set[resource]
			if m == nil {
				m = map[string]bool{}
				set[resource] = m
			}
			for _, a := range strings.Split(actions, ",") {
				if a = strings.TrimSpace(a); a != "" {
					m[a] = true
				}
			}
		}
	}
}

// covers reports whether set grants every action of other.
func (set scopeSet) covers(other scopeSet) bool {
	for resource, actions := range other {
		have, ok := set[resource]
		if !ok {
			return false
		}
		for a := range actions {
			if !have[a] {
				return false
			}
		}
	}
	return true
}

// list returns the scopes sorted, with sorted actions: the canonical form
// used in token requests and cache keys.
func (set scopeSet) list() []string {
	out := make([]string, 0, len(set))
	for resource, actions := range set {
		if len(actions) == 0 {
			out = append(out, resource)
			continue
		}
		as := make([]string, 0, len(actions))
		for a := range actions {
			as = append(as, a)
		}
		sort.Strings(as)
		out = append(out, resource+":"+strings.Join(as, ","))
	}
	sort.Strings(out)
	return out
}
