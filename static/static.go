// Package static embeds the built front-end assets (CSS, htmx, our own
// scripts) so the binary serves them itself. `make assets` builds them into
// dist/; a fresh clone still compiles (dist/ then holds only .gitkeep) and
// the app warns that styles and scripts are missing.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"path"
	"sync"
)

//go:embed all:dist
var dist embed.FS

// FS is the tree served under /static/.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed directive guarantees dist exists
	}
	return sub
}

// Required are the assets every page loads; Missing reports which are absent.
var Required = []string{"app.css", "htmx.min.js", "htmx-sse.js", "app.js", "theme.js"}

// Missing lists required assets that were not built into the binary.
func Missing() []string {
	var out []string
	for _, name := range Required {
		if _, err := fs.Stat(FS(), name); err != nil {
			out = append(out, name)
		}
	}
	return out
}

var (
	hashesOnce sync.Once
	hashes     map[string]string
)

// Hash is a short content hash of an asset, used to bust caches.
func Hash(name string) string {
	hashesOnce.Do(func() {
		hashes = map[string]string{}
		_ = fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, err := fs.ReadFile(FS(), p)
			if err != nil {
				return nil
			}
			sum := sha256.Sum256(b)
			hashes[p] = hex.EncodeToString(sum[:6])
			return nil
		})
	})
	return hashes[name]
}

// URL is the cache-busting URL of an asset.
func URL(name string) string {
	return path.Join("/static", name) + "?v=" + Hash(name)
}
