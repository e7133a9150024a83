package config

// AuthConfig chooses who signs people in: the built-in accounts (default)
// or Supabase (GoTrue).
type AuthConfig struct {
	Provider string // "builtin" or "supabase"
}

func loadAuth(p *parser) AuthConfig {
	return AuthConfig{Provider: p.str("AICODE_AUTH_PROVIDER", "builtin")}
}
