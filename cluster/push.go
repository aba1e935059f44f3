package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/google/uuid"
	"github.com/weaviate/weaviate-go-client/v5/weaviate"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/filters"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/graphql"
	"github.com/weaviate/weaviate/entities/models"
	"golang.org/x/sync/errgroup"

	"simsearch/collection"
	"simsearch/index"
)

// PushOptions configure Push. Shards, Replicas and Exact apply when the collection is created;
// an existing collection keeps its own (Exact must then agree with it).
type PushOptions struct {
	Shards    int  // 0: 1
	Replicas  int  // 0: 1
	Exact     bool // a flat (brute-force, exact) vector index instead of HNSW
	BatchSize int  // objects per gRPC batch; 0: 256
	// Progress, if set, is called with the rows handled so far and the collection's live rows.
	Progress func(done, total int)
	// Note, if set, receives sentences for a person (what was found, what is kept).
	Note func(string)
}

// PushStats says what a push did.
type PushStats struct {
	Rows      int           // live rows of the collection pushed
	Sent      int           // objects written (new or changed)
	Unchanged int           // objects already in the cluster's collection with the same vector
	Deleted   int           // objects of the cluster's collection no longer among the rows
	Created   bool          // the cluster's collection was created by this push
	Listing   time.Duration // time spent digesting the rows and listing what the cluster holds
	Sending   time.Duration // time spent sending objects
}

// idSpace is the namespace of the objects' UUIDs: an object's UUID is the version-5 UUID of its
// simsearch id, so that the same id always lands on the same object.
var idSpace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("simsearch:object-id"))

// ObjectUUID is the UUID simsearch gives the object of a simsearch id.
func ObjectUUID(id string) string { return uuid.NewSHA1(idSpace, []byte(id)).String() }

// vectorDigest is a short digest of a vector's float32 bytes.
func vectorDigest(v []float32) [16]byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	sum := sha256.Sum256(b)
	return [16]byte(sum[:16])
}

// localRow is what the comparison keeps of one live row: its object's UUID, its vector's digest
// and its place in the collection's id order (collection.View.Each). 36 bytes a row: the
// comparison's memory (push's largest) is about 36 bytes times the collection's rows, plus a bit
// per row and 16 bytes per object to delete; the vectors stay in the mapped index.
type localRow struct {
	uuid, digest [16]byte
	pos          uint32
}

// digestRows lists v's live rows sorted by their objects' UUIDs.
func digestRows(v *collection.View) ([]localRow, error) {
	if v.Len() > math.MaxUint32 {
		return nil, fmt.Errorf("%s: %d rows: push takes at most %d", v.Path(), v.Len(), uint32(math.MaxUint32))
	}
	rows := make([]localRow, 0, v.Len())
	err := v.Each(func(id string, _ collection.FileState, vec []float32) error {
		rows = append(rows, localRow{uuid: uuid.NewSHA1(idSpace, []byte(id)), digest: vectorDigest(vec), pos: uint32(len(rows))})
		return nil
	})
	slices.SortFunc(rows, func(a, b localRow) int { return bytes.Compare(a.uuid[:], b.uuid[:]) })
	return rows, err
}

// diff compares the rows (sorted by UUID) with the cluster's objects as list gives them (UUID
// and digest; ok false for an object without a readable digest): it returns the positions of the
// rows to send (missing or changed) as a bitset, how many are unchanged, and the UUIDs of the
// objects that are not among the rows.
func diff(rows []localRow, list func(func(u, digest [16]byte, ok bool)) error) (send []uint64, unchanged int, gone [][16]byte, err error) {
	send = make([]uint64, (len(rows)+63)/64)
	for _, r := range rows {
		send[r.pos/64] |= 1 << (r.pos % 64)
	}
	err = list(func(u, digest [16]byte, ok bool) {
		i, found := slices.BinarySearchFunc(rows, u, func(r localRow, u [16]byte) int { return bytes.Compare(r.uuid[:], u[:]) })
		switch {
		case !found:
			gone = append(gone, u)
		case ok && rows[i].digest == digest && send[rows[i].pos/64]&(1<<(rows[i].pos%64)) != 0:
			send[rows[i].pos/64] &^= 1 << (rows[i].pos % 64)
			unchanged++
		}
	})
	return send, unchanged, gone, err
}

