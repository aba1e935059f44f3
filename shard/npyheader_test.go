package shard

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// npyBytes builds an npy v1 preamble around a header dictionary, padded as numpy pads it.
func npyBytes(dict string) []byte {
	hlen := len(dict) + 1
	hlen += (64 - (10+hlen)%64) % 64
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(hlen))
	b = append(b, dict...)
	b = append(b, bytes.Repeat([]byte{' '}, hlen-len(dict)-1)...)
	return append(b, '\n')
}

func TestReadHeader(t *testing.T) {
	for _, tc := range []struct {
		dict  string
		want  Header
		error string
	}{
		{dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (10000, 1280), }",
			want: Header{DType: "<f4", Order: '<', Kind: 'f', ItemSize: 4, Shape: []int{10000, 1280}, DataOffset: 128}},
		{dict: "{'descr': '<U44', 'fortran_order': False, 'shape': (3,), }",
			want: Header{DType: "<U44", Order: '<', Kind: 'U', ItemSize: 176, Shape: []int{3}, DataOffset: 128}},
		{dict: `{"descr": "|S5", "shape": (), "fortran_order": True}`,
			want: Header{DType: "|S5", Order: '|', Kind: 'S', ItemSize: 5, Fortran: true, Shape: []int{}, DataOffset: 64}},
		{dict: "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", error: "never loads"},
		{dict: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", error: "structured dtype"},
		{dict: "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", error: "not supported"},
		{dict: "{'descr': '<f3', 'fortran_order': False, 'shape': (3,), }", error: "unsupported float size"},
		{dict: "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }", error: "True or False"},
		{dict: "{'descr': '<f4', 'fortran_order': False, }", error: `missing key "shape"`},
		{dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", error: `unknown key "x"`},
		{dict: "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", error: "repeated"},
		{dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }", error: "bad shape"},
		{dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }", error: "too large"},
		{dict: "{'descr': '<f4', 'fortran_order': False, 'shape': [3], }", error: "tuple"},
		{dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (3,) } junk", error: "after the dictionary"},
		{dict: "{'descr': '<f4", error: "unterminated"},
	} {
		h, err := ReadHeader(bytes.NewReader(npyBytes(tc.dict)))
		if tc.error != "" {
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("%s: error %v, want %q", tc.dict, err, tc.error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.dict, err)
			continue
		}
		if !reflect.DeepEqual(*h, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.dict, *h, tc.want)
		}
	}
}

func TestReadHeaderPreamble(t *testing.T) {
	good := npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }")
	for name, b := range map[string][]byte{
		"empty":       nil,
		"short":       good[:5],
		"magic":       append([]byte("\x93NUMPZ"), good[6:]...),
		"version":     append(append([]byte{}, good[:6]...), append([]byte{9, 0}, good[8:]...)...),
		"header text": good[:20],
	} {
		if _, err := ReadHeader(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Every header numpy wrote for the fixtures parses, and its data size matches the file.
func TestFixtureHeaders(t *testing.T) {
	paths, _ := filepath.Glob("../testdata/npy/ok_*/*.npy")
	if len(paths) == 0 {
		t.Fatal("no fixtures")
	}
	for _, p := range paths {
		if _, err := Stat(p); err != nil {
			t.Error(err)
		}
	}
}

func FuzzReadHeader(f *testing.F) {
	paths, _ := filepath.Glob("../testdata/npy/*/*.npy")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b[:min(len(b), 256)])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		if h.ItemSize <= 0 || h.DataOffset < 10 || h.DataBytes() < 0 {
			t.Fatalf("accepted nonsense header %+v", h)
		}
		switch h.Kind {
		case 'f', 'i', 'u', 'U', 'S':
		default:
			t.Fatalf("accepted kind %q", h.Kind)
		}
	})
}
