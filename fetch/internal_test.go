package fetch

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-9/10", 0, 10, 10, true},
		{"bytes 5-9/*", 5, 10, -1, true},
		{" bytes 100-199/1000 ", 100, 200, 1000, true},
		{"bytes 9-5/10", 0, 0, 10, false},
		{"bytes 0-10/10", 0, 0, 10, false},
		{"bytes */10", 0, 0, 10, false},
		{"bytes -5/10", 0, 0, 10, false},
		{"items 0-9/10", 0, 0, -1, false},
		{"bytes 0-9", 0, 0, -1, false},
		{"bytes 0-9/-1", 0, 0, -1, false},
		{"", 0, 0, -1, false},
	}
	for _, tt := range tests {
		start, end, total, ok := parseContentRange(tt.in)
		if start != tt.start || end != tt.end || total != tt.total || ok != tt.ok {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v; want %d, %d, %d, %v",
				tt.in, start, end, total, ok, tt.start, tt.end, tt.total, tt.ok)
		}
	}
}

// FuzzParseContentRange checks that an accepted Content-Range is a
// non-empty range inside the total, and that it reads back the same when
// formatted.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 5-9/*", "bytes */10", "bytes 1-0/2", "bytes 0-99999999999999999999/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, total, ok := parseContentRange(s)
		if !ok {
			return
		}
		if start < 0 || end <= start || (total >= 0 && end > total) {
			t.Fatalf("parseContentRange(%q) = [%d, %d) of %d: not a range inside the total", s, start, end, total)
		}
		tot := "*"
		if total >= 0 {
			tot = fmt.Sprint(total)
		}
		again := fmt.Sprintf("bytes %d-%d/%s", start, end-1, tot)
		s2, e2, t2, ok2 := parseContentRange(again)
		if !ok2 || s2 != start || e2 != end || t2 != total {
			t.Fatalf("parseContentRange(%q) = %d, %d, %d, %v; want what %q gave", again, s2, e2, t2, ok2, s)
		}
	})
}

func TestBackoffBounds(t *testing.T) {
	r := New("h", "r", WithBackoff(100*time.Millisecond, time.Second))
	for attempt := 1; attempt <= 10; attempt++ {
		full := min(100*time.Millisecond<<(attempt-1), time.Second)
		for range 20 {
			if d := r.backoff(attempt); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
}

func TestOptionClamping(t *testing.T) {
	tests := []struct {
		name  string
		opt   Option
		check func(c config) bool
	}{
		{"negative retries", WithRetries(-3), func(c config) bool { return c.retries == 0 }},
		{"huge retries", WithRetries(1e6), func(c config) bool { return c.retries == maxRetries }},
		{"zero backoff", WithBackoff(0, 0), func(c config) bool { return c.backoff == DefaultBackoff && c.maxBackoff == DefaultBackoff }},
		{"max under base", WithBackoff(time.Second, time.Millisecond), func(c config) bool { return c.maxBackoff == time.Second }},
		{"zero retry-after cap", WithMaxRetryAfter(0), func(c config) bool { return c.maxRetryAfter == DefaultMaxRetryAfter }},
		{"zero stall", WithStallTimeout(-1), func(c config) bool { return c.stallTimeout == DefaultStallTimeout }},
		{"parallel defaults", WithParallel(0, 0), func(c config) bool {
			return c.chunkSize == DefaultChunkSize && c.parallelism == DefaultParallelism
		}},
		{"tiny chunks", WithParallel(1, 1000), func(c config) bool { return c.chunkSize == minChunkSize && c.parallelism == maxParallelism }},
		{"huge chunks", WithParallel(1<<40, 2), func(c config) bool { return c.chunkSize == maxChunkSize && c.parallelism == 2 }},
		{"zero chunk memory", WithChunkMemory(0), func(c config) bool { return c.chunkMemory == DefaultChunkMemory }},
		{"tiny chunk memory", WithChunkMemory(1), func(c config) bool { return c.chunkMemory == minChunkMemory }},
		{"huge chunk memory", WithChunkMemory(1 << 50), func(c config) bool { return c.chunkMemory == maxChunkMemory }},
		{"zero split rate", WithSplitBelow(0), func(c config) bool { return c.splitBelow == DefaultSplitBelow }},
		{"split always", WithSplitBelow(SplitAlways), func(c config) bool { return c.splitBelow == SplitAlways }},
		{"empty prefix", WithPathPrefix(""), func(c config) bool { return c.pathPrefix == "/v2" }},
		{"root prefix", WithPathPrefix("/"), func(c config) bool { return c.pathPrefix == "" }},
		{"bare prefix", WithPathPrefix("x/v2/"), func(c config) bool { return c.pathPrefix == "/x/v2" }},
		{"nil client", WithClient(nil), func(c config) bool { return c.client == http.DefaultClient }},
	}
	for _, tt := range tests {
		c := defaultConfig()
		tt.opt(&c)
		if !tt.check(c) {
			t.Errorf("%s: config = %+v", tt.name, c)
		}
	}
}

// TestChunkBufsBudget checks the budget on its own: get never hands out
// more than the budget, reuses what put gave back, and forgets its spare
// buffers once none is out.
func TestChunkBufsBudget(t *testing.T) {
	b := newChunkBufs(1024, 3)
	var got []*[]byte
	for range 5 {
		if p := b.get(); p != nil {
			if len(*p) != 1024 {
				t.Fatalf("buffer of %d bytes, want 1024", len(*p))
			}
			got = append(got, p)
		}
	}
	if out, peak := b.usage(); len(got) != 3 || out != 3 || peak != 3 {
		t.Fatalf("got %d buffers (out %d, peak %d), want 3: the budget", len(got), out, peak)
	}
	b.put(got[2])
	if p := b.get(); p != got[2] {
		t.Error("a buffer given back was not reused")
	}
	for _, p := range got {
		b.put(p)
	}
	if out, peak := b.usage(); out != 0 || peak != 3 || b.free != nil {
		t.Errorf("after giving all back: out %d, peak %d, %d spare; want 0, 3, none kept", out, peak, len(b.free))
	}
}

func TestForeignHostsAnchored(t *testing.T) {
	r := New("h", "r", WithForeignLayers(regexp.MustCompile(`mcr\.microsoft\.com`), regexp.MustCompile(`.*\.blob\.core\.windows\.net`)))
	for host, want := range map[string]bool{
		"mcr.microsoft.com":              true,
		"MCR.microsoft.com":              true,
		"mcr.microsoft.com.evil.example": false,
		"evilmcr.microsoft.com":          false,
		"x.blob.core.windows.net":        true,
		"registry.example":               false,
	} {
		if got := r.foreignAllowed(host); got != want {
			t.Errorf("foreignAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestOrigin(t *testing.T) {
	same := [][2]string{
		{"https://r.example/v2/", "https://R.example:443/x"},
		{"http://127.0.0.1:80/a", "http://127.0.0.1/b"},
	}
	differ := [][2]string{
		{"http://127.0.0.1:5000/", "http://127.0.0.1:5001/"},
		{"https://r.example/", "http://r.example/"},
		{"https://r.example/", "https://cdn.r.example/"},
	}
	for _, p := range same {
		a, _ := url.Parse(p[0])
		b, _ := url.Parse(p[1])
		if originOf(a) != originOf(b) {
			t.Errorf("%s and %s: different origins, want the same", p[0], p[1])
		}
	}
	for _, p := range differ {
		a, _ := url.Parse(p[0])
		b, _ := url.Parse(p[1])
		if originOf(a) == originOf(b) {
			t.Errorf("%s and %s: same origin, want different", p[0], p[1])
		}
	}
}