// Push makes the cluster's collection hold exactly v's live rows (a living collection's current
// state: its base less the rows its change log deleted, plus those it added): it creates the
// collection if needed, compares the rows with what it holds, sends the rows that are missing or
// whose vector changed, and deletes the objects whose id is no longer live. An interrupted push
// therefore resumes where it stopped, and a push after the collection changed sends only the
// change.
func (c *Client) Push(ctx context.Context, v *collection.View, opt PushOptions) (PushStats, error) {
	st := PushStats{Rows: v.Len()}
	note := opt.Note
	if note == nil {
		note = func(string) {}
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 256
	}
	meta := v.Meta()
	if meta.DuplicateIDs {
		return st, fmt.Errorf("%s allows duplicate ids, but a collection keys its objects by id: rebuild the index without duplicates", v.Path())
	}
	if err := c.ensureCollection(ctx, v, meta, opt, &st, note); err != nil {
		return st, err
	}

	start := time.Now()
	rows, err := digestRows(v)
	if err != nil {
		return st, err
	}
	held := 0
	send, unchanged, gone, err := diff(rows, func(fn func(u, digest [16]byte, ok bool)) error {
		return c.list(ctx, func(u, digest [16]byte, ok bool) {
			held++
			fn(u, digest, ok)
		})
	})
	rows = nil // the largest allocation of the push: not needed while sending
	if err != nil {
		return st, err
	}
	st.Listing = time.Since(start)
	if held > 0 {
		note(fmt.Sprintf("%s holds %d objects: sending only what differs from %s", c.t, held, v.Path()))
	}
	if opt.Progress != nil && unchanged > 0 {
		opt.Progress(unchanged, st.Rows)
	}

	start = time.Now()
	batches := make(chan []*models.Object, 2)
	g, gctx := errgroup.WithContext(ctx)
	const senders = 2 // one batch in flight while the next is prepared and another is indexed
	sent := make(chan int, senders)
	for range senders {
		g.Go(func() error {
			for b := range batches {
				if err := c.send(gctx, b); err != nil {
					return err
				}
				sent <- len(b)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(batches)
		var batch []*models.Object
		flush := func() error {
			select {
			case batches <- batch:
				batch = nil
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		pos := 0
		err := v.Each(func(id string, _ collection.FileState, vec []float32) error {
			p := pos
			pos++
			if send[p/64]&(1<<(p%64)) == 0 {
				return nil
			}
			digest := vectorDigest(vec)
			batch = append(batch, &models.Object{
				Class:      c.t.Collection,
				ID:         strfmt.UUID(ObjectUUID(id)),
				Vector:     models.C11yVector(vec),
				Properties: map[string]any{propID: id, propHash: hex.EncodeToString(digest[:])},
			})
			if len(batch) == opt.BatchSize {
				return flush()
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = flush()
		}
		return err
	})
	done := make(chan struct{})
	go func() {
		for n := range sent {
			st.Sent += n
			if opt.Progress != nil {
				opt.Progress(st.Sent+unchanged, st.Rows)
			}
		}
		close(done)
	}()
	err = g.Wait()
	close(sent)
	<-done
	st.Unchanged = unchanged
	st.Sending = time.Since(start)
	if err != nil {
		return st, err
	}
	if opt.Progress != nil {
		opt.Progress(st.Rows, st.Rows)
	}
	if err := c.deleteObjects(ctx, gone); err != nil {
		return st, err
	}
	st.Deleted = len(gone)
	return st, nil
}

// ensureCollection creates the collection, or checks that the existing one can take v's rows.
func (c *Client) ensureCollection(ctx context.Context, v *collection.View, meta index.Meta, opt PushOptions, st *PushStats, note func(string)) error {
	cl, err := c.class(ctx)
	if err == nil {
		info, err := parseInfo(c.t, cl)
		if err != nil {
			return err
		}
		if info.Dim != v.Dim() {
			return fmt.Errorf("%s holds %d-dim vectors but %s holds %d-dim vectors: push it to another collection (a different model's vectors are not comparable)", c.t, info.Dim, v.Path(), v.Dim())
		}
		if want := indexType(opt.Exact); cl.VectorIndexType != want {
			return fmt.Errorf("%s has a %s vector index, not %s: push %s to another collection name, or repeat the push with the flags it was created with", c.t, cl.VectorIndexType, want, v.Path())
		}
		if info.Model != nil && meta.Model != nil && info.Model.SHA256 != meta.Model.SHA256 {
			return fmt.Errorf("%s was pushed from vectors of the model sha256 %.12s…, %s records sha256 %.12s…: push it to another collection", c.t, info.Model.SHA256, v.Path(), meta.Model.SHA256)
		}
		if info.ExifTranspose != meta.ExifTranspose {
			return fmt.Errorf("%s was pushed from images decoded with EXIF transpose %v, %s records %v: the vectors are not comparable; push it to another collection", c.t, info.ExifTranspose, v.Path(), meta.ExifTranspose)
		}
		return nil
	}
	if !errors.Is(err, ErrNoCollection) {
		return err
	}
	shards, replicas := max(opt.Shards, 1), max(opt.Replicas, 1)
	desc, err := json.Marshal(Info{Dim: v.Dim(), Model: meta.Model, ExifTranspose: meta.ExifTranspose})
	if err != nil {
		return err
	}
	no, yes := false, true
	vic := map[string]any{"distance": "l2-squared"}
	if !opt.Exact {
		// A dynamic ef: Weaviate searches with ef = limit × 8, kept within [160, 1000] and never
		// below the limit. Searches ask for k + tieMargin(k): ef 160 at k = 10 (recall@10 measured
		// ≥ 0.99 on real embeddings; Weaviate's default is 100), 1000 at k = 100, where a fixed
		// ef would be raised only to k and miss neighbours. efConstruction is Weaviate's default.
		vic["ef"] = -1
		vic["dynamicEfMin"] = 160
		vic["dynamicEfMax"] = 1000
		vic["dynamicEfFactor"] = 8
	}
	class := &models.Class{
		Class:             c.t.Collection,
		Description:       descriptionTag + string(desc),
		Vectorizer:        "none",
		VectorIndexType:   indexType(opt.Exact),
		VectorIndexConfig: vic,
		ShardingConfig:    map[string]any{"desiredCount": shards},
		// Asynchronous replication repairs a replica that missed writes (after a kill -9);
		// without it replicas diverge.
		ReplicationConfig: &models.ReplicationConfig{Factor: int64(replicas), AsyncEnabled: true},
		Properties: []*models.Property{
			{Name: propID, DataType: []string{"text"}, Tokenization: "field", IndexFilterable: &yes, IndexSearchable: &no},
			{Name: propHash, DataType: []string{"text"}, Tokenization: "field", IndexFilterable: &no, IndexSearchable: &no},
		},
	}
	err = c.on(ctx, func(_ Node, wc *weaviate.Client) error {
		return wc.Schema().ClassCreator().WithClass(class).Do(ctx)
	})
	if err != nil {
		return fmt.Errorf("creating %s with %d shards and %d replicas: %w", c.t, shards, replicas, err)
	}
	st.Created = true
	note(fmt.Sprintf("created %s: %d-dim vectors, %s index, squared-L2, %d shards × %d replicas", c.t, v.Dim(), indexType(opt.Exact), shards, replicas))
	return nil
}

func indexType(exact bool) string {
	if exact {
		return "flat"
	}
	return "hnsw"
}

// listPage is how many objects a page of the listing holds.
const listPage = 2000

// list calls fn with the UUID and vector digest of every object of the collection (ok false for
// an object without a readable digest), read with a cursor a page at a time: the listing is
// never held whole.
func (c *Client) list(ctx context.Context, fn func(u, digest [16]byte, ok bool)) error {
	after := ""
	for {
		var res []graphql.SearchResult
		err := c.on(ctx, func(_ Node, wc *weaviate.Client) error {
			var err error
			res, err = wc.Experimental().Search().WithCollection(c.t.Collection).
				WithLimit(listPage).WithAfter(after).WithProperties(propHash).
				WithMetadata(&graphql.Metadata{ID: true}).Do(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: listing the objects already there: %w", c.t, err)
		}
		if len(res) == 0 {
			return nil
		}
		for _, r := range res {
			u, err := uuid.Parse(r.ID)
			if err != nil {
				return fmt.Errorf("%s: listing the objects already there: object id %q: %w", c.t, r.ID, err)
			}
			var digest [16]byte
			h, _ := r.Properties[propHash].(string)
			n, err := hex.Decode(digest[:], []byte(h))
			fn(u, digest, err == nil && n == len(digest) && len(h) == 2*len(digest))
		}
		after = res[len(res)-1].ID
	}
}

// send writes one batch, failing on the first object the cluster refused.
func (c *Client) send(ctx context.Context, batch []*models.Object) error {
	var res []models.ObjectsGetResponse
	err := c.on(ctx, func(_ Node, wc *weaviate.Client) error {
		var err error
		res, err = wc.Batch().ObjectsBatcher().WithObjects(batch...).WithConsistencyLevel("QUORUM").Do(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: sending %d objects: %w (if a node is down, restart it and push again: the push resumes)", c.t, len(batch), err)
	}
	for _, r := range res {
		if r.Result != nil && r.Result.Errors != nil && len(r.Result.Errors.Error) > 0 {
			props, _ := r.Properties.(map[string]any)
			id, _ := props[propID].(string)
			return fmt.Errorf("%s: the cluster refused %q: %s (push again to resume)", c.t, id, r.Result.Errors.Error[0].Message)
		}
	}
	return nil
}

// deleteObjects deletes the objects with the given UUIDs.
func (c *Client) deleteObjects(ctx context.Context, uuids [][16]byte) error {
	for len(uuids) > 0 {
		n := min(len(uuids), 1000)
		ids := make([]string, n)
		for i, u := range uuids[:n] {
			ids[i] = uuid.UUID(u).String()
		}
		where := filters.Where().WithPath([]string{"id"}).WithOperator(filters.ContainsAny).WithValueText(ids...)
		var res *models.BatchDeleteResponse
		err := c.on(ctx, func(_ Node, wc *weaviate.Client) error {
			var err error
			res, err = wc.Batch().ObjectsBatchDeleter().WithClassName(c.t.Collection).WithWhere(where).WithConsistencyLevel("QUORUM").Do(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: deleting %d objects no longer in the collection: %w", c.t, n, err)
		}
		if res.Results != nil && res.Results.Failed > 0 {
			return fmt.Errorf("%s: %d of %d deletions failed (push again to retry)", c.t, res.Results.Failed, n)
		}
		uuids = uuids[n:]
	}
	return nil
}
