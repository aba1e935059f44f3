package shard

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"unsafe"

	"codeberg.org/sbinet/npyio/npy"

	"simsearch/internal/atomicfile"
)

// Write writes shard num of dir: ids as a numpy unicode array (<U…) and rows (len(ids) rows of
// dim float32) as a 2-D <f4 array, each file atomically (temporary file, fsync, rename).
func Write(dir string, num int, ids []string, rows []float32, dim int) error {
	if len(rows) != len(ids)*dim {
		return fmt.Errorf("shard %04d: %d ids but %d values for dim %d", num, len(ids), len(rows), dim)
	}
	base := filepath.Join(dir, fmt.Sprintf("%04d", num))
	if err := atomicWrite(base+IDsSuffix, func(w io.Writer) error { return npy.Write(w, ids) }); err != nil {
		return err
	}
	return atomicWrite(base+FeaturesSuffix, func(w io.Writer) error { return writeMatrix(w, rows, len(ids), dim) })
}

// writeMatrix writes a C-order <f4 array of shape (n, dim) in npy format 1.0. (npyio writes
// slices as 1-D arrays, and the seed's shards are 2-D.)
func writeMatrix(w io.Writer, rows []float32, n, dim int) error {
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", n, dim)
	// numpy pads the header with spaces and a newline so the data starts on a 64-byte boundary.
	pad := 64 - (10+len(dict)+1)%64
	if pad == 64 {
		pad = 0
	}
	hdr := dict + strings.Repeat(" ", pad) + "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(hdr)))
	b = append(b, hdr...)
	if _, err := w.Write(b); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	if !littleEndianHost {
		return binary.Write(w, binary.LittleEndian, rows)
	}
	_, err := w.Write(unsafe.Slice((*byte)(unsafe.Pointer(&rows[0])), 4*len(rows)))
	return err
}

// atomicWrite writes path durably through a temporary file (atomicfile.WriteFile), buffered.
func atomicWrite(path string, write func(io.Writer) error) error {
	err := atomicfile.WriteFile(path, true, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
