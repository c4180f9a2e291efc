package document

import "testing"

// TestMergePatchRFC7396 runs the examples of RFC 7396, Appendix A,
// verbatim.
func TestMergePatchRFC7396(t *testing.T) {
	tests := []struct{ original, patch, result string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.original+" + "+tt.patch, func(t *testing.T) {
			checkMerge(t, tt.original, tt.patch, tt.result)
		})
	}
}

func TestMergePatch(t *testing.T) {
	tests := []struct{ name, target, patch, result string }{
		{"create from missing", `null`, `{"a":1,"b":{"c":2}}`, `{"a":1,"b":{"c":2}}`},
		{"create strips nulls", `null`, `{"a":null,"b":{"c":null,"d":1}}`, `{"b":{"d":1}}`},
		{"nested null deletes", `{"a":{"b":{"c":1,"d":2}},"e":3}`, `{"a":{"b":{"c":null}}}`, `{"a":{"b":{"d":2}},"e":3}`},
		{"delete missing key", `{"a":1}`, `{"z":null}`, `{"a":1}`},
		{"scalar becomes object", `{"a":5}`, `{"a":{"b":1}}`, `{"a":{"b":1}}`},
		{"nulls inside arrays kept", `{}`, `{"a":[null,{"b":null}]}`, `{"a":[null,{"b":null}]}`},
		{"empty patch keeps target", `{"a":[1]}`, `{}`, `{"a":[1]}`},
		{"empty patch on scalar", `3`, `{}`, `{}`},
		{"numbers replaced", `{"n":1}`, `{"n":1.5}`, `{"n":1.5}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMerge(t, tt.target, tt.patch, tt.result)
		})
	}
}

func checkMerge(t *testing.T, target, patch, result string) {
	t.Helper()
	tv, pv := j(t, target), j(t, patch)
	tb, pb := deepCopy(tv), deepCopy(pv)
	got := MergePatch(tv, pv)
	if want := j(t, result); !same(got, want) {
		t.Fatalf("MergePatch = %s, want %s", show(got), show(want))
	}
	if !same(tv, tb) || !same(pv, pb) {
		t.Fatalf("input modified: target %s, patch %s", show(tv), show(pv))
	}
}
