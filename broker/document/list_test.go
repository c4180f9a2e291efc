package document

import (
	"errors"
	"strings"
	"testing"
)

func TestAppend(t *testing.T) {
	tests := []struct {
		name, doc, path, values, want string // values: a JSON array of the arguments
	}{
		{"to existing", `{"l":[1]}`, "l", `[2,3]`, `{"l":[1,2,3]}`},
		{"creates array", `{}`, "l", `["a"]`, `{"l":["a"]}`},
		{"creates intermediates", `null`, "a.b[1].l", `[1]`, `{"a":{"b":[null,{"l":[1]}]}}`},
		{"null member", `{"l":null}`, "l", `[1]`, `{"l":[1]}`},
		{"root array", `[1]`, "", `[2]`, `[1,2]`},
		{"nothing creates empty", `{}`, "l", `[]`, `{"l":[]}`},
		{"values are not flattened", `{"l":[]}`, "l", `[[1,2]]`, `{"l":[[1,2]]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkList(t, tt.doc, tt.want, func(doc any) (any, error) {
				return Append(doc, mustPath(t, tt.path), j(t, tt.values).([]any)...)
			})
		})
	}
}

func TestInsert(t *testing.T) {
	tests := []struct {
		name, doc, path string
		index           int
		values, want    string
	}{
		{"front", `{"l":[1,2]}`, "l", 0, `[0]`, `{"l":[0,1,2]}`},
		{"middle", `{"l":[1,4]}`, "l", 1, `[2,3]`, `{"l":[1,2,3,4]}`},
		{"at length", `{"l":[1,2]}`, "l", 2, `[3]`, `{"l":[1,2,3]}`},
		{"into missing", `{}`, "a.l", 0, `["x"]`, `{"a":{"l":["x"]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkList(t, tt.doc, tt.want, func(doc any) (any, error) {
				return Insert(doc, mustPath(t, tt.path), tt.index, j(t, tt.values).([]any)...)
			})
		})
	}
}

func TestRemoveAt(t *testing.T) {
	tests := []struct {
		name, doc, path string
		index           int
		want            string
	}{
		{"first", `{"l":[1,2,3]}`, "l", 0, `{"l":[2,3]}`},
		{"middle", `{"l":[1,2,3]}`, "l", 1, `{"l":[1,3]}`},
		{"last", `{"l":[1,2,3]}`, "l", 2, `{"l":[1,2]}`},
		{"only", `{"l":[1]}`, "l", 0, `{"l":[]}`},
		{"nested", `{"a":[{"l":["x","y"]}]}`, "a[0].l", 1, `{"a":[{"l":["x"]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkList(t, tt.doc, tt.want, func(doc any) (any, error) {
				return RemoveAt(doc, mustPath(t, tt.path), tt.index)
			})
		})
	}
}

func TestRemoveValue(t *testing.T) {
	tests := []struct {
		name, doc, path, value, want string
		n                            int
	}{
		{"one", `{"l":["a","b","c"]}`, "l", `"b"`, `{"l":["a","c"]}`, 1},
		{"all equal", `{"l":["a","b","a","a"]}`, "l", `"a"`, `{"l":["b"]}`, 3},
		{"numeric across types", `{"l":[1,1.0,2]}`, "l", `1.0`, `{"l":[2]}`, 2},
		{"objects", `{"l":[{"k":1},{"k":2}]}`, "l", `{"k":2}`, `{"l":[{"k":1}]}`, 1},
		{"null", `{"l":[null,1]}`, "l", `null`, `{"l":[1]}`, 1},
		{"to empty", `{"l":[5]}`, "l", `5`, `{"l":[]}`, 1},
		{"absent value", `{"l":["a"]}`, "l", `"z"`, `{"l":["a"]}`, 0},
		{"missing array", `{"a":1}`, "l", `"z"`, `{"a":1}`, 0},
		{"missing intermediates not created", `{}`, "a.b[3].l", `1`, `{}`, 0},
		{"null array", `{"l":null}`, "l", `1`, `{"l":null}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n int
			checkList(t, tt.doc, tt.want, func(doc any) (any, error) {
				var out any
				var err error
				out, n, err = RemoveValue(doc, mustPath(t, tt.path), j(t, tt.value))
				return out, err
			})
			if n != tt.n {
				t.Fatalf("removed %d, want %d", n, tt.n)
			}
		})
	}
}

