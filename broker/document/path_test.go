package document

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in   string
		want Path
	}{
		{"", nil},
		{"a", Path{Key("a")}},
		{"a.b", Path{Key("a"), Key("b")}},
		{"a[0]", Path{Key("a"), Index(0)}},
		{"a.b[2].c", Path{Key("a"), Key("b"), Index(2), Key("c")}},
		{"a[0][1]", Path{Key("a"), Index(0), Index(1)}},
		{"player.spouses[0]", Path{Key("player"), Key("spouses"), Index(0)}},
		{"[3]", Path{Index(3)}},
		{"[3].name", Path{Index(3), Key("name")}},
		{"a[10000]", Path{Key("a"), Index(MaxIndex)}},
		{"with space.$dollar-dash_/slash", Path{Key("with space"), Key("$dollar-dash_/slash")}},
		{"ключ.😀", Path{Key("ключ"), Key("😀")}},
		{"0.1", Path{Key("0"), Key("1")}},
		{strings.Repeat("a.", MaxPathDepth-1) + "a", slices.Repeat(Path{Key("a")}, MaxPathDepth)},
		{"a" + strings.Repeat("[0]", MaxPathDepth-1), append(Path{Key("a")}, slices.Repeat(Path{Index(0)}, MaxPathDepth-1)...)},
		{strings.Repeat("k", MaxPathLen), Path{Key(strings.Repeat("k", MaxPathLen))}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePath(tt.in)
			if err != nil {
				t.Fatalf("ParsePath(%q): %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ParsePath(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Fatalf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestParsePathErrors(t *testing.T) {
	tests := []struct {
		name, in, msg string
	}{
		{"double dot", "a..b", "empty key at offset 2"},
		{"leading dot", ".a", "empty key at offset 0"},
		{"trailing dot", "a.", "empty key at offset 2"},
		{"dot only", ".", "empty key at offset 0"},
		{"dot before bracket", "a.[0]", "empty key at offset 2"},
		{"unclosed", "a[0", "unclosed bracket at offset 1"},
		{"unclosed empty", "a[", "unclosed bracket at offset 1"},
		{"stray close", "a]", "unexpected ']' at offset 1"},
		{"stray close after index", "a[0]]", "unexpected ']' at offset 4"},
		{"empty index", "a[]", "empty index at offset 2"},
		{"letters", "a[x]", "non-numeric index at offset 2"},
		{"digits then letters", "a[1x]", "non-numeric index at offset 2"},
		{"space", "a[ 1]", "non-numeric index at offset 2"},
		{"plus", "a[+1]", "non-numeric index at offset 2"},
		{"negative", "a[-1]", "negative index at offset 2"},
		{"leading zero", "a[01]", "leading zero in index 01 at offset 2"},
		{"double zero", "a[00]", "leading zero in index 00 at offset 2"},
		{"above max", "a[10001]", "index 10001 above 10000 at offset 2"},
		{"absurd", "a[99999999999999999999999]", "index 99999999999999999999999 above 10000"},
		{"text after index", "a[0]b", "expected '.' or '[' after ']' at offset 4"},
		{"bad utf8", "a.\xff", "key is not valid UTF-8 at offset 2"},
		{"too deep", strings.Repeat("a.", MaxPathDepth) + "a", "more than 32 segments"},
		{"too deep indexes", "a" + strings.Repeat("[0]", MaxPathDepth), "more than 32 segments"},
		{"too long", strings.Repeat("k", MaxPathLen+1), "path is 1025 bytes, longer than 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePath(tt.in)
			if err == nil {
				t.Fatalf("ParsePath(%q) = %#v, want error", tt.in, p)
			}
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("error %v does not wrap ErrInvalidPath", err)
			}
			if !strings.HasPrefix(err.Error(), "document: invalid path: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q, want it to contain %q", err, tt.msg)
			}
			if p != nil {
				t.Fatalf("path %#v returned with error", p)
			}
		})
	}
}

func TestPathStringConstructed(t *testing.T) {
	tests := []struct {
		p    Path
		want string
	}{
		{nil, ""},
		{Path{Index(0), Index(1)}, "[0][1]"},
		{Path{Key("a.b"), Key("c")}, "a.b.c"}, // not parseable back: documented
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
