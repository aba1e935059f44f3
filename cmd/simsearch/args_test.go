package main

import (
	"slices"
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
		if got := flagsFirst(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
