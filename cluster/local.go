package cluster

import (
	"fmt"
	"net"
)

// LocalPorts are the TCP ports scripts/weaviate-cluster.sh gives node i of a cluster started
// with BASE base: REST, gRPC, then gossip, data, raft and raft RPC.
func LocalPorts(base, i int) []int {
	p := base + 100 + 10*i
	return []int{base + i, base + i + grpcOffset, p + 1, p + 2, p + 3, p + 4}
}

// FreeBase finds a BASE, from `from` on, whose ports for an n-node local cluster are all free.
func FreeBase(n, from int) (int, error) {
	for base := from; base+n+grpcOffset <= 65535; base += 37 {
		if portsFree(base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no free ports for a %d-node cluster from %d on", n, from)
}

// portsFree says whether every port of an n-node cluster can be listened on, on every interface:
// a node binds its REST and raft ports to 127.0.0.1 but its gRPC and data ports to all
// interfaces, which a program listening on another address than loopback would block.
func portsFree(base, n int) bool {
	for i := range n {
		for _, port := range LocalPorts(base, i) {
			ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
			if err != nil {
				return false
			}
			ln.Close()
		}
	}
	return true
}
