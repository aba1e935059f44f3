// Package serve is simsearch's search server: the model and the index are loaded once, image
// and vector queries arrive over HTTP, and a page at / shows the nearest images.
package serve

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	simembed "simsearch/embed"
	"simsearch/index"
	"simsearch/pil"
	"simsearch/prune"
	"simsearch/query"
)

//go:embed page
var page embed.FS

// DefaultDecodeMemory is the decode budget a server is given unless told otherwise (serve's
// --decode-memory): all uploads being decoded together hold at most this, and one image that
// would hold more than three quarters of it is refused (the last quarter is kept for small
// images). Smaller than extract's 1 GiB, and strict where extract decodes such an image alone:
// with 8 hostile uploads at once a server stays under 500 MB. PNG and single-scan JPEG images
// are decoded row by row into the resize and cost little at any size; the limit bites on
// images their decoder holds whole: a WebP over about 64 million pixels (27 million lossless),
// a progressive JPEG over 32 to 64 million, a BMP over 48 million, an interlaced PNG over 64
// million, a TIFF over about 16 million.
const DefaultDecodeMemory = 256 << 20

// bigPixels is the size above which an upload is decoded in the lane for big images: at most
// half the cores decode those at once, besides the small ones, so that a flood of big images
// never keeps small ones waiting.
const bigPixels = 4096 * 4096

// Options configure a Server.
type Options struct {
	Objects  string        // folder of the images the ids name (object-store fan-out or flat); "" serves none
	MaxBody  int64         // largest request body; 0 means 20 MiB
	MaxK     int           // largest k a request may ask for, and the most a range search answers; 0 means 1000
	Timeout  time.Duration // per request; 0 means 30 s
	MaxBatch int           // queries per batch; 0 means 8
	Scan     prune.Scan    // pruned or full scan; the zero value chooses per query
	Log      *log.Logger   // nil: no request log
	// ThumbDir holds the page's thumbnails, made once each; "" means thumb.DefaultDir.
	ThumbDir string
}

// Searcher is what the server searches: a query.Searcher over a local index, or a cluster's
// collection (cluster.Searcher). Its model must be loaded.
type Searcher interface {
	Model() *simembed.Model
	Dim() int
	Len() int
	// SearchContext returns the nearest neighbours of each query (row-major, Dim floats each)
	// that req asks for and, per query, how they were found. Once ctx ends (every request of the
	// batch gone or out of time) the answer is no longer awaited: a cluster stops asking.
	SearchContext(ctx context.Context, queries []float32, req query.Request) ([][]query.Hit, []query.Scanned, error)
	// Vector returns the vector stored for id, for "more like this".
	Vector(id string) ([]float32, error)
	// Changed says why answers would be wrong or incomplete now (an index file modified in
	// place, a cluster missing shards), or nil.
	Changed() error
}

// Server answers queries over HTTP with a Searcher whose model is loaded.
type Server struct {
	s       Searcher
	opt     Options
	b       *batcher
	objects *os.Root
	ready   atomic.Bool
	decode  chan struct{} // bounds concurrent decodes to the cores
	big     chan struct{} // and big images' to half of them, besides
	mux     *http.ServeMux
	csp     string    // the Content-Security-Policy of every response
	ex      *explorer // the page's views: thumbnails, duplicates, the map
	// local is s when it searches an index file: the views that read its vectors (search by
	// id, duplicates, the map) need it; nil for a cluster's collection.
	local *query.Searcher
}

