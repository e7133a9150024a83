package app

import (
	"fmt"
	"net/http"
	"time"

	"aicode/handlers"
	"aicode/services/auth"
	"aicode/services/config"
	"aicode/services/secrets"
)

// accountsFor returns who signs people in for the web layer: the built-in
// accounts, or Supabase wrapped around them (the local users, sessions,
// roles and policy stay the same).
func accountsFor(cfg config.Config, builtin *auth.Service, box *secrets.Box) (handlers.Accounts, error) {
	if cfg.Auth.Provider != config.AuthSupabase {
		return builtin, nil
	}
	sb := cfg.Auth.Supabase
	hc := &http.Client{Timeout: 10 * time.Second}
	v, err := auth.NewVerifier(auth.VerifierOptions{
		Secret:     []byte(sb.JWTSecret),
		JWKSURL:    sb.JWKSURL,
		Issuer:     sb.Issuer,
		Audience:   sb.Audience,
		HTTPClient: hc,
	})
	if err != nil {
		return nil, fmt.Errorf("supabase: %w", err)
	}
	return auth.NewSupabase(builtin, auth.SupabaseOptions{
		GoTrueURL:   sb.GoTrueURL(),
		AnonKey:     sb.AnonKey,
		AdminEmails: sb.AdminEmails,
		Verifier:    v,
		Box:         box,
		HTTPClient:  hc,
	})
}
