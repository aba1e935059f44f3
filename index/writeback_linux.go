package index

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncRangeAsync starts writeback of f's dirty pages without waiting for it.
func syncRangeAsync(f *os.File) {
	unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
