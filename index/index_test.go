package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"simsearch/kernel"
)

// build writes an index of count random dim-vectors with ids "id-<row>" and returns its path
// and the vectors.
func build(t testing.TB, dim, count int) (string, []float32) {
	t.Helper()
	return buildWith(t, dim, count, nil)
}

// testSections are two optional sections of odd lengths (kinds 7 and 9).
var testSections = []extraSection{{7, 1, []byte("seven")}, {9, 3, make([]byte, 131)}}

// fixHeaderCRC recomputes the header checksum of b for the version b claims.
func fixHeaderCRC(b []byte) {
	binary.LittleEndian.PutUint32(b[headerCRCAt:], headerCRC(b, binary.LittleEndian.Uint32(b[8:])))
}

// buildWith is build with optional sections.
func buildWith(t testing.TB, dim, count int, sections []extraSection) (string, []float32) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.simidx")
	w, err := Create(path, dim, false)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, uint64(count)))
	vecs := make([]float32, dim*count)
	for i := range vecs {
		vecs[i] = rng.Float32()*2 - 1
	}
	// Append in uneven chunks to exercise streaming.
	for lo := 0; lo < count; {
		hi := min(count, lo+1+lo%7)
		ids := make([]string, hi-lo)
		for i := range ids {
			ids[i] = fmt.Sprintf("id-%d", lo+i)
		}
		if err := w.Append(ids, vecs[lo*dim:hi*dim]); err != nil {
			t.Fatal(err)
		}
		lo = hi
	}
	w.SetMeta(Meta{Tool: "test", Sources: []Source{{IDs: "a", Features: "b", Rows: count, DType: "<f4"}}})
	for _, s := range sections {
		w.AddSection(s.kind, s.version, s.data)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return path, vecs
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ dim, count int }{{1, 0}, {1, 1}, {3, 5}, {1280, 37}, {17, 1000}} {
		t.Run(fmt.Sprintf("%dx%d", tc.count, tc.dim), func(t *testing.T) {
			path, vecs := build(t, tc.dim, tc.count)
			ix, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			if ix.Len() != tc.count || ix.Dim() != tc.dim {
				t.Fatalf("Len, Dim = %d, %d; want %d, %d", ix.Len(), ix.Dim(), tc.count, tc.dim)
			}
			got := ix.Vectors()
			if len(got) != len(vecs) {
				t.Fatalf("len(Vectors) = %d, want %d", len(got), len(vecs))
			}
			for i := range vecs {
				if got[i] != vecs[i] {
					t.Fatalf("value %d = %v, want %v", i, got[i], vecs[i])
				}
			}
			if len(got) > 0 && uintptr(unsafe.Pointer(&got[0]))%64 != 0 {
				t.Errorf("vectors start at %p, not 64-byte aligned", &got[0])
			}
			for r := 0; r < tc.count; r++ {
				id, err := ix.ID(r)
				if err != nil || id != fmt.Sprintf("id-%d", r) {
					t.Fatalf("ID(%d) = %q, %v", r, id, err)
				}
				if row := ix.Row(r); row[0] != vecs[r*tc.dim] {
					t.Fatalf("Row(%d)[0] = %v, want %v", r, row[0], vecs[r*tc.dim])
				}
			}
			if _, err := ix.ID(tc.count); err == nil {
				t.Error("ID(count) did not fail")
			}
			m, err := ix.Meta()
			if err != nil || m.Tool != "test" || len(m.Sources) != 1 || m.Created == "" {
				t.Errorf("Meta() = %+v, %v", m, err)
			}
			if err := ix.Verify(); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

// rewrite patches a header field of the file at path, optionally fixing the header CRC so that
// the deeper checks are reached.
func rewrite(t *testing.T, path string, fixCRC bool, patch func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patch(b)
	if fixCRC && len(b) >= HeaderSize {
		fixHeaderCRC(b)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejects(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		fixCRC bool
		patch  func(b []byte) []byte
		want   string
	}{
		{"empty", false, func(b []byte) []byte { return nil }, "shorter than the 4096-byte header"},
		{"short header", false, func(b []byte) []byte { return b[:100] }, "shorter than the 4096-byte header"},
		{"magic", false, func(b []byte) []byte { b[0] = 'X'; return b }, "wrong magic"},
		{"npy file", false, func(b []byte) []byte { copy(b, "\x93NUMPY"); return b }, "wrong magic"},
		{"version", true, func(b []byte) []byte { le.PutUint32(b[8:], 3); return b }, "format version 3"},
		{"version 1 with a section table", true, func(b []byte) []byte { le.PutUint32(b[8:], 1); return b }, "reserved header byte 104"},
		{"reserved after the table", true, func(b []byte) []byte { b[HeaderSize-1] = 1; return b }, "reserved header byte 4095"},
		{"reserved after the count", true, func(b []byte) []byte { b[reservedAt+4] = 1; return b }, "reserved header bytes 108-111"},
		{"too many sections", true, func(b []byte) []byte { le.PutUint32(b[reservedAt:], MaxSections+1); return b }, "at most 64"},
		{"section kind 0", true, func(b []byte) []byte { le.PutUint32(b[tableAt:], 0); return b }, "kind 0"},
		{"section duplicate kind", true, func(b []byte) []byte {
			le.PutUint32(b[tableAt+tableEntrySize:], le.Uint32(b[tableAt:]))
			return b
		}, "a second section of kind 7"},
		{"section misaligned", true, func(b []byte) []byte { le.PutUint64(b[tableAt+8:], le.Uint64(b[tableAt+8:])+8); return b }, "not 64-byte aligned"},
		{"section overlaps meta", true, func(b []byte) []byte { le.PutUint64(b[tableAt+8:], le.Uint64(b[72:])/64*64); return b }, "overlaps"},
		{"section out of order", true, func(b []byte) []byte {
			e0, e1 := b[tableAt:tableAt+tableEntrySize], b[tableAt+tableEntrySize:tableAt+2*tableEntrySize]
			t := append([]byte(nil), e0...)
			copy(e0, e1)
			copy(e1, t)
			return b
		}, "overlaps"},
		{"section past end", true, func(b []byte) []byte { le.PutUint64(b[tableAt+tableEntrySize+16:], 1<<40); return b }, "past the end"},
		{"section reserved", true, func(b []byte) []byte { b[tableAt+28] = 1; return b }, "reserved field"},
		{"header crc", false, func(b []byte) []byte { le.PutUint32(b[16:], 4); return b }, "header checksum"},
		{"header size", true, func(b []byte) []byte { le.PutUint32(b[12:], 512); return b }, "header size 512"},
		{"element type", true, func(b []byte) []byte { le.PutUint32(b[20:], 2); return b }, "element type 2"},
		{"metric", true, func(b []byte) []byte { le.PutUint32(b[32:], 9); return b }, "metric 9"},
		{"flags", true, func(b []byte) []byte { le.PutUint32(b[36:], 1); return b }, "flags"},
		{"dim zero", true, func(b []byte) []byte { le.PutUint32(b[16:], 0); return b }, "dim 0"},
		{"dim count mismatch", true, func(b []byte) []byte { le.PutUint32(b[16:], 4); return b }, "vectors length"},
		{"count overflow", true, func(b []byte) []byte { le.PutUint64(b[24:], 1<<62); return b }, "vectors length"},
		{"vectors offset", true, func(b []byte) []byte { le.PutUint64(b[40:], 8192); return b }, "vectors offset"},
		{"ids overlap", true, func(b []byte) []byte { le.PutUint64(b[56:], le.Uint64(b[56:])-8); return b }, "overlaps"},
		{"ids misaligned", true, func(b []byte) []byte { le.PutUint64(b[56:], le.Uint64(b[56:])+4); return b }, "aligned"},
		{"ids too short", true, func(b []byte) []byte { le.PutUint64(b[64:], 16); return b }, "ids length"},
		{"meta past end", true, func(b []byte) []byte { le.PutUint64(b[80:], 1<<40); return b }, "past the end"},
		{"meta offset huge", true, func(b []byte) []byte { le.PutUint64(b[72:], math.MaxUint64-7); return b }, "past the end"},
		{"truncated", false, func(b []byte) []byte { return b[:len(b)-1] }, "past the end"},
		{"truncated in vectors", false, func(b []byte) []byte { return b[:HeaderSize+100] }, "past the end"},
		{"trailing bytes", false, func(b []byte) []byte { return append(b, 0) }, "trailing bytes"},
		{"first id offset", false, func(b []byte) []byte {
			le.PutUint64(b[le.Uint64(b[56:]):], 3)
			return b
		}, "first id offset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := buildWith(t, 3, 5, testSections)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b = tc.patch(b)
			if tc.fixCRC {
				fixHeaderCRC(b)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			ix, err := Open(path)
			if err == nil {
				ix.Close()
				t.Fatalf("Open succeeded, want error containing %q", tc.want)
			}
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q: want ErrFormat naming the file and containing %q", err, tc.want)
			}
		})
	}
}

func TestVerifyFindsDamage(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   func(h header) uint64
		want string
	}{
		{"vector byte", func(h header) uint64 { return h.vecOff + 5 }, "vectors section checksum"},
		{"id byte", func(h header) uint64 { return h.idsOff + h.idsLen - 1 }, "ids section checksum"},
		{"meta byte", func(h header) uint64 { return h.metaOff + 1 }, "meta section checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := build(t, 4, 10)
			ix, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			at := tc.at(ix.h)
			ix.Close()
			rewrite(t, path, false, func(b []byte) { b[at] ^= 0x40 })
			if ix, err = Open(path); err != nil {
				t.Fatal(err) // damage past the header is for Verify to find
			}
			defer ix.Close()
			if err := ix.Verify(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify() = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestWriterRejectsAndLeavesNothing(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name string
		ids  []string
		rows []float32
		want string
	}{
		{"nan", []string{"a", "b"}, []float32{1, 2, 3, nan}, "row 1, column 1"},
		{"inf", []string{"a"}, []float32{float32(math.Inf(-1)), 0}, "row 0, column 0"},
		{"duplicate", []string{"a", "b", "a"}, make([]float32, 6), `row 2: id "a" duplicates index row 0`},
		{"empty id", []string{"a", ""}, make([]float32, 4), "empty id"},
		{"bad utf8", []string{"\xff"}, make([]float32, 2), "UTF-8"},
		{"nul", []string{"a\x00b"}, make([]float32, 2), "NUL"},
		{"shape", []string{"a"}, make([]float32, 3), "1 ids but 3 values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.simidx")
			w, err := Create(path, 2, false)
			if err != nil {
				t.Fatal(err)
			}
			err = w.Append(tc.ids, tc.rows)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Append error %v, want %q", err, tc.want)
			}
			if err := w.Commit(); err == nil {
				t.Fatal("Commit after a failed Append succeeded")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}

func TestDuplicatesAllowed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.simidx")
	w, err := Create(path, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]string{"a", "a"}, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := ix.Verify(); err != nil {
		t.Errorf("Verify of an index that allows duplicates: %v", err)
	}
	if m, _ := ix.Meta(); !m.DuplicateIDs {
		t.Error("metadata does not record duplicate_ids")
	}
}

func TestAbortRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "x.simidx"), 2, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]string{"a"}, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// FuzzParseHeader feeds arbitrary headers and file sizes to the validator: it must never panic,
// and whatever it accepts must describe sections that lie inside the file, in order.
func FuzzParseHeader(f *testing.F) {
	h := layout(3, 5, 20, 10)
	f.Add(h.marshal(), h.end())
	f.Add(make([]byte, HeaderSize), uint64(HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte, size uint64) {
		if len(b) >= headerCRCAt+4 {
			// Most mutations would only exercise the CRC check; keep the CRC valid half the time.
			if size%2 == 0 && len(b) >= HeaderSize {
				fixHeaderCRC(b)
			}
		}
		h, err := parseHeader(b, size)
		if err != nil {
			return
		}
		if h.vecOff < HeaderSize || h.idsOff < h.vecOff+h.vecLen || h.metaOff < h.idsOff+h.idsLen || h.end() != size {
			t.Fatalf("accepted inconsistent header %+v for size %d", h, size)
		}
		if h.idsLen < (h.count+1)*8 {
			t.Fatalf("accepted ids length %d for count %d", h.idsLen, h.count)
		}
	})
}

// Large finite values overflow a row's squared norm to +Inf; the writer must look closer and
// accept them, and still find a NaN after such a row, with its exact position.
// Finite rows whose squared norm reaches MaxSquaredNorm are refused (before, they were accepted
// and every distance to them was +Inf); rows just below it are kept, and no distance between two
// of them overflows. The kernel's norm is exact enough only as a filter: the bound is exact.
func TestFiniteCheckOverflowingNorms(t *testing.T) {
	edge := float32(math.Sqrt(MaxSquaredNorm / 3 * (1 - 1e-6))) // three of them: just below
	over := float32(math.Sqrt(MaxSquaredNorm/3)) * (1 + 1e-6)   // just above
	many := make([]float32, 3*5000)                             // more than one block of the check
	many[3*4500] = 3e38
	nan := make([]float32, 3*5000)
	nan[3*4700+2] = float32(math.NaN())
	for _, tc := range []struct {
		name        string
		rows        []float32
		row, col    int // the refused row (and column, for a non-finite value); -1: accepted
		normRefusal bool
	}{
		{"overflowing norm", []float32{3e38, -3e38, 1, 2, 3, 4}, 0, 0, true},
		{"just above the bound", []float32{1, 2, 3, over, over, over}, 1, 0, true},
		{"just below the bound", []float32{edge, edge, edge, -edge, -edge, -edge}, -1, 0, false},
		{"in a later block", many, 4500, 0, true},
		{"NaN in a later block", nan, 4700, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := Create(filepath.Join(t.TempDir(), "x.simidx"), 3, false)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			ids := make([]string, len(tc.rows)/3)
			for i := range ids {
				ids[i] = fmt.Sprint("r", i)
			}
			err = w.Append(ids, tc.rows)
			var ne *NormError
			var nf *NonFiniteError
			switch {
			case tc.row < 0:
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				// The two rows are opposite: their distance is the largest possible, and finite.
				var d [1]float32
				kernel.L2SquaredBlock(tc.rows[:3], tc.rows[3:6], d[:])
				if math.IsInf(float64(d[0]), 0) {
					t.Errorf("distance between two accepted rows overflowed")
				}
			case tc.normRefusal:
				if !errors.As(err, &ne) || ne.Row != tc.row {
					t.Fatalf("Append = %v, want a NormError at row %d", err, tc.row)
				}
			default:
				if !errors.As(err, &nf) || nf.Row != tc.row || nf.Col != tc.col {
					t.Fatalf("Append = %v, want a non-finite value at row %d column %d", err, tc.row, tc.col)
				}
			}
		})
	}
}

func TestSections(t *testing.T) {
	path, vecs := buildWith(t, 5, 9, testSections)
	ix, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.FormatVersion() != 2 {
		t.Errorf("FormatVersion = %d, want 2", ix.FormatVersion())
	}
	for _, s := range testSections {
		data, version, ok := ix.Section(s.kind)
		if !ok || version != s.version || string(data) != string(s.data) {
			t.Errorf("Section(%d) = %q, %d, %v; want %q, %d", s.kind, data, version, ok, s.data, s.version)
		}
		if uintptr(unsafe.Pointer(&data[0]))%extraAlign != 0 {
			t.Errorf("Section(%d) starts at %p, not %d-byte aligned", s.kind, &data[0], extraAlign)
		}
	}
	if _, _, ok := ix.Section(8); ok {
		t.Error("Section(8) found a section that was never written")
	}
	if got := ix.Row(8)[4]; got != vecs[8*5+4] {
		t.Errorf("Row(8)[4] = %v, want %v", got, vecs[8*5+4])
	}
	if err := ix.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	ix.Close()

	// A damaged optional section is found by Verify, not by Open.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ix, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Verify(); err == nil || !strings.Contains(err.Error(), "optional (kind 9) section checksum") {
		t.Errorf("Verify of a damaged section: %v", err)
	}
}

// TestVersion1 checks that a version-1 file (the same bytes with version 1, no section table,
// the header CRC over bytes 0-99 only) still opens and verifies.
func TestVersion1(t *testing.T) {
	path, vecs := build(t, 3, 4)
	rewrite(t, path, true, func(b []byte) { binary.LittleEndian.PutUint32(b[8:], 1) })
	ix, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.FormatVersion() != 1 || ix.Len() != 4 || ix.Row(3)[2] != vecs[11] {
		t.Errorf("version %d, %d rows, Row(3)[2] = %v", ix.FormatVersion(), ix.Len(), ix.Row(3)[2])
	}
	if err := ix.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := binary.LittleEndian.Uint32(b[headerCRCAt:]), crc32.Checksum(b[:headerCRCAt], castagnoli); got != want {
		t.Errorf("version-1 header CRC %08x is not the CRC of bytes 0-99 (%08x)", got, want)
	}
}
