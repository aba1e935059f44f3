package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
	"weak"

	"simsearch/collection"
	"simsearch/dupes"
	"simsearch/internal/fault"
	"simsearch/layout"
	"simsearch/pil"
	"simsearch/prune"
	"simsearch/query"
	"simsearch/thumb"
)

// explorer holds what the page's views need beyond a search: the thumbnail cache and the last
// duplicate groups computed (an all-pairs pass is worth keeping).
type explorer struct {
	thumbs *thumb.Cache
	mu     sync.Mutex // one all-pairs pass at a time
	// The groups are those of one view of the collection at one distance: a followed update or
	// a reload swaps the searcher's view, and the groups are computed again. A weak pointer
	// keeps no old view alive, and one made from another view never compares equal to it.
	dupesView weak.Pointer[collection.View]
	dupesD    float32
	groups    []dupes.NamedGroup
}

const (
	thumbSize = 320 // pixels, longest side: sharp in a 160-pixel card on a high-density screen
	mapSample = 300 // rows of the collection on the map when no photo is chosen
	maxMapK   = 500
	maxGroups = 200 // groups the duplicates view lists
)

// routeExplore adds the page's assets and the endpoints of its views.
func (srv *Server) routeExplore(page fs.FS) error {
	dir := srv.opt.ThumbDir
	if dir == "" {
		var err error
		if dir, err = thumb.DefaultDir(); err != nil {
			return err
		}
	}
	c, err := thumb.New(dir, thumbSize)
	if err != nil {
		return err
	}
	srv.ex = &explorer{thumbs: c}
	files := http.FileServerFS(page)
	for _, f := range []string{"/app.js", "/app.css"} {
		srv.mux.Handle("GET "+f, files)
	}
	srv.mux.HandleFunc("GET /thumbs/{id...}", srv.thumbnail)
	srv.mux.HandleFunc("GET /search/id/{id...}", srv.searchID)
	if srv.local != nil { // these read all the index's vectors, which a cluster's collection keeps to itself
		srv.mux.HandleFunc("GET /dupes", srv.dupes)
		srv.mux.HandleFunc("GET /map", srv.mapPoints)
	}
	return nil
}

// readMapped runs f, which reads the index's mapped pages, as a search does: an index file
// modified in place (changed returns why) is reported rather than read, and a truncation that
// races with f is caught (fault.Guard) and reported instead of killing the process with SIGBUS.
// f reports its own errors through its closure.
func readMapped(changed func() error, f func()) error {
	if err := changed(); err != nil {
		return err
	}
	return fault.Guard(f)
}

// vector returns the stored vector of id, answering the client itself when there is none: 404
// for an id the collection does not hold, 500 for an index that cannot be read (modified in
// place, or its ids damaged), 502 for a cluster that did not answer.
func (srv *Server) vector(w http.ResponseWriter, id string) ([]float32, bool) {
	v, err := srv.s.Vector(id)
	switch {
	case err == nil:
		return v, true
	case errors.Is(err, query.ErrNoID):
		writeError(w, http.StatusNotFound, "no such id in the index")
	case srv.local != nil: // the index cannot be read (modified in place, or its ids damaged)
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeError(w, http.StatusBadGateway, err.Error())
	}
	return nil, false
}

// searchID answers a search by a stored vector: "more like this" for a photo of the collection.
func (srv *Server) searchID(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	j, ok := srv.ask(w, r)
	if !ok {
		return
	}
	if j.vector, ok = srv.vector(w, r.PathValue("id")); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), srv.opt.Timeout)
	defer cancel()
	srv.answer(w, srv.b.submit(ctx, j), start, map[string]float64{})
}

// thumbnail serves a small JPEG of an object, made once and then read from the cache.
func (srv *Server) thumbnail(w http.ResponseWriter, r *http.Request) {
	t, status, msg := srv.thumbOf(r.Context(), r.PathValue("id"))
	if status != http.StatusOK {
		writeError(w, status, msg)
		return
	}
	// The ETag changes when the photo does; the browser may keep the thumbnail a day without
	// asking, and revalidates it cheaply (304) after that.
	w.Header().Set("ETag", t.ETag)
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Header().Set("Content-Type", "image/jpeg")
	http.ServeFile(w, r, t.Path)
}

