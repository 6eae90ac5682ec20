package pullkit_test

import (
	"encoding/json"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/pullkit/pullkit"

// mayImport is DESIGN.md's package table: each package of ours and the
// packages of ours it may import directly. What those may import, it may
// import too. Everything under examples/ may import anything of ours.
// internal/httpx is not in DESIGN.md: it holds the HTTP details auth, fetch
// and resolve share (status classes, URL redaction, Retry-After), so that
// they cannot drift apart. internal/pagecache holds the page cache
// control content/local and unpack share (writeback, then drop).
// internal/compresstest holds the gzip and zstd helpers of tests.
// internal/chunks holds the chunked pipe between goroutines that importer
// and unpack both stream through. internal/inflate holds the gzip decoder
// that unpack, importer and handlers/schema1 share.
var mayImport = map[string][]string{
	"reference":                        nil,
	"internal/httpx":                   nil,
	"internal/pagecache":               nil,
	"internal/pagecache/pagecachetest": {"internal/pagecache"},
	"internal/compresstest":            nil,
	"internal/chunks":                  nil,
	"internal/inflate":                 nil,
	"content":                          nil,
	"content/local":                    {"content", "internal/pagecache"},
	"content/memory":                   {"content"},
	"content/contenttest":              {"content"},
	"handlers":                         {"content", "handlers/platforms"},
	"handlers/platforms":               nil,
	"handlers/schema1":                 {"handlers", "content", "fetch", "internal/inflate"},
	"auth":                             {"internal/httpx"},
	"fetch":                            {"content", "handlers", "auth", "internal/httpx"},
	"resolve":                          {"reference", "fetch", "auth", "internal/httpx"},
	"resolve/registrytest":             {"content", "handlers"},
	"unpack":                           {"content", "handlers", "internal/pagecache", "internal/chunks", "internal/inflate"},
	"importer":                         {"content", "handlers", "reference", "internal/chunks", "internal/inflate"},
	"":                                 {"reference", "content", "content/local", "content/memory", "handlers", "handlers/platforms", "handlers/schema1", "auth", "fetch", "resolve", "unpack", "importer"},
}

// allowed returns the packages pkg may import: its own list, closed over.
func allowed(pkg string) map[string]bool {
	seen := map[string]bool{}
	var visit func(string)
	visit = func(p string) {
		for _, q := range mayImport[p] {
			if !seen[q] {
				seen[q] = true
				visit(q)
			}
		}
	}
	visit(pkg)
	return seen
}

// TestImportDirection fails when a package imports one above it in DESIGN.md's
// table, or when a package is missing from the table. Test files are not
// checked: tests may use any package (a store's tests run contenttest).
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if rel == "examples" || strings.HasPrefix(rel, "examples/") {
			continue
		}
		if _, ok := mayImport[rel]; !ok {
			t.Errorf("package %q is not in DESIGN.md's table: add it to mayImport and to DESIGN.md", p.ImportPath)
			continue
		}
		ok := allowed(rel)
		for _, imp := range p.Imports {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if !ok[dep] {
				t.Errorf("%s imports %s, which DESIGN.md does not allow (it may import %v)", p.ImportPath, imp, slices.Sorted(maps.Keys(ok)))
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("go list returned no packages")
	}
}
