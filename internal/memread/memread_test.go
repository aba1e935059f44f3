package memread

import "testing"

func TestReadSeesEveryWorkersLastByte(t *testing.T) {
	data := make([]float32, 1000)
	if got := Read(data, 3); got != 0 {
		t.Fatalf("Read of zeros = %d", got)
	}
	// The last float of worker 1's part (floats [333, 666)) is at index 665; its top byte is the
	// last byte that worker copies.
	data[665] = 2 // 0x40000000: top byte 0x40
	if got := Read(data, 3); got != 0x40 {
		t.Fatalf("Read = %#x, want 0x40", got)
	}
}
