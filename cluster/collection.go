package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weaviate/weaviate-go-client/v5/weaviate"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/fault"
	wgrpc "github.com/weaviate/weaviate-go-client/v5/weaviate/grpc"
	"github.com/weaviate/weaviate/entities/models"

	"simsearch/index"
)

// Property names of the objects simsearch stores; "id" is reserved by Weaviate.
const (
	propID   = "sid"   // the simsearch id
	propHash = "vhash" // a digest of the vector, so that a later push sends only changed vectors
)

// descriptionTag starts the description of a collection made by simsearch; the JSON after it
// is the Info.
const descriptionTag = "simsearch collection "

// Info is what simsearch records in the collection's description: enough to query it without
// the index file (the vectors' dimension, the model that made them and how their images were
// decoded).
type Info struct {
	Dim   int          `json:"dim"`
	Model *index.Model `json:"model,omitempty"`
	// ExifTranspose says the images were turned upright by their EXIF orientation before
	// embedding (index.Meta.ExifTranspose): query images must be decoded the same way.
	ExifTranspose bool `json:"exif_transpose,omitempty"`
}

// Client is a connection to a cluster through the nodes its target lists: requests go to the node
// that answered last, and when it fails, to the other nodes in turn, so that a long-running
// reader (a server) outlives the node it first reached.
type Client struct {
	t    Target
	http *http.Client

	mu       sync.Mutex
	wcs      []*weaviate.Client                 // per node of t, made when first used
	cur      int                                // the node in use
	replicas []*models.ReplicationShardReplicas // the sharding state last read (see shardingState)
}

// Connect connects to the first node of t that is ready or, when none is, to the first that is
// up (see on).
func Connect(ctx context.Context, t Target) (*Client, error) {
	c := &Client{t: t, http: &http.Client{Timeout: 10 * time.Second}, wcs: make([]*weaviate.Client, len(t.Nodes))}
	var errs []string
	for _, ready := range []bool{true, false} {
		for i, n := range t.Nodes {
			if _, err := c.clientOf(ctx, i, ready); err != nil {
				if ready {
					errs = append(errs, fmt.Sprintf("%s: %v", n.REST, err))
				}
				continue
			}
			c.cur = i
			return c, nil
		}
	}
	return nil, fmt.Errorf("cannot reach the Weaviate cluster at %s (%s): is it running? (scripts/weaviate-cluster.sh start N DIR starts one here; list several nodes as weaviate://HOST:PORT,HOST:PORT/%s to survive one being down)", t, strings.Join(errs, "; "), t.Collection)
}

