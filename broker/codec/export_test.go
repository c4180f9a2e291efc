package codec

// ErrMalformed lets external tests tell syntax errors from values the model
// refuses.
var ErrMalformed = errMalformed