// New makes a server; Run serves it.
func New(s Searcher, opt Options) (*Server, error) {
	if s.Model() == nil {
		return nil, errors.New("serve: the searcher has no model loaded")
	}
	if opt.MaxBody <= 0 {
		opt.MaxBody = 20 << 20
	}
	if opt.MaxK <= 0 {
		opt.MaxK = 1000
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 8
	}
	srv := &Server{s: s, opt: opt, b: newBatcher(s, opt.MaxBatch, opt.MaxK, opt.Scan), decode: make(chan struct{}, runtime.GOMAXPROCS(0)), mux: http.NewServeMux()}
	srv.big = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))
	srv.local, _ = s.(*query.Searcher)
	if opt.Objects != "" {
		root, err := os.OpenRoot(opt.Objects)
		if err != nil {
			return nil, fmt.Errorf("--objects: %w", err)
		}
		srv.objects = root
	}
	sub, _ := fs.Sub(page, "page")
	csp, err := contentPolicy(sub)
	if err != nil {
		return nil, err
	}
	srv.csp = csp
	srv.mux.Handle("GET /{$}", http.FileServerFS(sub))
	srv.mux.HandleFunc("GET /healthz", srv.healthz)
	srv.mux.HandleFunc("GET /capabilities", srv.capabilities)
	srv.mux.HandleFunc("POST /search", srv.searchImage)
	srv.mux.HandleFunc("POST /search/vector", srv.searchVector)
	srv.mux.HandleFunc("GET /objects/{id...}", srv.object)
	if err := srv.routeExplore(sub); err != nil {
		return nil, err
	}
	return srv, nil
}

