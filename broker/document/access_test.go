package document

import (
	"errors"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	doc := `{"a":{"b":[10,{"c":"x"},null]},"n":null,"s":"str","top":[[1,2],[3]]}`
	tests := []struct {
		path  string
		want  string // JSON; ignored when !found
		found bool
	}{
		{"", doc, true},
		{"a.b[0]", `10`, true},
		{"a.b[1].c", `"x"`, true},
		{"a.b[2]", `null`, true},
		{"n", `null`, true},
		{"top[0][1]", `2`, true},
		{"top[1]", `[3]`, true},
		{"missing", ``, false},
		{"a.b[3]", ``, false},
		{"a.missing.deeper", ``, false},
		{"a[0]", ``, false},  // index into object
		{"a.b.c", ``, false}, // key into array
		{"s.x", ``, false},   // key into string
		{"s[0]", ``, false},  // index into string
		{"n.x", ``, false},   // key into null
	}
	d := j(t, doc)
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, found := Get(d, mustPath(t, tt.path))
			if found != tt.found {
				t.Fatalf("found = %v, want %v (value %s)", found, tt.found, show(got))
			}
			if !found {
				if got != nil {
					t.Fatalf("not found but value %s", show(got))
				}
				return
			}
			if want := j(t, tt.want); !same(got, want) {
				t.Fatalf("Get = %s, want %s", show(got), show(want))
			}
		})
	}
	t.Run("root of nil", func(t *testing.T) {
		if v, ok := Get(nil, nil); v != nil || !ok {
			t.Fatalf("Get(nil, root) = %v, %v; want nil, true", v, ok)
		}
	})
	t.Run("negative constructed index", func(t *testing.T) {
		if v, ok := Get([]any{int64(1)}, Path{Index(-1)}); ok {
			t.Fatalf("Get([-1]) = %v, true", v)
		}
	})
}

