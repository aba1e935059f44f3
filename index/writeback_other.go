//go:build !linux

package index

import "os"

// syncRangeAsync does nothing where there is no sync_file_range: Commit's fsync does it all.
func syncRangeAsync(*os.File) {}
