package index

import (
	"encoding/binary"
	"errors"
)

// The vectors are used in place as []float32, so the host must store float32 the way the file
// does: little-endian. Every platform simsearch targets (amd64, arm64) does.
var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func checkHost() error {
	if !littleEndianHost {
		return errors.New("simsearch index files are little-endian and are used in place; this big-endian host cannot map them")
	}
	return nil
}
