package query

// Faults counts page faults: minor ones map a page already in memory (the page cache), major
// ones wait for the disk. A one-shot query over a mapped index pays one per page it touches.
type Faults struct {
	Minor, Major int64
}

func (f Faults) since(before Faults) Faults {
	return Faults{Minor: f.Minor - before.Minor, Major: f.Major - before.Major}
}
