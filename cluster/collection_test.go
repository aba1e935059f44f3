package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weaviate/weaviate-go-client/v5/weaviate"
)

// fakeNodes are HTTP servers that answer what Connect asks of a node (ready, live, meta), the
// i-th ready unless unready[i]: the failover below is the client's own logic, whatever the
// request it retries. Live nodes are in cmd/simsearch's TestWeaviateCluster.
func fakeNodes(t *testing.T, n int, unready ...bool) Target {
	t.Helper()
	var tg Target
	for i := range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/v1/meta":
				fmt.Fprint(w, `{"version": "1.35.2"}`)
			case "/v1/.well-known/ready":
				if i < len(unready) && unready[i] {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			}
		}))
		t.Cleanup(srv.Close)
		host := strings.TrimPrefix(srv.URL, "http://")
		tg.Nodes = append(tg.Nodes, Node{REST: host, GRPC: host})
	}
	tg.Collection = "P"
	return tg
}

// TestFailover checks that a request failing on the node in use is tried on the next nodes,
// that the node which answered is used from then on, that what is not a node's failure is not
// retried, and that a dead node is skipped by Connect.
func TestFailover(t *testing.T) {
	tg := fakeNodes(t, 3)
	c, err := Connect(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Node() != tg.Nodes[0] {
		t.Fatalf("connected to %v, want the first node", c.Node())
	}
	ctx := context.Background()
	dead := map[Node]bool{tg.Nodes[0]: true, tg.Nodes[1]: true}
	var asked []Node
	try := func(n Node, _ *weaviate.Client) error {
		asked = append(asked, n)
		if dead[n] {
			return errors.New("connection refused")
		}
		return nil
	}
	if err := c.on(ctx, try); err != nil || c.Node() != tg.Nodes[2] || len(asked) != 3 {
		t.Errorf("on with nodes 0 and 1 failing: %v, node in use %v after asking %v; want node 2", err, c.Node(), asked)
	}
	asked = nil
	if err := c.on(ctx, try); err != nil || len(asked) != 1 || asked[0] != tg.Nodes[2] {
		t.Errorf("on after the failover asked %v (%v), want node 2 alone", asked, err)
	}

	dead[tg.Nodes[2]] = true
	asked = nil
	err = c.on(ctx, try)
	if err == nil || len(asked) != 3 || !strings.Contains(err.Error(), "on every node") || !strings.Contains(err.Error(), tg.Nodes[0].REST) {
		t.Errorf("on with every node failing: %v after asking %v; want an error naming each node", err, asked)
	}

	asked = nil
	missing := func(n Node, _ *weaviate.Client) error {
		asked = append(asked, n)
		return c.noCollection()
	}
	if err := c.on(ctx, missing); !errors.Is(err, ErrNoCollection) || len(asked) != 1 {
		t.Errorf("on with the collection missing: %v after asking %v; want ErrNoCollection from one node", err, asked)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	asked = nil
	if err := c.on(cctx, try); err == nil || len(asked) > 1 {
		t.Errorf("on with the context cancelled: %v after asking %v; want one attempt at most", err, asked)
	}

	// Connect skips a node that does not answer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	tg2 := Target{Nodes: append([]Node{{REST: closed, GRPC: closed}}, tg.Nodes[1]), Collection: "P"}
	c2, err := Connect(ctx, tg2)
	if err != nil || c2.Node() != tg.Nodes[1] {
		t.Errorf("Connect with the first node closed: %v, %v; want the second node", c2, err)
	}
}

// TestUnreadyNodes checks that a node that is up but not ready is used only when no node is
// ready: a node that sees too few of its peers says it is not ready, and then it is all there is.
func TestUnreadyNodes(t *testing.T) {
	ctx := context.Background()
	tg := fakeNodes(t, 2, true, false)
	c, err := Connect(ctx, tg)
	if err != nil || c.Node() != tg.Nodes[1] {
		t.Fatalf("Connect with node 0 not ready: %v, want node 1", err)
	}
	var asked []Node
	failOn1 := func(n Node, _ *weaviate.Client) error {
		asked = append(asked, n)
		if n == tg.Nodes[1] {
			return errors.New("connection refused")
		}
		return nil
	}
	if err := c.on(ctx, failOn1); err != nil || c.Node() != tg.Nodes[0] || len(asked) != 2 {
		t.Errorf("on with node 1 failing: %v, asked %v; want the unready node 0 at last", err, asked)
	}

	tg = fakeNodes(t, 2, true, true)
	if c, err = Connect(ctx, tg); err != nil || c.Node() != tg.Nodes[0] {
		t.Errorf("Connect with no node ready: %v, want node 0, which is up", err)
	}
}

// TestHealthNodeJustKilled checks Health in the window after a node dies and before its peers
// drop it: Weaviate 1.35.2 then fails the whole nodes' status request, naming the node it could
// not reach. With the target listing every node that holds a replica, and the named node alone
// not answering, the node is down and the answers are complete (or partial, when a shard lived
// on that node alone); when simsearch's own view disagrees, nothing is concluded. When the dead
// node was the Raft leader, the sharding state hangs until a new one is elected: the placement
// last read stands in for it, and without one nothing is concluded.
func TestHealthNodeJustKilled(t *testing.T) {
	var leaderGone atomic.Bool
	const refused = `{"error":[{"message":"node: node0: send http request: Get \"http://127.0.0.1:20645/nodes/status/P?output=verbose\": dial tcp 127.0.0.1:20645: connect: connection refused"}]}`
	cluster := func(t *testing.T, replicas string, aliveNode0 bool) Target {
		var tg Target
		for i := range 3 {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/v1/meta":
					fmt.Fprint(w, `{"version": "1.35.2"}`)
				case "/v1/.well-known/ready", "/v1/.well-known/live":
				case "/v1/schema/P":
					fmt.Fprint(w, `{"class": "P"}`)
				case "/v1/nodes/P":
					w.WriteHeader(http.StatusInternalServerError)
					fmt.Fprint(w, refused)
				case "/v1/replication/sharding-state":
					if leaderGone.Load() {
						<-r.Context().Done() // as Weaviate waits for a leader
						return
					}
					fmt.Fprintf(w, `{"shardingState": {"collection": "P", "shards": [%s]}}`, replicas)
				default:
					http.NotFound(w, r)
				}
			}))
			t.Cleanup(srv.Close)
			host := strings.TrimPrefix(srv.URL, "http://")
			tg.Nodes = append(tg.Nodes, Node{REST: host, GRPC: host})
			if i == 0 && !aliveNode0 {
				srv.Close() // node0 killed: its port refuses
			}
		}
		tg.Collection = "P"
		return tg
	}
	twoEach := `{"shard": "a", "replicas": ["node0", "node1"]}, {"shard": "b", "replicas": ["node1", "node2"]}, {"shard": "c", "replicas": ["node2", "node0"]}`
	alone := `{"shard": "a", "replicas": ["node0"]}, {"shard": "b", "replicas": ["node1"]}, {"shard": "c", "replicas": ["node2"]}`
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		replicas    string
		aliveNode0  bool
		wantErr     string // what keeps Health from concluding
		wantMissing int
	}{
		{"two replicas each", twoEach, false, "", 0},
		{"a shard on node0 alone", alone, false, "", 1},
		// node0 answers simsearch, so the failure names a node that is not the one down, or
		// another node is down too: not concluded.
		{"the named node answers", twoEach, true, "0 of the URL's nodes do not answer", 0},
		// The target lists three nodes, the replicas live on four: a fourth may be down unseen.
		{"a node the target does not list", twoEach + `, {"shard": "d", "replicas": ["node3", "node1"]}`, false, "may be down unseen", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Connect(ctx, cluster(t, tc.replicas, tc.aliveNode0))
			if err != nil {
				t.Fatal(err)
			}
			down, missing, err := c.Health(ctx)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), "nodes' status") || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Health: down %v, missing %d, err %v; want the status error and %q", down, missing, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(down, []string{"node0"}) || missing != tc.wantMissing {
				t.Errorf("Health: down %v, missing %d, err %v; want node0 down, %d missing", down, missing, err, tc.wantMissing)
			}
		})
	}

	t.Run("the leader gone", func(t *testing.T) {
		leaderGone.Store(false)
		defer leaderGone.Store(false)
		c, err := Connect(ctx, cluster(t, twoEach, false))
		if err != nil {
			t.Fatal(err)
		}
		leaderGone.Store(true)
		if _, _, err := c.Health(ctx); err == nil || !strings.Contains(err.Error(), "reading the shards' replicas") {
			t.Errorf("Health with the sharding state never read: %v; want the status error, nothing concluded", err)
		}
		leaderGone.Store(false)
		if _, err := c.shardingState(ctx, c.Node()); err != nil {
			t.Fatal(err)
		}
		leaderGone.Store(true)
		if down, missing, err := c.Health(ctx); err != nil || !slices.Equal(down, []string{"node0"}) || missing != 0 {
			t.Errorf("Health with the sharding state read before: down %v, missing %d, err %v; want node0 down, none missing", down, missing, err)
		}
	})
}

