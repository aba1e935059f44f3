package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
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
// the index file (the vectors' dimension and the model that made them).
type Info struct {
	Dim   int          `json:"dim"`
	Model *index.Model `json:"model,omitempty"`
}

// Client is a connection to a cluster through the first of the target's nodes that answers.
type Client struct {
	t      Target
	node   Node // the node in use
	client *weaviate.Client
	http   *http.Client
}

// Connect connects to the first reachable node of t.
func Connect(ctx context.Context, t Target) (*Client, error) {
	var errs []string
	for _, n := range t.Nodes {
		c, err := connect(ctx, t, n)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", n.REST, err))
	}
	return nil, fmt.Errorf("cannot reach the Weaviate cluster at %s (%s): is it running? (scripts/weaviate-cluster.sh start N DIR starts one here; list several nodes as weaviate://HOST:PORT,HOST:PORT/%s to survive one being down)", t, strings.Join(errs, "; "), t.Collection)
}

func connect(ctx context.Context, t Target, n Node) (*Client, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	ready, err := hc.Get("http://" + n.REST + "/v1/.well-known/ready")
	if err != nil {
		return nil, unwrapNet(err)
	}
	ready.Body.Close()
	if ready.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the node is not ready (HTTP %d)", ready.StatusCode)
	}
	wc, err := weaviate.NewClient(weaviate.Config{
		Host:       n.REST,
		Scheme:     "http",
		GrpcConfig: &wgrpc.Config{Host: n.GRPC},
		Timeout:    2 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	return &Client{t: t, node: n, client: wc, http: hc}, nil
}

// unwrapNet shortens "Get \"http://…\": dial tcp …: connect: connection refused" to its cause.
func unwrapNet(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "dial tcp") {
		return errors.New(msg[i+2:])
	}
	return err
}

// Node is the node the client talks to.
func (c *Client) Node() Node { return c.node }

// Target is what the client was connected to.
func (c *Client) Target() Target { return c.t }

// ErrNoCollection is returned (wrapped) when the collection does not exist.
var ErrNoCollection = errors.New("no such collection")

// class fetches the collection's schema, nil and ErrNoCollection if there is none. The schema is
// read through the cluster's leader, so that a push sees the collection it just created.
func (c *Client) class(ctx context.Context) (*models.Class, error) {
	cl, err := c.client.Schema().ClassGetter().WithClassName(c.t.Collection).Do(ctx)
	var we *fault.WeaviateClientError
	if errors.As(err, &we) && we.StatusCode == http.StatusNotFound || err == nil && cl == nil {
		return nil, c.noCollection()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading the collection's schema: %w", c.t, err)
	}
	return cl, nil
}

func (c *Client) noCollection() error {
	return fmt.Errorf("%s: %w on the cluster: create it with 'simsearch push --index INDEX --to %s'", c.t, ErrNoCollection, c.t)
}

// localClass reads the collection's schema as the node knows it, without asking the leader: a
// query must not wait for the cluster to elect a new leader after the old one died.
func (c *Client) localClass(ctx context.Context) (*models.Class, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.node.REST+"/v1/schema/"+c.t.Collection, nil)
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
	cl, err := c.localClass(ctx)
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

// Health reports the nodes that hold the collection but are not healthy, and how many of its
// shards have no replica on a healthy node (answers then miss those shards). A cluster whose
// state cannot be read is reported as an error.
//
// A killed node drops out of Weaviate's list of nodes rather than being listed as down, so the
// nodes come from the sharding state (which shard has replicas where; Weaviate serves it with
// REPLICA_MOVEMENT_ENABLED, as scripts/weaviate-cluster.sh sets). Without it, only the count of
// shards without a live replica is known.
func (c *Client) Health(ctx context.Context) (down []string, missing int, err error) {
	cl, err := c.localClass(ctx)
	if err != nil {
		return nil, 0, err
	}
	st, err := c.client.Cluster().NodesStatusGetter().WithClass(c.t.Collection).WithOutput("verbose").Do(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the nodes' status from %s: %w", c.node.REST, err)
	}
	healthy, live := map[string]bool{}, map[string]bool{}
	for _, n := range st.Nodes {
		if n.Status == nil || *n.Status != models.NodeStatusStatusHEALTHY {
			down = append(down, n.Name)
			continue
		}
		healthy[n.Name] = true
		for _, sh := range n.Shards {
			if sh.Class == c.t.Collection {
				live[sh.Name] = true
			}
		}
	}
	if shards, err := c.shardingState(ctx); err == nil {
		for _, sh := range shards {
			ok := false
			for _, r := range sh.Replicas {
				ok = ok || healthy[r]
				if !healthy[r] && !slices.Contains(down, r) {
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

// shardingState lists the collection's shards and the nodes of their replicas.
func (c *Client) shardingState(ctx context.Context) ([]*models.ReplicationShardReplicas, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.node.REST+"/v1/replication/sharding-state?collection="+c.t.Collection, nil)
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
	switch {
	case err != nil:
		return fmt.Sprintf("cannot check the cluster's health (%v): results may be partial", err)
	case missing > 0:
		return fmt.Sprintf("nodes down: %s; %d shards have no live replica: results are partial", cmp.Or(strings.Join(down, ", "), "(unnamed)"), missing)
	case len(down) > 0:
		return fmt.Sprintf("nodes down: %s; every shard still has a live replica, so results are complete", strings.Join(down, ", "))
	}
	return ""
}
