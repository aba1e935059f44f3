package index

import "time"

// Meta is the metadata document stored with an index (see FORMAT.md, "Meta").
type Meta struct {
	Created      string   `json:"created,omitempty"`
	Tool         string   `json:"tool,omitempty"`
	Sources      []Source `json:"sources,omitempty"`
	DuplicateIDs bool     `json:"duplicate_ids,omitempty"`
	Model        *Model   `json:"model,omitempty"`
	// Root is the photo folder the ids are relative to (see package folder), when known.
	Root string `json:"root,omitempty"`
	// ExifTranspose says the images were turned upright by their EXIF orientation before embedding.
	ExifTranspose bool `json:"exif_transpose,omitempty"`
	// SortedIDs says the rows are stored in increasing byte order of their ids.
	SortedIDs bool `json:"sorted_ids,omitempty"`
}

// Source describes one input shard of an index.
type Source struct {
	IDs      string `json:"ids"`
	Features string `json:"features"`
	Rows     int    `json:"rows"`
	DType    string `json:"dtype"`
}

// Model records the embedding model and preprocessing the vectors were made with.
type Model struct {
	SHA256 string    `json:"sha256"`
	File   string    `json:"file,omitempty"`
	Input  string    `json:"input"`
	Output string    `json:"output"`
	Size   int       `json:"size"`
	Layout string    `json:"layout"`
	Scale  float64   `json:"scale"`
	Mean   []float64 `json:"mean,omitempty"`
	Std    []float64 `json:"std,omitempty"`
	Resize string    `json:"resize"`
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }
