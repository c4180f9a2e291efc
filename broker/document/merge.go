package document

import "maps"

// MergePatch applies patch to target as RFC 7396 (JSON Merge Patch)
// defines, and returns the result. A patch that is not an object replaces
// the target whole (arrays are never merged element-wise). An object patch
// turns a non-object target (nil included: a missing record) into an empty
// object, then for each member: null deletes the key, anything else is
// merged recursively into the target's member.
//
// Neither argument is modified. The result shares unchanged subtrees with
// target and non-object values with patch, so callers must treat all three
// as immutable. Nulls inside a patch's arrays are kept, as the RFC says;
// nulls in a patch's objects never reach the result.
func MergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, _ := target.(map[string]any)
	out := maps.Clone(t) // faster than copying key by key, even if it must grow
	if out == nil {
		out = make(map[string]any, len(p))
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = MergePatch(out[k], v)
	}
	return out
}
