package query

import (
	"simsearch/embed"
	"simsearch/index"
)

// ResolveModel is the model configuration for req and an index whose metadata records rec (nil
// if none), for commands that embed into an index rather than query it (update, add).
func ResolveModel(req ModelRequest, rec *index.Model, indexPath string) (embed.Config, error) {
	return resolve(req, rec, indexPath)
}
