package local

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/containerd/errdefs"
)

// FuzzParseIndex checks the hand-split index.json reader against
// encoding/json: it accepts exactly the JSON objects whose manifests, if
// any, are a list or null, finds the same fields and entries, and what it
// writes back reads the same again.
func FuzzParseIndex(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":2,"manifests":[]}`,
		`{}`,
		` { "manifests" : null , "a" : 1.5e3 } `,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:x","annotations":{"org.opencontainers.image.ref.name":"a\"b\\c"}},{"x":[1,{"y":"]}"}]}],"annotations":{"k":"v , ]"}}`,
		`{"manifests":[1, "two", true, null, [3], {"4": 4}]}`,
		`{"manifests":{}}`,
		`{"manifests":"nope"}`,
		`[]`,
		`null`,
		`{"a":`,
		`{"a":"\u00e9\/"}`,
		`{"manifests":[1],"manifests":[2],"a":1,"a":2}`,
		`{"manifests":{},"manifests":[2]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := parseIndex(b)

		var want map[string]json.RawMessage
		wantErr := json.Unmarshal(b, &want) != nil || want == nil
		var wantManifests []json.RawMessage
		if m, ok := want["manifests"]; ok && !wantErr {
			wantErr = json.Unmarshal(m, &wantManifests) != nil
			delete(want, "manifests")
		}
		if wantErr {
			if err == nil || !errdefs.IsDataLoss(err) {
				t.Fatalf("parseIndex(%q) error = %v, want DataLoss", b, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("parseIndex(%q) error = %v", b, err)
		}
		if len(idx.fields) != len(want) {
			t.Fatalf("parseIndex(%q) fields %q, want %q", b, idx.fields, want)
		}
		for k, v := range want {
			if !bytes.Equal(compact(t, idx.fields[k]), compact(t, v)) {
				t.Fatalf("parseIndex(%q) field %q = %s, want %s", b, k, idx.fields[k], v)
			}
		}
		if len(idx.manifests) != len(wantManifests) {
			t.Fatalf("parseIndex(%q) has %d manifests, want %d", b, len(idx.manifests), len(wantManifests))
		}
		for i := range wantManifests {
			if !bytes.Equal(compact(t, idx.manifests[i]), compact(t, wantManifests[i])) {
				t.Fatalf("parseIndex(%q) manifests[%d] = %s, want %s", b, i, idx.manifests[i], wantManifests[i])
			}
		}

		out, err := idx.marshal()
		if err != nil {
			t.Fatalf("marshal() error = %v", err)
		}
		again, err := parseIndex(out)
		if err != nil {
			t.Fatalf("parseIndex(marshal()) error = %v\n%s", err, out)
		}
		if len(again.manifests) != len(idx.manifests) || len(again.fields) != len(idx.fields)+2-countKnown(idx.fields) {
			t.Fatalf("parseIndex(marshal()) = %d fields, %d manifests; from %d, %d\n%s", len(again.fields), len(again.manifests), len(idx.fields), len(idx.manifests), out)
		}
		if string(again.fields["schemaVersion"]) != "2" {
			t.Fatalf("marshal() schemaVersion = %s, want 2", again.fields["schemaVersion"])
		}
	})
}

// countKnown counts the fields marshal sets itself.
func countKnown(fields map[string]json.RawMessage) int {
	n := 0
	for _, k := range []string{"schemaVersion", "mediaType"} {
		if _, ok := fields[k]; ok {
			n++
		}
	}
	return n
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact(%s): %v", b, err)
	}
	return buf.Bytes()
}
