package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{{
		Name: "convert",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}},
		},
	}}}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"s", "convert", "src", "-o", "x"}, []string{"s", "convert", "-o", "x", "--", "src"}},
		{[]string{"s", "convert", "-f", "src", "--output=x"}, []string{"s", "convert", "-f", "--output=x", "--", "src"}},
		{[]string{"s", "convert", "src", "-f", "other"}, []string{"s", "convert", "-f", "--", "src", "other"}},
		{[]string{"s", "convert", "-o", "x", "--", "-weird-name"}, []string{"s", "convert", "-o", "x", "--", "-weird-name"}},
		{[]string{"s", "convert", "-o"}, []string{"s", "convert", "-o"}},
		{[]string{"s", "other", "a", "-b"}, []string{"s", "other", "a", "-b"}},
		{[]string{"s", "convert", "a", "-"}, []string{"s", "convert", "--", "a", "-"}},
	} {
		if got, err := flagsFirst(app, tc.in); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("flagsFirst(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// A one-value flag given twice, by any of its names, is an error, not the last one silently;
// a bool flag or a flag that collects values may repeat.
func TestFlagGivenTwice(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{{
		Name: "query",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "vector"},
			&cli.IntFlag{Name: "k", Aliases: []string{"n"}},
			&cli.BoolFlag{Name: "json"},
			&cli.StringSliceFlag{Name: "exclude"},
		},
	}}}
	for _, tc := range []struct {
		args []string
		want string // "" for no error
	}{
		{[]string{"s", "query", "--vector", "a.npy", "--vector", "b.npy"}, `--vector given twice ("a.npy", then "b.npy")`},
		{[]string{"s", "query", "--vector=a.npy", "x", "--vector", "b.npy"}, `--vector given twice`},
		{[]string{"s", "query", "-k", "3", "-n", "5"}, `--k given twice ("3", then "5")`},
		{[]string{"s", "query", "--json", "--json", "-k", "3"}, ""},
		{[]string{"s", "query", "--exclude", "a", "--exclude", "b"}, ""},
		{[]string{"s", "query", "--vector", "a.npy", "--", "--vector"}, ""},
	} {
		_, err := flagsFirst(app, tc.args)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("flagsFirst(%q): %v, want %q", tc.args, err, tc.want)
		}
	}
}
