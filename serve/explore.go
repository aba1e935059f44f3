package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"simsearch/collection"
	"simsearch/dupes"
	"simsearch/layout"
	"simsearch/prune"
	"simsearch/query"
	"simsearch/thumb"
)

// explorer holds what the page's views need beyond a search: the thumbnail cache and the last
// duplicate groups computed (an all-pairs pass is worth keeping).
type explorer struct {
	thumbs *thumb.Cache
	mu     sync.Mutex // one all-pairs pass at a time
	dupesD float32
	groups []dupes.NamedGroup
	done   bool
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

// searchID answers a search by a stored vector: "more like this" for a photo of the collection.
func (srv *Server) searchID(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	k, ok := srv.k(w, r)
	if !ok {
		return
	}
	v, err := srv.s.Vector(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "no such id in the index")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), srv.opt.Timeout)
	defer cancel()
	srv.answer(w, srv.b.submit(ctx, &job{vector: v, k: k}), start, map[string]float64{})
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
	ex := srv.ex
	ex.mu.Lock()
	if !ex.done || ex.dupesD != d {
		named, err := srv.findDupes(d)
		if err != nil {
			ex.mu.Unlock()
			writeError(w, http.StatusUnprocessableEntity, err.Error())
			return
		}
		ex.groups, ex.dupesD, ex.done = named, d, true
	}
	groups := ex.groups
	ex.mu.Unlock()
	total := len(groups)
	groups = groups[:min(len(groups), maxGroups)]
	out := make([]dupesGroup, len(groups))
	for i, g := range groups {
		out[i] = dupesGroup{NamedGroup: g, Files: make([]fileInfo, len(g.IDs))}
		for j, id := range g.IDs {
			out[i].Files[j] = srv.describe(r.Context(), id)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"max_distance": d, "groups": out, "total_groups": total,
		"timings_ms": map[string]float64{"total": ms(time.Since(start))},
	})
}

// findDupes runs the all-pairs pass on the collection's current view, which it holds until it is
// done: a Reopen or a followed update swapping the searcher's view is not held up by it, and the
// old view's pages stay mapped until it lets go.
func (srv *Server) findDupes(d float32) ([]dupes.NamedGroup, error) {
	v := srv.local.Acquire()
	defer v.Release()
	rows, idOf, err := v.Rows()
	if err != nil {
		return nil, err
	}
	groups, _, err := dupes.Find(rows, v.Dim(), dupes.Options{MaxDistance: d})
	if err != nil {
		return nil, err
	}
	return dupes.Name(groups, idOf)
}

// describe returns a photo's file size and resolution (learnt when its thumbnail was made).
func (srv *Server) describe(ctx context.Context, id string) fileInfo {
	fi := fileInfo{ID: id}
	if srv.objects == nil || !validObjectID(id) {
		return fi
	}
	if f, st, _, err := srv.openObject(id); err == nil {
		fi.Bytes = st.Size()
		f.Close()
	}
	t, status, msg := srv.thumbOf(ctx, id)
	if status != http.StatusOK {
		fi.Error = msg
		return fi
	}
	fi.Width, fi.Height = t.Width, t.Height
	return fi
}

// mapPoint is one photo on the map, at (X, Y) in [0, 1]².
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
		v, err := srv.local.Vector(id)
		if err != nil {
			writeError(w, http.StatusNotFound, "no such id in the index")
			return
		}
		hits, _, err := srv.s.SearchContext(r.Context(), v, query.Request{K: k, MaxDistance: prune.NoLimit, Scan: srv.opt.Scan})
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		for _, h := range hits[0] {
			hv, err := srv.local.Vector(h.ID)
			if err != nil {
				writeError(w, http.StatusInternalServerError, err.Error())
				return
			}
			ids, data, dists = append(ids, h.ID), append(data, hv...), append(dists, h.Distance)
		}
		count = srv.local.Index().Len()
	} else if ids, data, count, err = srv.sample(mapSample); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	xy := layout.Spread(data, len(data)/max(1, len(ids)))
	points := make([]mapPoint, len(ids))
	for i, id := range ids {
		points[i] = mapPoint{ID: id, X: xy[2*i], Y: xy[2*i+1]}
		if dists != nil {
			points[i].Distance = &dists[i]
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"points": points, "count": count})
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
	err := v.Each(func(id string, _ collection.FileState, vec []float32) error {
		// Row i is taken when it is the first at or past the next of m evenly spaced places:
		// the same map every time.
		if len(ids) < m && i*m >= len(ids)*n {
			ids, data = append(ids, id), append(data, vec...)
		}
		i++
		return nil
	})
	return ids, data, n, err
}
