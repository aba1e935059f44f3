package cluster

import (
	"strings"
	"testing"

	"github.com/weaviate/weaviate/entities/models"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in         string
		collection string
		nodes      []Node
		err        string
	}{
		{in: "weaviate://127.0.0.1:8080/Photos", collection: "Photos", nodes: []Node{{"127.0.0.1:8080", "127.0.0.1:50051"}}},
		{in: "weaviate://h:8081,g:9000/photos_2", collection: "Photos_2", nodes: []Node{{"h:8081", "h:50052"}, {"g:9000", "g:50971"}}},
		{in: "weaviate://h:8080,g:8081/P?grpc=7000", collection: "P", nodes: []Node{{"h:8080", "h:7000"}, {"g:8081", "g:50052"}}},
		{in: "http://h:8080/P", err: "scheme"},
		{in: "weaviate://h:8080/", err: "name one collection"},
		{in: "weaviate://h:8080/a/b", err: "name one collection"},
		{in: "weaviate://h:8080/9lives", err: "a letter followed by"},
		{in: "weaviate://h:8080/a-b", err: "a letter followed by"},
		{in: "weaviate://h/P", err: "not HOST:PORT"},
		{in: "weaviate://h:0/P", err: "not a port"},
		{in: "weaviate://h:60000/P", err: "add ?grpc=PORT"},
		{in: "weaviate://h:8080/P?grpc=x", err: "not a list of ports"},
	} {
		got, err := ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURL(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.Collection != tc.collection || len(got.Nodes) != len(tc.nodes) {
			t.Errorf("ParseURL(%q) = %+v, %v", tc.in, got, err)
			continue
		}
		for i := range tc.nodes {
			if got.Nodes[i] != tc.nodes[i] {
				t.Errorf("ParseURL(%q) node %d = %+v, want %+v", tc.in, i, got.Nodes[i], tc.nodes[i])
			}
		}
	}
}

func TestObjectUUIDAndHash(t *testing.T) {
	a, b := ObjectUUID("55/77/5577.jpg"), ObjectUUID("55/77/5577.jpg")
	if a != b || a == ObjectUUID("55/77/5578.jpg") || len(a) != 36 || a[14] != '5' {
		t.Errorf("ObjectUUID: %s, %s, want equal version-5 UUIDs for equal ids only", a, b)
	}
	v := []float32{1, 2, 3}
	if vectorDigest(v) != vectorDigest([]float32{1, 2, 3}) || vectorDigest(v) == vectorDigest([]float32{1, 2, 3.0000002}) {
		t.Errorf("vectorDigest does not tell vectors apart: %x", vectorDigest(v))
	}
}

func TestParseInfo(t *testing.T) {
	tg := Target{Collection: "P"}
	info, err := parseInfo(tg, &models.Class{Description: descriptionTag + `{"dim": 1280, "model": {"sha256": "ab"}, "exif_transpose": true}`})
	if err != nil || info.Dim != 1280 || info.Model.SHA256 != "ab" || !info.ExifTranspose {
		t.Errorf("parseInfo: %+v, %v", info, err)
	}
	for _, d := range []string{"", "photos", descriptionTag + "{", descriptionTag + `{"dim": 0}`} {
		if _, err := parseInfo(tg, &models.Class{Description: d}); err == nil || !strings.Contains(err.Error(), "not made by simsearch push") {
			t.Errorf("parseInfo(%q): %v", d, err)
		}
	}
}
