package convert

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npy"

	"simsearch/index"
	"simsearch/prune"
)

const fixtures = "../testdata/npy" // written by numpy: testdata/make_npy_fixtures.py

func convert(t *testing.T, name string, opt Options) (string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.simidx")
	_, err := Run(filepath.Join(fixtures, name), out, opt)
	return out, err
}

func open(t *testing.T, path string) *index.Index {
	t.Helper()
	ix, err := index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	if err := ix.Verify(); err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestAcceptedInputs(t *testing.T) {
	out, err := convert(t, "ok_f4", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref := open(t, out)
	if ref.Len() != 5 || ref.Dim() != 8 {
		t.Fatalf("ok_f4: %d x %d, want 5 x 8", ref.Len(), ref.Dim())
	}
	// The reference values, read independently of the converter's fast path.
	want := append(readNpy(t, "ok_f4/0000.features.npy"), readNpy(t, "ok_f4/0001.features.npy")...)
	for i, v := range ref.Vectors() {
		if v != want[i] {
			t.Fatalf("ok_f4 value %d = %v, want %v", i, v, want[i])
		}
	}
	for _, tc := range []struct {
		name string
		tol  float64 // relative to the f4 values
		ids  []string
	}{
		{"ok_f8", 0, nil},
		{"ok_f2", 1e-3, nil},
		{"ok_fortran", 0, nil},
		{"ok_f4_bigendian", 0, nil},
		{"ok_ids_bytes", 0, nil},
		{"ok_ids_int64", 0, []string{"0", "1", "2", "10", "11"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := convert(t, tc.name, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ix := open(t, out)
			if ix.Len() != ref.Len() || ix.Dim() != ref.Dim() {
				t.Fatalf("%d x %d, want %d x %d", ix.Len(), ix.Dim(), ref.Len(), ref.Dim())
			}
			for i, v := range ix.Vectors() {
				w := ref.Vectors()[i]
				if math.Abs(float64(v-w)) > tc.tol*math.Max(1, math.Abs(float64(w))) {
					t.Fatalf("value %d (row %d col %d) = %v, want %v", i, i/8, i%8, v, w)
				}
			}
			for r := 0; r < ix.Len(); r++ {
				got, _ := ix.ID(r)
				want, _ := ref.ID(r)
				if tc.ids != nil {
					want = tc.ids[r]
				}
				if got != want {
					t.Errorf("ID(%d) = %q, want %q", r, got, want)
				}
			}
		})
	}
	t.Run("unicode ids", func(t *testing.T) {
		out, err := convert(t, "ok_ids_unicode", Options{})
		if err != nil {
			t.Fatal(err)
		}
		ix := open(t, out)
		for r, want := range []string{"café.jpg", "日本.png", "x.gif"} {
			if got, _ := ix.ID(r); got != want {
				t.Errorf("ID(%d) = %q, want %q", r, got, want)
			}
		}
	})
}

// readNpy reads a little-endian C-order f4 file with npyio alone.
func readNpy(t *testing.T, name string) []float32 {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var v []float32
	if err := npy.Read(f, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRefusedInputs(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"bad_nan", "0001.features.npy: row 2, column 5 is NaN"},
		{"bad_inf", "0000.features.npy: row 1, column 0 is +Inf"},
		{"bad_f2_inf", "0000.features.npy: row 1, column 1 is +Inf"},
		{"bad_huge_norm", "0000.features.npy: row 1: squared norm 8e+38 is too large"},
		{"bad_count", "0000.object_ids.npy has 4 ids but"},
		{"bad_dim", "0001.features.npy has dim 9 but the shards before it have dim 8"},
		{"bad_rank1", "0000.features.npy: features have shape [24], want 2 dimensions"},
		{"bad_rank3", "0000.features.npy: features have shape [3 2 4], want 2 dimensions"},
		{"bad_int_features", "0000.features.npy: features have dtype <i4, want a float dtype"},
		{"bad_truncated", "0000.features.npy: truncated"},
		{"bad_garbage", "0000.features.npy: not an npy file"},
		{"bad_pickle", "0000.object_ids.npy: dtype \"|O\" is an object array"},
		{"bad_missing_half", "missing 0001.features.npy"},
		{"bad_gap", "shard 0001 is missing before 0002"},
		{"bad_duplicate_ids", `0001.object_ids.npy: row 0: id "0000000000000000000000000000000000000002.jpg" already appeared at ` + filepath.Join(fixtures, "bad_duplicate_ids", "0000.object_ids.npy") + " row 2"},
		{"does_not_exist", "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := convert(t, tc.name, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
				t.Errorf("a failed convert left %v behind", ents)
			}
		})
	}
	t.Run("empty dir", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Run(dir, filepath.Join(dir, "x.simidx"), Options{})
		if err == nil || !strings.Contains(err.Error(), "no shards found") {
			t.Fatalf("error %v", err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("left %v behind", ents)
		}
	})
}

func TestAllowDuplicateIDs(t *testing.T) {
	out, err := convert(t, "bad_duplicate_ids", Options{AllowDuplicateIDs: true})
	if err != nil {
		t.Fatal(err)
	}
	if ix := open(t, out); ix.Len() != 5 {
		t.Errorf("Len() = %d, want 5", ix.Len())
	}
}

func TestExistingOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.simidx")
	if err := os.WriteFile(out, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(fixtures, "ok_f4")
	if _, err := Run(src, out, Options{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("error %v, want 'already exists'", err)
	}
	// A failing forced conversion keeps the old file.
	if _, err := Run(filepath.Join(fixtures, "bad_nan"), out, Options{Overwrite: true}); err == nil {
		t.Fatal("bad_nan converted")
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Fatalf("existing file changed by a failed conversion: %q", b)
	}
	st, err := Run(src, out, Options{Overwrite: true})
	if err != nil || st.Rows != 5 || st.Shards != 2 || st.Dim != 8 {
		t.Fatalf("Run = %+v, %v", st, err)
	}
	open(t, out)
}

// TestPCASection checks that convert stores the section the pruned search reads, equal to one
// built from the index's own rows in one piece, and none when asked for none.
func TestPCASection(t *testing.T) {
	out, err := convert(t, "ok_f4", Options{PCARank: 3})
	if err != nil {
		t.Fatal(err)
	}
	ix := open(t, out)
	data, version, ok := ix.Section(index.SectionPCA)
	if !ok || version != prune.Version {
		t.Fatalf("PCA section: present %v, version %d", ok, version)
	}
	sec, err := prune.Decode(data, ix.Len(), ix.Dim())
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.Check(ix.Vectors()); err != nil {
		t.Fatal(err)
	}
	whole, err := prune.Build(ix.Vectors(), ix.Dim(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(whole.Encode(), data) {
		t.Error("the section convert streamed differs from one built from all rows at once")
	}

	out, err = convert(t, "ok_f4", Options{PCARank: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := open(t, out).Section(index.SectionPCA); ok {
		t.Error("PCARank -1 wrote a PCA section")
	}
}