// thumbOf returns the thumbnail of id, or an HTTP status and message.
func (srv *Server) thumbOf(ctx context.Context, id string) (thumb.Thumb, int, string) {
	if srv.objects == nil {
		return thumb.Thumb{}, http.StatusNotFound, "this server has no --objects folder"
	}
	if !validObjectID(id) {
		return thumb.Thumb{}, http.StatusBadRequest, "invalid id"
	}
	f, st, _, err := srv.openObject(id)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return thumb.Thumb{}, http.StatusNotFound, "no such object"
	case err != nil:
		return thumb.Thumb{}, http.StatusForbidden, id + ": " + err.Error()
	}
	defer f.Close()
	// Making a thumbnail decodes the photo: bounded to the cores, as searches are.
	select {
	case srv.decode <- struct{}{}:
	case <-ctx.Done():
		return thumb.Thumb{}, http.StatusServiceUnavailable, "timed out waiting to decode"
	}
	defer func() { <-srv.decode }()
	t, err := srv.ex.thumbs.Get(id, st, func() ([]byte, error) { return io.ReadAll(io.LimitReader(f, srv.opt.MaxBody*10)) })
	if err != nil {
		return t, http.StatusUnprocessableEntity, "cannot make a thumbnail: " + err.Error()
	}
	return t, http.StatusOK, ""
}

