package document

import (
	"strconv"
	"testing"
)

// benchDoc is a 100-key object whose key "k42" leads four levels down.
func benchDoc() map[string]any {
	doc := make(map[string]any, 100)
	for i := range 100 {
		doc["k"+strconv.Itoa(i)] = map[string]any{"v": int64(i), "s": "some text"}
	}
	doc["k42"] = map[string]any{"b": []any{int64(0), map[string]any{"c": map[string]any{"d": int64(1)}}}}
	return doc
}

func BenchmarkSet(b *testing.B) {
	doc := benchDoc()
	p, err := ParsePath("k42.b[1].c")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Set(doc, p, int64(7)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePath("player.spouses[2].name"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMergePatch(b *testing.B) {
	doc := benchDoc()
	patch := map[string]any{
		"k1":   map[string]any{"v": int64(100)},
		"k2":   nil,
		"k42":  map[string]any{"b": []any{"replaced"}},
		"k100": map[string]any{"new": true},
	}
	b.ReportAllocs()
	for b.Loop() {
		MergePatch(doc, patch)
	}
}
