package serve

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
)

// The page's origin also serves /objects/, files from a folder the server does not control. So
// that such a file can never run as a script or a page on that origin, every response says
// nosniff and carries a Content-Security-Policy, and /objects/ serves images only.

// contentPolicy is the Content-Security-Policy of every response: nothing from elsewhere, no
// plugins or frames, and inline code only when it is the page's own, by hash. The hashes are
// computed from the embedded page when the server starts, so the policy follows the page's edits.
func contentPolicy(page fs.FS) (string, error) {
	var scripts, styles, scriptAttrs, styleAttrs []string
	err := fs.WalkDir(page, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".html" {
			return err
		}
		b, err := fs.ReadFile(page, p)
		if err != nil {
			return err
		}
		s := string(b)
		scripts = append(scripts, hashes(inlineScript, s, false)...)
		styles = append(styles, hashes(inlineStyle, s, false)...)
		scriptAttrs = append(scriptAttrs, hashes(handlerAttr, s, true)...)
		styleAttrs = append(styleAttrs, hashes(styleAttr, s, true)...)
		return nil
	})
	if err != nil {
		return "", err
	}
	src := func(hashes, attrHashes []string) string {
		v := append([]string{"'self'"}, hashes...)
		if len(attrHashes) > 0 {
			v = append(append(v, "'unsafe-hashes'"), attrHashes...)
		}
		return strings.Join(v, " ")
	}
	return fmt.Sprintf("default-src 'none'; script-src %s; style-src %s; img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		src(scripts, scriptAttrs), src(styles, styleAttrs)), nil
}

var (
	inlineScript = regexp.MustCompile(`(?is)<script(?:\s[^>]*)?>(.*?)</script>`)
	inlineStyle  = regexp.MustCompile(`(?is)<style(?:\s[^>]*)?>(.*?)</style>`)
	handlerAttr  = regexp.MustCompile(`(?i)\son[a-z]+\s*=\s*"([^"]*)"`)
	styleAttr    = regexp.MustCompile(`(?i)\sstyle\s*=\s*"([^"]*)"`)
)

// hashes returns the CSP hash source of each match's text (an attribute's value unescaped, as
// the browser hashes it). A <script src=…> has no inline text and needs no hash.
func hashes(re *regexp.Regexp, s string, attr bool) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		text := m[1]
		if attr {
			text = html.UnescapeString(text)
		}
		if text == "" {
			continue
		}
		h := sha256.Sum256([]byte(text))
		out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(h[:])+"'")
	}
	return out
}

// imageExts are the file extensions /objects/ serves: the formats simsearch reads.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".webp": true, ".bmp": true}

// imageTypes are the sniffed types /objects/ serves, so that a page or an SVG named .jpg is not.
var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true, "image/bmp": true}

// imageType returns the Content-Type to serve f (named name) with: the type its first bytes show
// (Pillow opens a PNG named .jpg just as well), or "" if its extension is not an image's or its
// content is not an image of an allowed type.
func imageType(name string, f io.ReadSeeker) (string, error) {
	if !imageExts[strings.ToLower(path.Ext(name))] {
		return "", nil
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if t := http.DetectContentType(head[:n]); imageTypes[t] {
		return t, nil
	}
	return "", nil
}