func TestSet(t *testing.T) {
	tests := []struct {
		name, doc, path, value, want string
	}{
		{"replace root", `{"a":1}`, "", `[1,2]`, `[1,2]`},
		{"root of missing", `null`, "", `{"x":1}`, `{"x":1}`},
		{"top key", `{"a":1}`, "b", `2`, `{"a":1,"b":2}`},
		{"overwrite key", `{"a":1}`, "a", `"x"`, `{"a":"x"}`},
		{"overwrite object by scalar", `{"a":{"b":1}}`, "a", `3`, `{"a":3}`},
		{"nested key", `{"a":{"b":1,"c":2}}`, "a.b", `5`, `{"a":{"b":5,"c":2}}`},
		{"create maps", `null`, "a.b.c", `true`, `{"a":{"b":{"c":true}}}`},
		{"create maps in object", `{"x":1}`, "a.b", `null`, `{"x":1,"a":{"b":null}}`},
		{"create array", `{}`, "a[0]", `"v"`, `{"a":["v"]}`},
		{"create array with padding", `{}`, "a[3]", `1`, `{"a":[null,null,null,1]}`},
		{"pad existing array", `{"a":[1]}`, "a[2]", `3`, `{"a":[1,null,3]}`},
		{"append position", `{"a":[1,2]}`, "a[2]", `3`, `{"a":[1,2,3]}`},
		{"overwrite element", `{"a":[1,2,3]}`, "a[1]", `{"k":"v"}`, `{"a":[1,{"k":"v"},3]}`},
		{"deepstream spouses", `{"player":{"name":"x"}}`, "player.spouses[0]", `"y"`, `{"player":{"name":"x","spouses":["y"]}}`},
		{"mixed creation", `null`, "a.b[2].c", `1`, `{"a":{"b":[null,null,{"c":1}]}}`},
		{"nested arrays", `null`, "a[0][1]", `1`, `{"a":[[null,1]]}`},
		{"root array", `null`, "[1].name", `"n"`, `[null,{"name":"n"}]`},
		{"null intermediate becomes object", `{"a":null}`, "a.b", `1`, `{"a":{"b":1}}`},
		{"null intermediate becomes array", `{"a":null}`, "a[1]", `1`, `{"a":[null,1]}`},
		{"null element becomes object", `{"a":[null]}`, "a[0].k", `1`, `{"a":[{"k":1}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := j(t, tt.doc)
			before := deepCopy(doc)
			got, err := Set(doc, mustPath(t, tt.path), j(t, tt.value))
			if err != nil {
				t.Fatalf("Set: %v", err)
			}
			if want := j(t, tt.want); !same(got, want) {
				t.Fatalf("Set = %s, want %s", show(got), show(want))
			}
			if !same(doc, before) {
				t.Fatalf("input modified: now %s, was %s", show(doc), show(before))
			}
		})
	}
	t.Run("pad to MaxIndex", func(t *testing.T) {
		got, err := Set(nil, Path{Index(MaxIndex)}, "last")
		if err != nil {
			t.Fatal(err)
		}
		a := got.([]any)
		if len(a) != MaxIndex+1 || a[MaxIndex] != "last" || a[0] != nil {
			t.Fatalf("len %d, last %v", len(a), a[len(a)-1])
		}
	})
	t.Run("untouched subtrees shared", func(t *testing.T) {
		doc := j(t, `{"a":{"x":1},"b":{"y":2}}`).(map[string]any)
		got, err := Set(doc, mustPath(t, "a.x"), int64(5))
		if err != nil {
			t.Fatal(err)
		}
		gb, db := got.(map[string]any)["b"].(map[string]any), doc["b"].(map[string]any)
		gb["probe"] = true // only to detect sharing
		if _, ok := db["probe"]; !ok {
			t.Fatal("subtree b was copied, want it shared")
		}
	})
}

func TestSetErrors(t *testing.T) {
	tests := []struct {
		name, doc string
		path      Path
		err       error
		msg       string
	}{
		{"key into number", `{"a":{"b":5}}`, Path{Key("a"), Key("b"), Key("c")}, ErrInvalidPath, "document: invalid path: a.b: is a number, not an object"},
		{"key into array", `{"a":[1]}`, Path{Key("a"), Key("b")}, ErrInvalidPath, "a: is an array, not an object"},
		{"key into string", `{"a":"s"}`, Path{Key("a"), Key("b")}, ErrInvalidPath, "a: is a string, not an object"},
		{"key into bool", `{"a":true}`, Path{Key("a"), Key("b")}, ErrInvalidPath, "a: is a boolean, not an object"},
		{"key into root scalar", `7`, Path{Key("a")}, ErrInvalidPath, "(root): is a number, not an object"},
		{"index into object", `{"a":{}}`, Path{Key("a"), Index(0)}, ErrInvalidPath, "a: is an object, not an array"},
		{"index into scalar", `{"a":[1]}`, Path{Key("a"), Index(0), Index(0)}, ErrInvalidPath, "a[0]: is a number, not an array"},
		{"index into root object", `{}`, Path{Index(0)}, ErrInvalidPath, "(root): is an object, not an array"},
		{"negative constructed index", `null`, Path{Key("a"), Index(-1)}, ErrInvalidPath, "a[-1]: index -1 outside 0..10000"},
		{"absurd constructed index", `null`, Path{Index(MaxIndex + 1)}, ErrInvalidPath, "[10001]: index 10001 outside 0..10000"},
		{"constructed path too deep", `null`, make(Path, MaxPathDepth+1), ErrInvalidPath, "33 segments, more than 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := j(t, tt.doc)
			before := deepCopy(doc)
			got, err := Set(doc, tt.path, "v")
			if !errors.Is(err, tt.err) {
				t.Fatalf("Set = %s, %v; want error %v", show(got), err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q, want it to contain %q", err, tt.msg)
			}
			if got != nil {
				t.Fatalf("document %s returned with error", show(got))
			}
			if !same(doc, before) {
				t.Fatalf("input modified: now %s, was %s", show(doc), show(before))
			}
		})
	}
	t.Run("bytes", func(t *testing.T) {
		_, err := Set(map[string]any{"a": []byte("x")}, Path{Key("a"), Index(0)}, 1)
		if !errors.Is(err, ErrInvalidPath) || !strings.Contains(err.Error(), "a: is a byte string, not an array") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name, doc, path, want string
		found                 bool
	}{
		{"key", `{"a":1,"b":2}`, "a", `{"b":2}`, true},
		{"null member", `{"a":null,"b":2}`, "a", `{"b":2}`, true},
		{"nested key", `{"a":{"b":1,"c":2}}`, "a.b", `{"a":{"c":2}}`, true},
		{"last key leaves empty object", `{"a":{"b":1}}`, "a.b", `{"a":{}}`, true},
		{"array element shifts", `{"a":[1,2,3]}`, "a[0]", `{"a":[2,3]}`, true},
		{"last element", `{"a":[1,2,3]}`, "a[2]", `{"a":[1,2]}`, true},
		{"in nested array", `[[1,2],[3]]`, "[0][1]", `[[1],[3]]`, true},
		{"root", `{"a":1}`, "", `null`, true},
		{"root of missing", `null`, "", `null`, false},
		{"missing key", `{"a":1}`, "b", `{"a":1}`, false},
		{"missing parent", `{"a":1}`, "x.y.z", `{"a":1}`, false},
		{"null parent", `{"a":null}`, "a.b", `{"a":null}`, false},
		{"index past end", `{"a":[1]}`, "a[1]", `{"a":[1]}`, false},
		{"missing document", `null`, "a.b", `null`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := j(t, tt.doc)
			before := deepCopy(doc)
			got, found, err := Delete(doc, mustPath(t, tt.path))
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if found != tt.found {
				t.Fatalf("found = %v, want %v", found, tt.found)
			}
			if want := j(t, tt.want); !same(got, want) {
				t.Fatalf("Delete = %s, want %s", show(got), show(want))
			}
			if !same(doc, before) {
				t.Fatalf("input modified: now %s, was %s", show(doc), show(before))
			}
		})
	}
	errTests := []struct {
		name, doc, path, msg string
	}{
		{"key in array", `{"a":[1]}`, "a.b", "a: is an array, not an object"},
		{"index in object", `{"a":{"b":1}}`, "a[0]", "a: is an object, not an array"},
		{"through scalar", `{"a":1}`, "a.b.c", "a: is a number, not an object"},
		{"key in root string", `"s"`, "a", "(root): is a string, not an object"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := Delete(j(t, tt.doc), mustPath(t, tt.path))
			if !errors.Is(err, ErrInvalidPath) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Delete = %s, %v, %v; want ErrInvalidPath containing %q", show(got), found, err, tt.msg)
			}
			if got != nil || found {
				t.Fatalf("Delete returned %s, %v with error", show(got), found)
			}
		})
	}
}
