package serve

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// TestCapabilities checks that a server of an index file says it has every view of the page
// (a cluster's server, which lacks duplicates and the map, is checked in cmd/simsearch's
// TestWeaviateCluster).
func TestCapabilities(t *testing.T) {
	ts := start(t, Options{})
	res, err := http.Get(ts.url + "/capabilities")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var c struct {
		Views []string `json:"views"`
	}
	if err := json.NewDecoder(res.Body).Decode(&c); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("/capabilities: %d, %v", res.StatusCode, err)
	}
	if !slices.Equal(c.Views, []string{"search", "dupes", "map"}) {
		t.Errorf("/capabilities of an index file: %v, want every view", c.Views)
	}
}