// fileInfo is one photo of a duplicate group, as the page shows it.
type fileInfo struct {
	ID     string `json:"id"`
	Bytes  int64  `json:"bytes,omitempty"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Error  string `json:"error,omitempty"`
}

type dupesGroup struct {
	dupes.NamedGroup
	Files []fileInfo `json:"files"`
}

// dupes answers the groups of near-duplicates within ?max_distance= (default
// dupes.DefaultMaxDistance), with each photo's file size and resolution.
func (srv *Server) dupes(w http.ResponseWriter, r *http.Request) {
	d := float32(dupes.DefaultMaxDistance)
	if s := r.URL.Query().Get("max_distance"); s != "" {
		v, err := strconv.ParseFloat(s, 32)
		if err != nil || v < 0 || v > 1e6 {
			writeError(w, http.StatusBadRequest, "max_distance must be a number from 0 to 1e6")
			return
		}
		d = float32(v)
	}
	start := time.Now()
	groups, err := srv.findDupes(d)
	if err != nil {
		status := http.StatusInternalServerError // the index cannot be read
		if errors.Is(err, dupes.ErrTooManyPairs) {
			status = http.StatusUnprocessableEntity // a distance far too large for the collection
		}
		writeError(w, status, err.Error())
		return
	}
	total := len(groups)
	groups = groups[:min(len(groups), maxGroups)]
	out := make([]dupesGroup, len(groups))
	for i, g := range groups {
		out[i] = dupesGroup{NamedGroup: g, Files: make([]fileInfo, len(g.IDs))}
		for j, id := range g.IDs {
			out[i].Files[j] = srv.describe(id)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"max_distance": d, "groups": out, "total_groups": total,
		"timings_ms": map[string]float64{"total": ms(time.Since(start))},
	})
}

// findDupes returns the groups of near-duplicates within d in the collection's current view:
// those computed last if they are of this view and d, else from an all-pairs pass, which holds
// the view until it is done (a Reopen or a followed update swapping the searcher's view is not
// held up by it, and the old view's pages stay mapped until it lets go).
func (srv *Server) findDupes(d float32) ([]dupes.NamedGroup, error) {
	ex := srv.ex
	ex.mu.Lock()
	defer ex.mu.Unlock()
	v := srv.local.Acquire()
	defer v.Release()
	if key := weak.Make(v); ex.dupesView == key && ex.dupesD == d && v.Changed() == nil {
		return ex.groups, nil
	}
	var (
		named []dupes.NamedGroup
		err   error
	)
	if ferr := readMapped(v.Changed, func() {
		var rows []float32
		var idOf func(int) (string, error)
		if rows, idOf, err = v.Rows(); err != nil {
			return
		}
		var groups []dupes.Group
		if groups, _, err = dupes.Find(rows, v.Dim(), dupes.Options{MaxDistance: d}); err != nil {
			return
		}
		named, err = dupes.Name(groups, idOf)
	}); ferr != nil {
		return nil, ferr
	}
	if err != nil {
		return nil, err
	}
	ex.dupesView, ex.dupesD, ex.groups = weak.Make(v), d, named
	return named, nil
}

// describe returns a photo's file size and resolution, read from its header: the page shows
// the groups at once, and each thumbnail is made when the browser asks for it.
func (srv *Server) describe(id string) fileInfo {
	fi := fileInfo{ID: id}
	if srv.objects == nil || !validObjectID(id) {
		return fi
	}
	f, st, _, err := srv.openObject(id)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fi.Error = "not in the objects folder"
		return fi
	case err != nil:
		fi.Error = err.Error()
		return fi
	}
	defer f.Close()
	fi.Bytes = st.Size()
	if fi.Width, fi.Height, err = pil.ReadSize(f, st.Size()); err != nil {
		fi.Error = err.Error()
	}
	return fi
}

// mapPoint is one photo on the map, at (X, Y) in [0, 1]²: the centre of its thumbnail.
type mapPoint struct {
	ID       string   `json:"id"`
	X        float64  `json:"x"`
	Y        float64  `json:"y"`
	Distance *float64 `json:"distance,omitempty"` // from the centre photo, on a neighbourhood map
}

// mapPoints lays out a query's neighbourhood (?id=&k=, the k nearest of the photo id) or a
// sample of the collection on the plane of their two principal components.
func (srv *Server) mapPoints(w http.ResponseWriter, r *http.Request) {
	var (
		ids   []string
		data  []float32
		dists []float64
		count int
		err   error
	)
	if id := r.URL.Query().Get("id"); id != "" {
		k := 60
		if s := r.URL.Query().Get("k"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 2 || v > maxMapK {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("k must be a whole number from 2 to %d", maxMapK))
				return
			}
			k = v
		}
		v, ok := srv.vector(w, id)
		if !ok {
			return
		}
		if ids, data, dists, count, err = srv.neighbourhood(r.Context(), v, k); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
	} else if ids, data, count, err = srv.sample(mapSample); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// Each photo is a square thumbnail of side tile (of the map's side): larger when there are
	// few, and pushed apart where the layout crowds them.
	tile := min(0.11, max(0.03, 0.6/math.Sqrt(float64(len(ids)))))
	xy := layout.Separate(layout.Spread(data, len(data)/max(1, len(ids))), tile)
	points := make([]mapPoint, len(ids))
	for i, id := range ids {
		points[i] = mapPoint{ID: id, X: xy[2*i], Y: xy[2*i+1]}
		if dists != nil {
			points[i].Distance = &dists[i]
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"points": points, "count": count, "tile": tile})
}

// neighbourhood returns the k nearest rows to v: their ids, a copy of their vectors, their
// distances, and the collection's size. It holds the current view as findDupes does.
func (srv *Server) neighbourhood(ctx context.Context, v []float32, k int) ([]string, []float32, []float64, int, error) {
	hits, _, err := srv.s.SearchContext(ctx, v, query.Request{K: k, MaxDistance: prune.NoLimit, Scan: srv.opt.Scan})
	if err != nil {
		return nil, nil, nil, 0, err
	}
	cur := srv.local.Acquire()
	defer cur.Release()
	var (
		ids   []string
		data  []float32
		dists []float64
	)
	if ferr := readMapped(cur.Changed, func() {
		for _, h := range hits[0] {
			var hv []float32
			var ok bool
			if hv, ok, err = cur.Vector(h.ID); err != nil {
				return
			} else if !ok { // removed by an update since the search
				continue
			}
			ids, data, dists = append(ids, h.ID), append(data, hv...), append(dists, h.Distance)
		}
	}); ferr != nil {
		return nil, nil, nil, 0, ferr
	}
	return ids, data, dists, cur.Len(), err
}

// sample returns m rows spread evenly through the collection (all of them if it holds fewer), in
// id order: their ids, a copy of their vectors, and the collection's size. It holds the current
// view as findDupes does.
func (srv *Server) sample(m int) ([]string, []float32, int, error) {
	v := srv.local.Acquire()
	defer v.Release()
	n := v.Len()
	m = min(n, m)
	ids := make([]string, 0, m)
	data := make([]float32, 0, m*v.Dim())
	i := 0
	var err error
	if ferr := readMapped(v.Changed, func() {
		err = v.Each(func(id string, _ collection.FileState, vec []float32) error {
			// Row i is taken when it is the first at or past the next of m evenly spaced places:
			// the same map every time.
			if len(ids) < m && i*m >= len(ids)*n {
				ids, data = append(ids, id), append(data, vec...)
			}
			i++
			return nil
		})
	}); ferr != nil {
		return nil, nil, 0, ferr
	}
	return ids, data, n, err
}
