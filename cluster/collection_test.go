package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
