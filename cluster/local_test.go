package cluster

import (
	"fmt"
	"net"
	"testing"
)

// TestFreeBaseAllInterfaces checks that a port taken on an address other than 127.0.0.1 counts
// as taken: Weaviate's gRPC and data ports listen on every interface.
func TestFreeBaseAllInterfaces(t *testing.T) {
	base, err := FreeBase(1, 20000)
	if err != nil {
		t.Fatal(err)
	}
	grpc := LocalPorts(base, 0)[1]
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", grpc)) // another address, as another server's might be
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	if portsFree(base, 1) {
		t.Errorf("port %d is listened on (on 127.0.0.2), yet a cluster at %d counts as free", grpc, base)
	}
	ln.Close()
	if !portsFree(base, 1) {
		t.Errorf("a cluster at %d counts as taken once port %d is free again", base, grpc)
	}
}
