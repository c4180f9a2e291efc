package document_test

import (
	"encoding/json"
	"fmt"

	"github.com/hearth-iot/hearth/broker/document"
)

func ExampleSet() {
	doc := map[string]any{"player": map[string]any{"name": "Ann"}}
	p, err := document.ParsePath("player.spouses[1]")
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := document.Set(doc, p, "Bob")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))

	_, err = document.Set(out, document.Path{document.Key("player"), document.Key("name"), document.Key("first")}, "A")
	fmt.Println(err)
	// Output:
	// {"player":{"name":"Ann","spouses":[null,"Bob"]}}
	// document: invalid path: player.name: is a string, not an object
}

func ExampleMergePatch() {
	target := map[string]any{"title": "Goodbye!", "author": map[string]any{"givenName": "John", "familyName": "Doe"}, "tags": []any{"example", "sample"}}
	patch := map[string]any{"title": "Hello!", "author": map[string]any{"familyName": nil}, "tags": []any{"example"}, "phoneNumber": "+01-123-456-7890"}
	b, _ := json.Marshal(document.MergePatch(target, patch))
	fmt.Println(string(b))
	// Output:
	// {"author":{"givenName":"John"},"phoneNumber":"+01-123-456-7890","tags":["example"],"title":"Hello!"}
}

func ExampleAppend() {
	doc := map[string]any{"friends": []any{"rec/ann"}}
	out, _ := document.Append(doc, document.Path{document.Key("friends")}, "rec/bob")
	out, n, _ := document.RemoveValue(out, document.Path{document.Key("friends")}, "rec/ann")
	fmt.Println(out, n)
	// Output:
	// map[friends:[rec/bob]] 1
}