func TestListErrors(t *testing.T) {
	p := func(s string) Path { return mustPath(t, s) }
	tests := []struct {
		name, doc string
		op        func(doc any) (any, error)
		err       error
		msg       string
	}{
		{"append to object", `{"l":{}}`, func(d any) (any, error) { return Append(d, p("l"), 1) }, ErrNotArray, "document: not an array: l: is an object"},
		{"append to string", `{"l":"s"}`, func(d any) (any, error) { return Append(d, p("l"), 1) }, ErrNotArray, "l: is a string"},
		{"append through array", `{"a":[]}`, func(d any) (any, error) { return Append(d, p("a.l"), 1) }, ErrInvalidPath, "a: is an array, not an object"},
		{"insert into number", `{"l":3}`, func(d any) (any, error) { return Insert(d, p("l"), 0, 1) }, ErrNotArray, "l: is a number"},
		{"insert beyond length", `{"l":[1]}`, func(d any) (any, error) { return Insert(d, p("l"), 2, 1) }, ErrIndexRange, "document: index out of range: l: insert at 2, length 1"},
		{"insert negative", `{"l":[1]}`, func(d any) (any, error) { return Insert(d, p("l"), -1, 1) }, ErrIndexRange, "insert at -1"},
		{"insert beyond missing", `{}`, func(d any) (any, error) { return Insert(d, p("l"), 1, 1) }, ErrIndexRange, "insert at 1, length 0"},
		{"remove at missing", `{}`, func(d any) (any, error) { return RemoveAt(d, p("l"), 0) }, ErrIndexRange, "l: remove at 0, length 0"},
		{"remove at length", `{"l":[1,2]}`, func(d any) (any, error) { return RemoveAt(d, p("l"), 2) }, ErrIndexRange, "remove at 2, length 2"},
		{"remove at negative", `{"l":[1,2]}`, func(d any) (any, error) { return RemoveAt(d, p("l"), -1) }, ErrIndexRange, "remove at -1"},
		{"remove at in object", `{"l":{"0":1}}`, func(d any) (any, error) { return RemoveAt(d, p("l"), 0) }, ErrNotArray, "l: is an object"},
		{"remove value in bool", `{"l":true}`, func(d any) (any, error) {
			out, _, err := RemoveValue(d, p("l"), true)
			return out, err
		}, ErrNotArray, "l: is a boolean"},
		{"remove value at root scalar", `1`, func(d any) (any, error) {
			out, _, err := RemoveValue(d, nil, 1)
			return out, err
		}, ErrNotArray, "(root): is a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := j(t, tt.doc)
			before := deepCopy(doc)
			got, err := tt.op(doc)
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %s, %v; want %v containing %q", show(got), err, tt.err, tt.msg)
			}
			if got != nil {
				t.Fatalf("document %s returned with error", show(got))
			}
			if !same(doc, before) {
				t.Fatalf("input modified: now %s, was %s", show(doc), show(before))
			}
		})
	}
}

// checkList runs op on the JSON document doc and checks the result and
// that doc was not modified.
func checkList(t *testing.T, doc, want string, op func(any) (any, error)) {
	t.Helper()
	d := j(t, doc)
	before := deepCopy(d)
	got, err := op(d)
	if err != nil {
		t.Fatalf("error: %v", err)
	}
	if w := j(t, want); !same(got, w) {
		t.Fatalf("got %s, want %s", show(got), show(w))
	}
	if !same(d, before) {
		t.Fatalf("input modified: now %s, was %s", show(d), show(before))
	}
}

func TestListNoAliasing(t *testing.T) {
	l := make([]any, 1, 10) // spare capacity a careless append would write into
	doc := map[string]any{"l": l}
	a, err := Append(doc, Path{Key("l")}, "x")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Insert(doc, Path{Key("l")}, 1, "y")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.(map[string]any)["l"].([]any)[1]; got != "x" {
		t.Fatalf("first result's element changed to %v by the second operation", got)
	}
	if got := b.(map[string]any)["l"].([]any)[1]; got != "y" {
		t.Fatalf("second result has %v", got)
	}
	if got := l[:2][1]; got != nil {
		t.Fatalf("input's spare capacity written: %v", got)
	}
}
