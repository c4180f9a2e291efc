// Package document is the data layer of Hearth's records: the value model
// of a record's document and the pure operations the $rec namespace offers
// on it. It knows nothing of MQTT, storage or wire formats; the codec
// package turns bytes into these values and back.
//
// # Value model
//
// A document value is one of:
//
//	nil             null
//	bool
//	int64           every integer that fits
//	uint64          only for integers above math.MaxInt64
//	float64         finite: NaN and ±Inf are rejected by Validate
//	string          valid UTF-8
//	[]byte          CBOR byte string (base64url in JSON)
//	[]any           array of values
//	map[string]any  object; keys are valid UTF-8
//
// Validate checks a value against this model and a nesting limit; the
// other functions assume a valid value and treat anything else as an
// opaque scalar. Equal compares numbers by value across int64, uint64 and
// float64.
//
// # Operations
//
// ParsePath reads deepstream paths ("player.spouses[0]", "a.b[2].c"). Get,
// Set and Delete act at a path; MergePatch applies an RFC 7396 merge patch;
// Append, Insert, RemoveAt and RemoveValue edit an array at a path.
//
// # Immutability
//
// No function modifies its arguments. Set, Delete, the list operations and
// MergePatch copy only the objects and arrays they change and share every
// other subtree between input and result. Callers must therefore treat
// documents as immutable once built: to change one, go through these
// functions, never assign into a map or slice that may be shared. This
// makes a change cost O(path length × container width) rather than the size
// of the document, and lets readers hold an old version safely.
//
// # Limits
//
// Limits are errors, never truncation. Paths are bounded by MaxPathLen
// bytes, MaxPathDepth segments and MaxIndex per index (ErrInvalidPath).
// Document nesting is bounded by Validate's maxDepth (MaxDepth is the
// suggested value; ErrTooDeep). Since the operations never deepen what they
// do not touch, a caller holding a valid document may check a Set by
// validating only the new value, with maxDepth minus the path length. The
// size of a document is bounded where it is measured, in encoded bytes, by
// the codec and storage layers, not here. Appended or inserted arrays are
// not bounded by MaxIndex; their size is.
package document
