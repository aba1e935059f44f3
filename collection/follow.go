package collection

import (
	"os"
	"sync"
)

// Collection holds the current view of a collection for a long-running reader (a server) and
// moves to a newer view when a writer commits or compacts (Refresh; one caller at a time). Searches in flight keep the view they
// acquired; the old base is unmapped when the last of them releases it.
type Collection struct {
	path  string
	mu    sync.RWMutex
	cur   *View
	stamp stamp
}

// stamp is what a stat of the base and its log tells: when it changes, something may have been
// committed.
type stamp struct {
	base, log os.FileInfo
}

func (a stamp) same(b stamp) bool {
	eq := func(x, y os.FileInfo) bool {
		if x == nil || y == nil {
			return x == nil && y == nil
		}
		return os.SameFile(x, y) && x.Size() == y.Size() && x.ModTime().Equal(y.ModTime())
	}
	return eq(a.base, b.base) && eq(a.log, b.log)
}

func stampOf(path string) stamp {
	var s stamp
	s.base, _ = os.Stat(path)
	s.log, _ = os.Stat(LogPath(path))
	return s
}

// OpenCollection opens the collection at path.
func OpenCollection(path string) (*Collection, error) {
	st := stampOf(path)
	v, err := Open(path)
	if err != nil {
		return nil, err
	}
	return &Collection{path: path, cur: v, stamp: st}, nil
}

// Acquire returns the current view with a reference the caller must Release.
func (c *Collection) Acquire() *View {
	c.mu.RLock()
	defer c.mu.RUnlock()
	c.cur.acquire()
	return c.cur
}

// Current returns the current view without a reference: for its size and metadata only, which
// stay readable after the view is replaced.
func (c *Collection) Current() *View {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur
}

// Refresh moves to a newer view if the base or the log changed on disk (or if force) and the
// change is committed, once accept (if not nil) accepts the new view; otherwise the current view
// stays. It costs two stats when nothing changed. It reports whether it moved.
func (c *Collection) Refresh(force bool, accept func(*View) error) (bool, error) {
	st := stampOf(c.path)
	c.mu.RLock()
	same := st.same(c.stamp)
	c.mu.RUnlock()
	if same && !force {
		return false, nil
	}
	v, err := Open(c.path)
	if err != nil {
		return false, err
	}
	c.mu.RLock()
	old := c.cur
	c.mu.RUnlock()
	if v.ident == old.ident && v.logEnd == old.logEnd && !force {
		v.Release() // appended to but not committed yet: nothing new for readers
		c.mu.Lock()
		c.stamp = st
		c.mu.Unlock()
		return false, nil
	}
	if accept != nil {
		if err := accept(v); err != nil {
			v.Release()
			return false, err
		}
	}
	c.mu.Lock()
	old, c.cur, c.stamp = c.cur, v, st
	c.mu.Unlock()
	old.Release()
	return true, nil
}

// Close releases the current view.
func (c *Collection) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		c.cur.Release()
		c.cur = nil
	}
}
