package document

import (
	"errors"
	"slices"
	"testing"
)

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"", "a", "a.b", "a[0]", "a.b[2].c", "a[0][1]", "[3].x", "a..b", ".a", "a.",
		"a[", "a]", "a[01]", "a[-1]", "a[10001]", "a[0]b", "a.\xff", "ключ[7]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("ParsePath(%q): error %v does not wrap ErrInvalidPath", s, err)
			}
			return
		}
		if err := p.check(); err != nil {
			t.Fatalf("ParsePath(%q) = %v breaks the limits: %v", s, p, err)
		}
		// The syntax has one spelling per path, so rendering gives s back.
		if got := p.String(); got != s {
			t.Fatalf("ParsePath(%q).String() = %q", s, got)
		}
		q, err := ParsePath(p.String())
		if err != nil || !slices.Equal(p, q) {
			t.Fatalf("re-parse of %q = %v, %v; want %v", p.String(), q, err, p)
		}
	})
}

func FuzzMergePatch(f *testing.F) {
	seeds := [][2]string{
		{`{"a":"b"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"a":null}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`},
		{`[1,2]`, `{"a":"b","c":null}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`},
		{`null`, `{"x":[null,{"y":null}]}`},
		{`{"n":1}`, `{"n":1.0}`},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		tv, err := decodeJSON(target)
		if err != nil {
			return
		}
		pv, err := decodeJSON(patch)
		if err != nil {
			return
		}
		tb, pb := deepCopy(tv), deepCopy(pv)
		once := MergePatch(tv, pv)
		if !same(tv, tb) || !same(pv, pb) {
			t.Fatalf("MergePatch modified its input")
		}
		onceCopy := deepCopy(once)
		twice := MergePatch(once, pv)
		if !Equal(twice, once) {
			t.Fatalf("not idempotent: once %s, twice %s", show(once), show(twice))
		}
		if !same(once, onceCopy) {
			t.Fatalf("second MergePatch modified the first result")
		}
		if d := Depth(once); d > max(Depth(tv), Depth(pv)) {
			t.Fatalf("result depth %d above inputs' %d and %d", d, Depth(tv), Depth(pv))
		}
	})
}

func FuzzSet(f *testing.F) {
	seeds := [][3]string{
		{`{"a":{"b":[1,2]}}`, "a.b[1]", `"x"`},
		{`null`, "a.b[2].c", `{"k":null}`},
		{`[1]`, "[3]", `[]`},
		{`{"a":1}`, "a.b", `1`},
		{`{"a":[]}`, "a[10000]", `true`},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), s[1], []byte(s[2]))
	}
	f.Fuzz(func(t *testing.T, doc []byte, path string, value []byte) {
		d, err := decodeJSON(doc)
		if err != nil {
			return
		}
		v, err := decodeJSON(value)
		if err != nil {
			return
		}
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		before := deepCopy(d)
		out, err := Set(d, p, v)
		if !same(d, before) {
			t.Fatalf("Set modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) || out != nil {
				t.Fatalf("Set = %s, %v", show(out), err)
			}
			return
		}
		got, ok := Get(out, p)
		if !ok || !Equal(got, v) {
			t.Fatalf("Get after Set(%q) = %s, %v; want %s", path, show(got), ok, show(v))
		}
		// Delete undoes what it can see: the value is gone afterwards unless
		// it was an array element, whose successors shift into its place.
		if len(p) == 0 {
			return // Delete of the root reports nothing found for a nil document
		}
		del, found, err := Delete(out, p)
		if err != nil || !found {
			t.Fatalf("Delete(%q) after Set = %v, %v", path, found, err)
		}
		if !p[len(p)-1].IsIndex {
			if _, ok := Get(del, p); ok {
				t.Fatalf("Get after Delete(%q) still finds a value", path)
			}
		}
	})
}