// probe asks node n for path (one of Weaviate's /v1/.well-known/ endpoints) and returns the
// HTTP status.
func (c *Client) probe(ctx context.Context, n Node, path string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.REST+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, unwrapNet(err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// errNotReady marks a node that is up but says it is not ready.
var errNotReady = errors.New("the node is not ready")

// clientOf returns the client of node i, made on first use once the node says it is ready (or,
// unless ready, merely up): making one asks the node for its version, which would wait for a
// node that does not answer.
func (c *Client) clientOf(ctx context.Context, i int, ready bool) (*weaviate.Client, error) {
	c.mu.Lock()
	wc := c.wcs[i]
	c.mu.Unlock()
	if wc != nil {
		return wc, nil
	}
	n := c.t.Nodes[i]
	probe := func(path string) (int, error) { return c.probe(ctx, n, path) }
	code, err := probe("/v1/.well-known/ready")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		if ready {
			return nil, fmt.Errorf("%w (HTTP %d)", errNotReady, code)
		}
		if code, err = probe("/v1/.well-known/live"); err != nil {
			return nil, err
		} else if code != http.StatusOK {
			return nil, fmt.Errorf("the node is not live (HTTP %d)", code)
		}
	}
	wc, err = weaviate.NewClient(weaviate.Config{
		Host:       n.REST,
		Scheme:     "http",
		GrpcConfig: &wgrpc.Config{Host: n.GRPC},
		Timeout:    2 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wcs[i] == nil {
		c.wcs[i] = wc
	}
	return c.wcs[i], nil
}

// on calls fn with the node in use. When fn fails, it is tried on the other nodes in turn, and
// the first of them on which it succeeds becomes the node in use: the cluster answers through
// any of its nodes. A node not used before is tried once it says it is ready; when none is, the
// nodes that are merely up are tried last (a node that sees too few of its peers says it is not
// ready, and then its answers, partial, are all there is; Health says so). What is not a node's
// failure is not retried: the caller's context ending, the collection or the object asked for
// missing. When every node fails, the error names each node's failure.
func (c *Client) on(ctx context.Context, fn func(n Node, wc *weaviate.Client) error) error {
	c.mu.Lock()
	first := c.cur
	c.mu.Unlock()
	var tried []int
	var errs []error
	var unready []int
	attempt := func(i int, ready bool) (bool, error) {
		wc, err := c.clientOf(ctx, i, ready)
		if errors.Is(err, errNotReady) {
			unready = append(unready, i)
			return false, nil
		}
		if err == nil {
			if err = fn(c.t.Nodes[i], wc); err == nil {
				c.mu.Lock()
				c.cur = i
				c.mu.Unlock()
				return true, nil
			}
		}
		if ctx.Err() != nil || errors.Is(err, ErrNoCollection) || errors.Is(err, ErrNoObject) {
			return true, err
		}
		tried, errs = append(tried, i), append(errs, err)
		return false, nil
	}
	for k := range len(c.t.Nodes) {
		if done, err := attempt((first+k)%len(c.t.Nodes), true); done {
			return err
		}
	}
	for _, i := range slices.Clone(unready) {
		if done, err := attempt(i, false); done {
			return err
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	format := make([]string, len(errs))
	args := make([]any, len(errs))
	for j, err := range errs {
		format[j] = c.t.Nodes[tried[j]].REST + ": %w"
		args[j] = err
	}
	return fmt.Errorf("on every node: "+strings.Join(format, "; "), args...)
}

// unwrapNet shortens "Get \"http://…\": dial tcp …: connect: connection refused" to its cause.
func unwrapNet(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "dial tcp") {
		return errors.New(msg[i+2:])
	}
	return err
}

// Node is the node the client talks to now.
func (c *Client) Node() Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.Nodes[c.cur]
}

// Target is what the client was connected to.
func (c *Client) Target() Target { return c.t }

// ErrNoCollection is returned (wrapped) when the collection does not exist.
var ErrNoCollection = errors.New("no such collection")

// class fetches the collection's schema, nil and ErrNoCollection if there is none. The schema is
// read through the cluster's leader, so that a push sees the collection it just created.
func (c *Client) class(ctx context.Context) (*models.Class, error) {
	var cl *models.Class
	err := c.on(ctx, func(_ Node, wc *weaviate.Client) error {
		var err error
		cl, err = wc.Schema().ClassGetter().WithClassName(c.t.Collection).Do(ctx)
		var we *fault.WeaviateClientError
		if errors.As(err, &we) && we.StatusCode == http.StatusNotFound || err == nil && cl == nil {
			return c.noCollection()
		}
		if err != nil {
			return fmt.Errorf("%s: reading the collection's schema: %w", c.t, err)
		}
		return nil
	})
	return cl, err
}

func (c *Client) noCollection() error {
	return fmt.Errorf("%s: %w on the cluster: create it with 'simsearch push --index INDEX --to %s'", c.t, ErrNoCollection, c.t)
}

// localClass reads the collection's schema as node n knows it, without asking the leader: a
// query must not wait for the cluster to elect a new leader after the old one died.
func (c *Client) localClass(ctx context.Context, n Node) (*models.Class, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.REST+"/v1/schema/"+c.t.Collection, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("consistency", "false")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the collection's schema: %w", c.t, unwrapNet(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, c.noCollection()
	default:
		return nil, fmt.Errorf("%s: reading the collection's schema: HTTP %d", c.t, resp.StatusCode)
	}
	var cl models.Class
	if err := json.NewDecoder(resp.Body).Decode(&cl); err != nil {
		return nil, fmt.Errorf("%s: reading the collection's schema: %w", c.t, err)
	}
	return &cl, nil
}

// Info reads what simsearch recorded about the collection; a collection simsearch did not make
// is refused, since its objects carry no simsearch ids.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var cl *models.Class
	err := c.on(ctx, func(n Node, _ *weaviate.Client) error {
		var err error
		cl, err = c.localClass(ctx, n)
		return err
	})
	if err != nil {
		return Info{}, err
	}
	return parseInfo(c.t, cl)
}

func parseInfo(t Target, cl *models.Class) (Info, error) {
	var info Info
	js, ok := strings.CutPrefix(cl.Description, descriptionTag)
	if !ok || json.Unmarshal([]byte(js), &info) != nil || info.Dim <= 0 {
		return Info{}, fmt.Errorf("%s was not made by simsearch push (its description does not record simsearch's metadata): push to another collection name", t)
	}
	return info, nil
}

// Health reports the nodes that hold the collection but do not serve it, and how many of its
// shards have no replica on a serving node (answers then miss those shards), as the node in use
// (or, when it fails, the next that answers) sees the cluster. A cluster whose state cannot be
// read is reported as an error.
//
// A killed node drops out of Weaviate's list of nodes rather than being listed as down, so the
// nodes come from the sharding state (which shard has replicas where; Weaviate serves it with
// REPLICA_MOVEMENT_ENABLED, as scripts/weaviate-cluster.sh sets). Without it, only the count of
// shards without a live replica is known.
func (c *Client) Health(ctx context.Context) (down []string, missing int, err error) {
	err = c.on(ctx, func(n Node, wc *weaviate.Client) error {
		var err error
		down, missing, err = c.health(ctx, n, wc)
		return err
	})
	return down, missing, err
}

func (c *Client) health(ctx context.Context, n Node, wc *weaviate.Client) (down []string, missing int, err error) {
	cl, err := c.localClass(ctx, n)
	if err != nil {
		return nil, 0, err
	}
	st, err := wc.Cluster().NodesStatusGetter().WithClass(c.t.Collection).WithOutput("verbose").Do(ctx)
	if err != nil {
		down, missing, why := c.healthUnreachable(ctx, n, err)
		if why == nil {
			return down, missing, nil
		}
		return nil, 0, fmt.Errorf("reading the nodes' status from %s: %w (%v)", n.REST, err, why)
	}
	serving, live := map[string]bool{}, map[string]bool{}
	for _, n := range st.Nodes {
		// UNHEALTHY is a node that answers but has trouble reaching some peers: it still
		// serves its shards. Unavailable and timed out nodes do not.
		if n.Status == nil || *n.Status != models.NodeStatusStatusHEALTHY && *n.Status != models.NodeStatusStatusUNHEALTHY {
			down = append(down, n.Name)
			continue
		}
		serving[n.Name] = true
		for _, sh := range n.Shards {
			if sh.Class == c.t.Collection {
				live[sh.Name] = true
			}
		}
	}
	if shards, err := c.shardingState(ctx, n); err == nil {
		for _, sh := range shards {
			ok := false
			for _, r := range sh.Replicas {
				ok = ok || serving[r]
				if !serving[r] && !slices.Contains(down, r) {
					down = append(down, r)
				}
			}
			if !ok {
				missing++
			}
		}
		sort.Strings(down)
		return down, missing, nil
	}
	sort.Strings(down)
	shards := len(live)
	if sc, ok := cl.ShardingConfig.(map[string]any); ok {
		if n, ok := sc["actualCount"].(float64); ok {
			shards = int(n)
		}
	}
	return down, max(0, shards-len(live)), nil
}

// unreachableNode finds, in a failed nodes' status request, the name of the node that the
// answering node could not reach.
var unreachableNode = regexp.MustCompile(`node: ([^\s:"]+): (?:send|open) http request`)

// healthUnreachable is health while the nodes' status cannot be read because a node is gone.
// Weaviate 1.35.2 means to list a node it cannot reach as UNAVAILABLE, but its check misses the
// error's type (errors.As with a pointer target, the error a value), so until its peers drop the
// dead node from their member list the whole request fails with "node: NAME: send http
// request: …", naming the first node that did not answer. That failure names one node; others
// may be down too. So the named nodes are taken as down only when simsearch's own view agrees:
// the target lists as many nodes as hold the collection's replicas, every named node holds some,
// and exactly as many of the target's nodes fail a liveness probe as are named. Otherwise why
// says what kept it from concluding.
func (c *Client) healthUnreachable(ctx context.Context, n Node, statusErr error) (down []string, missing int, why error) {
	for _, m := range unreachableNode.FindAllStringSubmatch(statusErr.Error(), -1) {
		if !slices.Contains(down, m[1]) {
			down = append(down, m[1])
		}
	}
	if len(down) == 0 {
		return nil, 0, errors.New("it names no node it could not reach")
	}
	shards, err := c.shardingState(ctx, n)
	if err != nil {
		return nil, 0, fmt.Errorf("it names %s as unreachable; reading the shards' replicas: %w", strings.Join(down, ", "), err)
	}
	holders := map[string]bool{}
	for _, sh := range shards {
		for _, r := range sh.Replicas {
			holders[r] = true
		}
	}
	if len(holders) != len(c.t.Nodes) {
		return nil, 0, fmt.Errorf("it names %s as unreachable; the collection's replicas are on %d nodes, the URL lists %d, so others may be down unseen", strings.Join(down, ", "), len(holders), len(c.t.Nodes))
	}
	for _, d := range down {
		if !holders[d] {
			return nil, 0, fmt.Errorf("it names %s as unreachable, which holds none of the collection's replicas", d)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	dead := 0
	for _, tn := range c.t.Nodes {
		if code, err := c.probe(pctx, tn, "/v1/.well-known/live"); err != nil || code != http.StatusOK {
			dead++
		}
	}
	if dead != len(down) {
		return nil, 0, fmt.Errorf("it names %s as unreachable; %d of the URL's nodes do not answer", strings.Join(down, ", "), dead)
	}
	for _, sh := range shards {
		if !slices.ContainsFunc(sh.Replicas, func(r string) bool { return !slices.Contains(down, r) }) {
			missing++
		}
	}
	sort.Strings(down)
	return down, missing, nil
}

// shardingStateWait is how long shardingState waits for a node's answer: Weaviate serves the
// sharding state through its Raft leader, and when the leader has just died the request hangs
// until another is elected, seconds later.
const shardingStateWait = 2 * time.Second

// shardingState lists the collection's shards and the nodes of their replicas, as node n knows
// them or, when n does not answer in time, as a node last told this client: where the replicas
// are changes only when an operator moves them, and the moment a node dies, when the list is
// needed most, is when the leader may be gone.
func (c *Client) shardingState(ctx context.Context, n Node) ([]*models.ReplicationShardReplicas, error) {
	shards, err := c.readShardingState(ctx, n)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.replicas = shards
		return shards, nil
	}
	if c.replicas != nil && ctx.Err() == nil {
		return c.replicas, nil
	}
	return nil, err
}

func (c *Client) readShardingState(ctx context.Context, n Node) ([]*models.ReplicationShardReplicas, error) {
	ctx, cancel := context.WithTimeout(ctx, shardingStateWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.REST+"/v1/replication/sharding-state?collection="+c.t.Collection, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sharding state: HTTP %d", resp.StatusCode)
	}
	var state struct {
		ShardingState models.ReplicationShardingState `json:"shardingState"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
		return nil, err
	}
	return state.ShardingState.Shards, nil
}

// HealthWarning is a sentence for a person about the cluster's state, or "" when every node is
// healthy. It says whether results are complete or may be partial.
func (c *Client) HealthWarning(ctx context.Context) string {
	down, missing, err := c.Health(ctx)
	return healthWarning(down, missing, err)
}

func healthWarning(down []string, missing int, err error) string {
	switch {
	case err != nil:
		return fmt.Sprintf("cannot check the cluster's health (%v): results may be partial", err)
	case missing > 0 && len(down) == 0: // nodes that dropped out of the list, unnamed
		return fmt.Sprintf("%d shards have no live replica: results are partial", missing)
	case missing > 0:
		return fmt.Sprintf("nodes down: %s; %d shards have no live replica: results are partial", strings.Join(down, ", "), missing)
	case len(down) > 0:
		return fmt.Sprintf("nodes down: %s; every shard still has a live replica, so results are complete", strings.Join(down, ", "))
	}
	return ""
}
