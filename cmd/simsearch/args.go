package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst rewrites "simsearch CMD ARGS..." so that CMD's flags come before its positional
// arguments: urfave/cli v2 stops reading flags at the first positional argument, and users write
// "simsearch convert shards/ -o x.simidx". Value-taking flags keep their values; "--" ends the
// flags as usual.
//
// It also refuses a flag that takes one value given twice ("--vector a.npy --vector b.npy"),
// which urfave/cli would silently resolve by keeping the last.
func flagsFirst(app *cli.App, args []string) ([]string, error) {
	if len(args) < 3 {
		return args, nil
	}
	cmd := app.Command(args[1])
	if cmd == nil {
		return args, nil
	}
	takesValue := map[string]bool{}
	single := map[string]string{} // name or alias -> the flag's name, for one-value flags
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
			if !isBool && !multiValue(f) {
				single[n] = f.Names()[0]
			}
		}
	}
	seen := map[string]string{} // flag name -> its value
	var flags, pos []string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && takesValue[name] && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
			value, hasValue = rest[i], true
		}
		if canon, ok := single[name]; ok && hasValue {
			if prev, dup := seen[canon]; dup {
				return nil, fmt.Errorf("%s: --%s given twice (%q, then %q): it takes one value", args[1], canon, prev, value)
			}
			seen[canon] = value
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out, nil
}

// multiValue reports whether a flag may be given more than once, collecting its values.
func multiValue(f cli.Flag) bool {
	switch f.(type) {
	case *cli.StringSliceFlag, *cli.IntSliceFlag, *cli.Int64SliceFlag, *cli.UintSliceFlag, *cli.Uint64SliceFlag, *cli.Float64SliceFlag:
		return true
	}
	return false
}
