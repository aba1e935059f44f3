package main

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// textField is s as the text output prints an id or a file name: as it is, unless it holds a
// control character (a newline or a tab would break the one-result-per-line format), invalid
// UTF-8, or starts with a double quote; then it is quoted and escaped as Go's strconv.Quote
// does ("a\nb.jpg"), which a script can undo with strconv.Unquote or a JSON string parser for
// the common escapes. --json prints every id exactly.
func textField(s string) string {
	if strings.HasPrefix(s, `"`) || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return s
}

// pyFloat formats x as Python's repr(float(x)) does, so distances print as the seed printed
// them: 0.0, 0.39354559779167175, 1e-05, 1e+16.
func pyFloat(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	case math.IsNaN(x):
		return "nan"
	}
	if a := math.Abs(x); a != 0 && (a < 1e-4 || a >= 1e16) {
		s := strconv.FormatFloat(x, 'e', -1, 64)
		mant, exp, _ := strings.Cut(s, "e")
		sign := exp[:1]
		exp = strings.TrimLeft(exp[1:], "0")
		if len(exp) < 2 {
			exp = strings.Repeat("0", 2-len(exp)) + exp
		}
		return mant + "e" + sign + exp
	}
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