// Handler returns the server's HTTP handler, with panic recovery and the request log.
func (srv *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", srv.csp)
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		defer func() {
			if p := recover(); p != nil {
				if srv.opt.Log != nil {
					srv.opt.Log.Printf("panic serving %s %s: %v", r.Method, r.URL.Path, p)
				}
				if !rec.wrote {
					writeError(rec, http.StatusInternalServerError, "internal error")
				}
			}
			if srv.opt.Log != nil {
				srv.opt.Log.Printf("%s %s %d %.1fms", r.Method, r.URL.RequestURI(), rec.status, ms(time.Since(start)))
			}
		}()
		srv.mux.ServeHTTP(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status, s.wrote = code, true
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Run serves on ln until ctx ends, then stops accepting, lets in-flight requests finish (up to
// drain) and returns nil.
func (srv *Server) Run(ctx context.Context, ln net.Listener, drain time.Duration) error {
	bctx, stopBatcher := context.WithCancel(context.Background())
	defer stopBatcher()
	go srv.b.run(bctx)
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       srv.opt.Timeout,
		WriteTimeout:      srv.opt.Timeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	if srv.opt.Log != nil {
		hs.ErrorLog = srv.opt.Log
	}
	errc := make(chan error, 1)
	srv.ready.Store(true)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	srv.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("draining: %w", err)
	}
	if srv.objects != nil {
		srv.objects.Close()
	}
	return nil
}

// Reload opens the index file again and serves from it once its pages are mapped, without
// failing requests in flight (query.Searcher.Reopen); on error the old index stays. An updated
// index must be renamed over the old path: a file modified in place fails requests (with 500 and
// the reason) until a reload or a restart.
// It returns the number of vectors now served.
func (srv *Server) Reload() (int, error) {
	if srv.local == nil {
		return 0, errors.New("a cluster's collection is updated in place by push: there is nothing to reload")
	}
	ix, err := srv.local.Reopen()
	if err != nil {
		return 0, err
	}
	return ix.Len(), nil
}

func (srv *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if !srv.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	if err := srv.s.Changed(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "count": srv.s.Len(), "dim": srv.s.Dim()})
}

// capabilities lists the page's views this server answers: a cluster's collection keeps its
// vectors to itself, so the views that read them all (duplicates, the map) need an index file.
func (srv *Server) capabilities(w http.ResponseWriter, r *http.Request) {
	views := []string{"search"}
	if srv.local != nil {
		views = append(views, "dupes", "map")
	}
	writeJSON(w, http.StatusOK, map[string]any{"views": views})
}

// response is what /search and /search/vector answer.
type response struct {
	Results []query.Hit        `json:"results"`
	Timings map[string]float64 `json:"timings_ms"`
	// Warning says why the results may be incomplete (a cluster with a shard on no live node).
	Warning string `json:"warning,omitempty"`
	// Truncated says that a range search without k found more than MaxK rows within its
	// distance: Results holds the MaxK nearest.
	Truncated bool `json:"truncated,omitempty"`
}

func (srv *Server) searchImage(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	j, data, ok := srv.request(w, r)
	if !ok {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		if data, ok = formImage(w, r, data); !ok {
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), srv.opt.Timeout)
	defer cancel()
	// Decoding is bounded to the cores: beyond that, requests wait rather than thrash. Big
	// images have a lane of their own, of half the cores, so that however many there are,
	// small ones still find every core.
	lane := srv.decode
	if wd, ht, err := pil.Size(data); err == nil && int64(wd)*int64(ht) > bigPixels {
		lane = srv.big
	}
	select {
	case lane <- struct{}{}:
	case <-ctx.Done():
		writeError(w, http.StatusServiceUnavailable, "timed out waiting to decode")
		return
	}
	t := time.Now()
	input := make([]float32, srv.s.Model().InputLen())
	err := srv.s.Model().PrepareBytes(data, input)
	<-lane
	if err != nil {
		writeError(w, http.StatusBadRequest, "cannot read the image: "+err.Error())
		return
	}
	decode := time.Since(t)
	j.input = input
	res := srv.b.submit(ctx, j)
	srv.answer(w, res, start, map[string]float64{"decode": ms(decode)})
}

func (srv *Server) searchVector(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	j, data, ok := srv.request(w, r)
	if !ok {
		return
	}
	var req struct {
		Vector []float64 `json:"vector"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `want {"vector": [numbers]}: `+err.Error())
		return
	}
	if dim := srv.s.Dim(); len(req.Vector) != dim {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("vector has %d numbers, the index holds %d-dim vectors", len(req.Vector), dim))
		return
	}
	v := make([]float32, len(req.Vector))
	for i, x := range req.Vector {
		v[i] = float32(x)
		if math.IsInf(float64(v[i]), 0) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("vector[%d] = %g does not fit float32", i, x))
			return
		}
	}
	if err := index.CheckVectors(v, len(v)); err != nil {
		writeError(w, http.StatusBadRequest, "vector: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), srv.opt.Timeout)
	defer cancel()
	j.vector = v
	srv.answer(w, srv.b.submit(ctx, j), start, map[string]float64{})
}

func (srv *Server) answer(w http.ResponseWriter, res result, start time.Time, timings map[string]float64) {
	switch {
	case errors.Is(res.err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "timed out")
		return
	case errors.Is(res.err, context.Canceled):
		return // the client left
	case res.err != nil:
		writeError(w, http.StatusInternalServerError, res.err.Error())
		return
	}
	for k, v := range res.timings {
		timings[k] = v
	}
	timings["total"] = ms(time.Since(start))
	resp := response{Results: res.hits, Timings: timings, Truncated: res.truncated}
	if err := srv.s.Changed(); err != nil {
		resp.Warning = err.Error()
	}
	writeJSON(w, http.StatusOK, resp)
}

// request reads a search request's parameters (ask) and body, answering the client itself when
// either is bad.
func (srv *Server) request(w http.ResponseWriter, r *http.Request) (*job, []byte, bool) {
	j, ok := srv.ask(w, r)
	if !ok {
		return nil, nil, false
	}
	data, ok := srv.body(w, r)
	return j, data, ok
}

// ask reads what a search asks for, as a job without its query: ?k= (default 10) and
// ?max_distance= (a range search: the nearest k within that distance, or without k every row
// within it, up to MaxK: more are cut, and the answer says so).
func (srv *Server) ask(w http.ResponseWriter, r *http.Request) (*job, bool) {
	j := &job{k: 10}
	if s := r.URL.Query().Get("max_distance"); s != "" {
		d, err := strconv.ParseFloat(s, 64)
		if err != nil || !(d >= 0) || math.IsInf(d, 0) {
			writeError(w, http.StatusBadRequest, "max_distance must be a finite number at least 0")
			return nil, false
		}
		j.maxDistance, j.k = &d, 0
	}
	if s := r.URL.Query().Get("k"); s != "" {
		k, err := strconv.Atoi(s)
		if err != nil || k < 1 || k > srv.opt.MaxK {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("k must be a whole number from 1 to %d", srv.opt.MaxK))
			return nil, false
		}
		j.k = k
	}
	return j, true
}

// body reads the request body, refusing one over MaxBody with 413 without reading it all.
func (srv *Server) body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > srv.opt.MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", r.ContentLength, srv.opt.MaxBody))
		return nil, false
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, srv.opt.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", srv.opt.MaxBody))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return nil, false
	case len(data) == 0:
		writeError(w, http.StatusBadRequest, "empty body: send the image's bytes, or a multipart form with a field \"image\"")
		return nil, false
	}
	return data, true
}

// formImage extracts the field "image" of a multipart body.
func formImage(w http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool) {
	_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			writeError(w, http.StatusBadRequest, "the multipart form has no field \"image\"")
			return nil, false
		}
		if p.FormName() == "image" {
			data, err := io.ReadAll(p)
			if err != nil || len(data) == 0 {
				writeError(w, http.StatusBadRequest, "the form field \"image\" is empty or unreadable")
				return nil, false
			}
			return data, true
		}
	}
}

// object serves an image by id from the objects folder, looked up in the seed's object-store
// layout (55/77/5577b0….jpg, fanned out by the first four characters) and then flat. Ids that
// are not plain relative paths are refused, and os.Root keeps every lookup inside the folder.
func (srv *Server) object(w http.ResponseWriter, r *http.Request) {
	if srv.objects == nil {
		writeError(w, http.StatusNotFound, "this server has no --objects folder")
		return
	}
	id := r.PathValue("id")
	if !validObjectID(id) {
		writeError(w, http.StatusBadRequest, "invalid id")
		return
	}
	f, st, typ, err := srv.openObject(id)
	switch {
	case errors.Is(err, os.ErrNotExist):
		writeError(w, http.StatusNotFound, "no such object")
		return
	case err != nil:
		writeError(w, http.StatusForbidden, id+": "+err.Error())
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Cache-Control", "public, max-age=86400")
	http.ServeContent(w, r, path.Base(st.Name()), st.ModTime(), f)
}

// openObject opens the image id from the objects folder, looked up in the seed's object-store
// layout (55/77/5577b0….jpg, fanned out by the first four characters) and then flat, and returns
// its content type. A file that is not an image is refused; none found is os.ErrNotExist. id
// must have passed validObjectID.
func (srv *Server) openObject(id string) (*os.File, os.FileInfo, string, error) {
	var names []string
	if base := path.Base(id); len(base) > 4 && base == id {
		names = append(names, path.Join(base[:2], base[2:4], base))
	}
	names = append(names, id)
	for _, name := range names {
		f, err := srv.objects.Open(name)
		if err != nil {
			continue
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			continue
		}
		typ, err := imageType(name, f)
		if err != nil || typ == "" {
			f.Close()
			if err == nil {
				err = errors.New("only images are served")
			}
			return nil, nil, "", err
		}
		return f, st, typ, nil
	}
	return nil, nil, "", os.ErrNotExist
}

func validObjectID(id string) bool {
	if id == "" || len(id) > 1024 || strings.ContainsAny(id, "\\\x00") || path.IsAbs(id) || path.Clean(id) != id {
		return false
	}
	for _, part := range strings.Split(id, "/") {
		if part == ".." || part == "." || part == "" {
			return false
		}
	}
	return true
}

// writeJSON encodes v before sending the status, so that a value JSON cannot hold (a +Inf
// distance) becomes a 500 with a reason rather than a 200 with an empty body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "cannot encode the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
