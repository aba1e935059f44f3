package main

import (
	"strings"
	"testing"
)

func TestAgree(t *testing.T) {
	want := []hit{{"a", 1}, {"b", 2}, {"c", 2.00001}, {"d", 30}}
	for _, tc := range []struct {
		name string
		got  []hit
		fail string // a fragment of the error, "" when they agree
	}{
		{"identical", []hit{{"a", 1}, {"b", 2}, {"c", 2.00001}, {"d", 30}}, ""},
		{"distances within the tolerance", []hit{{"a", 1.00005}, {"b", 2}, {"c", 2.00001}, {"d", 30.002}}, ""},
		{"a near-tie swapped", []hit{{"a", 1}, {"c", 2.00001}, {"b", 2}, {"d", 30}}, ""},
		{"a distance off", []hit{{"a", 1}, {"b", 2}, {"c", 2.00001}, {"d", 30.01}}, "d at distance"},
		{"a swap that is not a tie", []hit{{"b", 2}, {"a", 1}, {"c", 2.00001}, {"d", 30}}, "is not tied with"},
		{"another id", []hit{{"a", 1}, {"b", 2}, {"c", 2.00001}, {"e", 29}}, "e (rank 4) is not in"},
		{"another id tied at the cut", []hit{{"a", 1}, {"b", 2}, {"c", 2.00001}, {"e", 30}}, ""},
		{"another id tied with the last, too early", []hit{{"a", 1}, {"e", 30}, {"b", 2}, {"c", 2.00001}}, "e (rank 2) is not in"},
		{"fewer results", []hit{{"a", 1}, {"b", 2}, {"c", 2.00001}}, "3 results against 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := agree("got", tc.got, "want", want)
			switch {
			case tc.fail == "" && err != nil:
				t.Errorf("unexpected disagreement: %v", err)
			case tc.fail != "" && err == nil:
				t.Errorf("no error, want one containing %q", tc.fail)
			case tc.fail != "" && !strings.Contains(err.Error(), tc.fail):
				t.Errorf("error %q lacks %q", err, tc.fail)
			}
		})
	}
}
