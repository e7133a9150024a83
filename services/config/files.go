package config

// FilesConfig bounds file transfer and snapshots.
type FilesConfig struct{}

func loadFiles(p *parser) FilesConfig { return FilesConfig{} }
