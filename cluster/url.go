// Package cluster keeps a simsearch collection in a Weaviate cluster: it creates the collection,
// pushes an index's vectors into it (resumably: only what differs is sent), and answers
// nearest-neighbour queries through it with simsearch's ids and Euclidean distances. Beyond one
// machine simsearch drives an existing distributed engine rather than a home-made one.
package cluster

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// grpcOffset is the distance from a node's REST port to its gRPC port unless the URL says
// otherwise: Weaviate's defaults (8080 -> 50051), which scripts/weaviate-cluster.sh keeps for
// every node.
const grpcOffset = 50051 - 8080

// Target is where a collection lives: one or more nodes of a cluster (tried in order, so that a
// query still finds the cluster when a node is down) and the collection's name.
type Target struct {
	Nodes      []Node
	Collection string
}

// Node is one node's REST and gRPC addresses.
type Node struct {
	REST, GRPC string // host:port
}

// ParseURL reads weaviate://HOST:PORT[,HOST:PORT...]/COLLECTION[?grpc=PORT[,PORT...]]. The
// collection's first letter is upper-cased, as Weaviate does with class names.
func ParseURL(s string) (Target, error) {
	bad := func(why string) (Target, error) {
		return Target{}, fmt.Errorf("%q: %s (want weaviate://HOST:PORT/COLLECTION, e.g. weaviate://127.0.0.1:8080/Photos)", s, why)
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad(err.Error())
	}
	if u.Scheme != "weaviate" {
		return bad("the scheme must be weaviate://")
	}
	name := strings.Trim(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return bad("name one collection after the host")
	}
	for i, r := range name {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || i > 0 && (unicode.IsDigit(r) || r == '_')) {
			return bad("a collection name is a letter followed by letters, digits and _")
		}
	}
	t := Target{Collection: strings.ToUpper(name[:1]) + name[1:]}
	var grpcPorts []string
	if g := u.Query().Get("grpc"); g != "" {
		grpcPorts = strings.Split(g, ",")
	}
	for i, hp := range strings.Split(u.Host, ",") {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return bad(fmt.Sprintf("%q is not HOST:PORT", hp))
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return bad(fmt.Sprintf("%q is not a port", port))
		}
		g := p + grpcOffset
		if i < len(grpcPorts) {
			if g, err = strconv.Atoi(grpcPorts[i]); err != nil || g < 1 || g > 65535 {
				return bad(fmt.Sprintf("grpc=%q is not a list of ports", u.Query().Get("grpc")))
			}
		} else if g > 65535 {
			return bad(fmt.Sprintf("REST port %d leaves no default gRPC port (REST+%d): add ?grpc=PORT", p, grpcOffset))
		}
		t.Nodes = append(t.Nodes, Node{REST: hp, GRPC: net.JoinHostPort(host, strconv.Itoa(g))})
	}
	return t, nil
}

// String is the target as a URL.
func (t Target) String() string {
	hosts := make([]string, len(t.Nodes))
	for i, n := range t.Nodes {
		hosts[i] = n.REST
	}
	return "weaviate://" + strings.Join(hosts, ",") + "/" + t.Collection
}
