package auth

import (
	"net/http"
	"sort"
	"strings"
)

// Challenge is one authentication challenge of a WWW-Authenticate header
// (RFC 9110, section 11.6.1).
type Challenge struct {
	// Scheme is the auth scheme in lower case: "bearer", "basic", ...
	Scheme string
	// Parameters holds the auth-params with lower-case names and unquoted
	// values ("realm", "service", "scope", "error"). It is never nil.
	Parameters map[string]string
}

// Scheme names that Client answers.
const (
	SchemeBasic  = "basic"
	SchemeBearer = "bearer"
)

// ParseChallenges parses every WWW-Authenticate field of h. A field may hold
// several challenges separated by commas ("Bearer realm=\"a\", Basic
// realm=\"b\""). Schemes and parameter names are case-insensitive and
// returned in lower case; values may be tokens or quoted strings with
// backslash escapes and commas. Token68 credentials and malformed pieces are
// skipped; the first of repeated parameters wins. A nil header gives nil.
func ParseChallenges(h http.Header) []Challenge {
	var out []Challenge
	for _, v := range h.Values("WWW-Authenticate") {
		out = parseChallengeList(v, out)
	}
	return out
}

// String formats c as a WWW-Authenticate challenge that ParseChallenges
// reads back as c: the scheme, then the parameters sorted by name, each as
// a quoted string.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	keys := make([]string, 0, len(c.Parameters))
	for k := range c.Parameters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(`="`)
		for _, r := range []byte(c.Parameters[k]) {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(r)
		}
		b.WriteByte('"')
	}
	return b.String()
}

// parseChallengeList appends the challenges of one header field to out.
func parseChallengeList(s string, out []Challenge) []Challenge {
	cur := -1 // index in out of the challenge whose parameters we read
	i := 0
	for {
		i = skipSpaceAndCommas(s, i)
		if i >= len(s) {
			return out
		}
		tok, j := readToken(s, i)
		if tok == "" {
			// Not a token: skip this list element.
			i = skipElement(s, i)
			continue
		}
		k := skipSpace(s, j)
		if k < len(s) && s[k] == '=' {
			// An auth-param (or a token68, which we read as one and drop).
			value, next, ok := readValue(s, skipSpace(s, k+1))
			i = next
			if !ok {
				i = skipElement(s, i)
				continue
			}
			if cur >= 0 {
				name := strings.ToLower(tok)
				if _, dup := out[cur].Parameters[name]; !dup {
					out[cur].Parameters[name] = value
				}
			}
			continue
		}
		out = append(out, Challenge{Scheme: strings.ToLower(tok), Parameters: map[string]string{}})
		cur = len(out) - 1
		i = j
	}
}

// readValue reads a token or a quoted string at s[i:] and returns the value,
// the index after it and whether it was followed by the end of the element.
func readValue(s string, i int) (value string, next int, ok bool) {
	if i < len(s) && s[i] == '"' {
		var b strings.Builder
		i++
		for i < len(s) {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s):
				b.WriteByte(s[i+1])
				i += 2
				continue
			case c == '\\':
				i++
				continue
			case c == '"':
				i++
				return b.String(), i, atElementEnd(s, i)
			}
			b.WriteByte(c)
			i++
		}
		// An unterminated quoted string runs to the end of the field.
		return b.String(), i, true
	}
	tok, j := readToken(s, i)
	// A token68 ends in '=' padding: read it as an empty value and drop it.
	if j < len(s) && s[j] == '=' {
		return "", j, false
	}
	return tok, j, atElementEnd(s, j)
}

// atElementEnd reports whether only spaces separate s[i:] from a comma, the
// end of s, or the start of the next token (a missing comma is forgiven).
func atElementEnd(s string, i int) bool {
	i = skipSpace(s, i)
	return i >= len(s) || s[i] == ',' || isTokenChar(s[i])
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func skipSpaceAndCommas(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
		i++
	}
	return i
}

// skipElement skips to the next comma outside a quoted string.
func skipElement(s string, i int) int {
	inQuote := false
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ',':
			return i
		}
	}
	return i
}

func readToken(s string, i int) (string, int) {
	j := i
	for j < len(s) && isTokenChar(s[j]) {
		j++
	}
	return s[i:j], j
}

// isTokenChar reports whether c is a tchar of RFC 9110.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
