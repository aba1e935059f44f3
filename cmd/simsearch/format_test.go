package main

import "testing"

func TestPyFloat(t *testing.T) {
	for _, tc := range []struct {
		x    float64
		want string
	}{
		{0, "0.0"},
		{float64(float32(0.3935456)), "0.39354559779167175"}, // the article's second line
		{float64(float32(8.174515)), "8.174514770507812"},
		{1, "1.0"},
		{1234567, "1234567.0"},
		{1e-5, "1e-05"},
		{0.0001, "0.0001"},
		{1.5e-7, "1.5e-07"},
		{1e16, "1e+16"},
		{1.2345e100, "1.2345e+100"},
	} {
		if got := pyFloat(tc.x); got != tc.want {
			t.Errorf("pyFloat(%v) = %q, want %q", tc.x, got, tc.want)
		}
	}
}

func TestTextField(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"55/77/5577b0.jpg", "55/77/5577b0.jpg"},
		{"with space.jpg", "with space.jpg"},
		{"café/ünï.png", "café/ünï.png"},
		{"a\nb.jpg", `"a\nb.jpg"`},
		{"tab\there", `"tab\there"`},
		{"cr\r", `"cr\r"`},
		{"esc\x1b[31m", `"esc\x1b[31m"`},
		{"c1\u0085", `"c1\u0085"`},
		{`"quoted".jpg`, `"\"quoted\".jpg"`},
		{`mid"quote`, `mid"quote`},
		{"bad\xffutf8", `"bad\xffutf8"`},
	} {
		if got := textField(tc.in); got != tc.want {
			t.Errorf("textField(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestFilesPhrase(t *testing.T) {
	for n, want := range map[int]string{0: "0 files", 1: "1 file", 2: "2 files"} {
		if got := filesPhrase(n); got != want {
			t.Errorf("filesPhrase(%d) = %q, want %q", n, got, want)
		}
	}
}