// TestChangedInBackground checks that Changed answers a server's searches at once: the first
// call waits for the check, a later one past healthEvery returns the answer kept and starts a
// check in the background, whose answer the calls after it see.
func TestChangedInBackground(t *testing.T) {
	const slow = 300 * time.Millisecond
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/meta":
			fmt.Fprint(w, `{"version": "1.35.2"}`)
		case "/v1/.well-known/ready", "/v1/.well-known/live":
		case "/v1/schema/P":
			fmt.Fprint(w, `{"class": "P"}`)
		case "/v1/nodes/P":
			time.Sleep(slow)
			if failing.Load() {
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprint(w, `{"error":[{"message":"the cluster is in trouble"}]}`)
				return
			}
			fmt.Fprint(w, `{"nodes": [{"name": "node0", "status": "HEALTHY", "shards": [{"class": "P", "name": "a"}]}]}`)
		case "/v1/replication/sharding-state":
			fmt.Fprint(w, `{"shardingState": {"collection": "P", "shards": [{"shard": "a", "replicas": ["node0"]}]}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := Connect(context.Background(), Target{Nodes: []Node{{REST: host, GRPC: host}}, Collection: "P"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Searcher{c: c}
	start := time.Now()
	if err := s.Changed(); err != nil || time.Since(start) < slow {
		t.Fatalf("first Changed: %v after %v; want nil after the check (%v)", err, time.Since(start), slow)
	}
	failing.Store(true)
	if err := s.Changed(); err != nil {
		t.Errorf("Changed within healthEvery: %v, want the kept answer", err)
	}
	s.health.Lock()
	s.healthAt = time.Now().Add(-2 * healthEvery)
	s.health.Unlock()
	start = time.Now()
	if err := s.Changed(); err != nil || time.Since(start) >= slow {
		t.Errorf("Changed with a stale answer: %v after %v; want the kept answer at once", err, time.Since(start))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Changed()
		if err != nil && strings.Contains(err.Error(), "results may be partial") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background check's answer never came: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
