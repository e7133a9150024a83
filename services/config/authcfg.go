package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Sign-in providers.
const (
	AuthBuiltin  = "builtin"
	AuthSupabase = "supabase"
)

// AuthConfig chooses who signs people in: the built-in accounts (default)
// or Supabase (GoTrue).
type AuthConfig struct {
	Provider string // "builtin" or "supabase"
	Supabase SupabaseConfig
}

// SupabaseConfig points at a Supabase project's GoTrue and says how its
// access tokens are checked.
type SupabaseConfig struct {
	// URL is the project URL (https://<ref>.supabase.co); GoTrue answers
	// under URL/auth/v1.
	URL string
	// AnonKey is the project's public (anon) API key, sent to GoTrue.
	AnonKey string
	// JWTSecret verifies HS256 access tokens (the project's legacy shared
	// secret). Secret: never logged.
	JWTSecret string
	// JWKSURL publishes the project's asymmetric signing keys (ES256/RS256).
	JWKSURL string
	// Issuer and Audience are what access tokens must carry in iss and aud.
	Issuer   string
	Audience string
	// AdminEmails get the admin role when they first sign in; everyone
	// else becomes a member. Lower-cased.
	AdminEmails []string
}

// GoTrueURL is where GoTrue answers.
func (s SupabaseConfig) GoTrueURL() string { return s.URL + "/auth/v1" }

// IsAdminEmail reports whether email is listed in AdminEmails.
func (s SupabaseConfig) IsAdminEmail(email string) bool {
	email = strings.ToLower(strings.TrimSpace(email))
	for _, a := range s.AdminEmails {
		if a == email {
			return true
		}
	}
	return false
}

func loadAuth(p *parser) AuthConfig {
	c := AuthConfig{Provider: strings.ToLower(p.str("AICODE_AUTH_PROVIDER", AuthBuiltin))}
	sb := SupabaseConfig{
		URL:       strings.TrimRight(p.str("AICODE_SUPABASE_URL", ""), "/"),
		AnonKey:   p.str("AICODE_SUPABASE_ANON_KEY", ""),
		JWTSecret: p.str("AICODE_SUPABASE_JWT_SECRET", ""),
		JWKSURL:   p.str("AICODE_SUPABASE_JWKS_URL", ""),
		Issuer:    strings.TrimRight(p.str("AICODE_SUPABASE_ISSUER", ""), "/"),
		Audience:  p.str("AICODE_SUPABASE_AUDIENCE", "authenticated"),
	}
	for _, e := range p.list("AICODE_SUPABASE_ADMIN_EMAILS") {
		sb.AdminEmails = append(sb.AdminEmails, strings.ToLower(e))
	}
	switch c.Provider {
	case AuthBuiltin:
	case AuthSupabase:
		p.errs = append(p.errs, validateSupabase(&sb)...)
	default:
		p.errs = append(p.errs, fmt.Errorf("AICODE_AUTH_PROVIDER: %q is neither builtin nor supabase", c.Provider))
	}
	c.Supabase = sb
	return c
}

// validateSupabase checks the settings and fills the defaults derived from
// the project URL.
func validateSupabase(sb *SupabaseConfig) []error {
	var errs []error
	if sb.URL == "" {
		errs = append(errs, errors.New("AICODE_SUPABASE_URL is required with AICODE_AUTH_PROVIDER=supabase"))
	} else if !isSupabaseHTTPURL(sb.URL) {
		errs = append(errs, fmt.Errorf("AICODE_SUPABASE_URL: %q is not an http(s) URL", sb.URL))
	}
	if sb.AnonKey == "" {
		errs = append(errs, errors.New("AICODE_SUPABASE_ANON_KEY is required with AICODE_AUTH_PROVIDER=supabase"))
	}
	if sb.JWTSecret != "" && len(sb.JWTSecret) < 32 {
		errs = append(errs, errors.New("AICODE_SUPABASE_JWT_SECRET must be at least 32 characters"))
	}
	if sb.URL != "" {
		if sb.JWKSURL == "" {
			sb.JWKSURL = sb.GoTrueURL() + "/.well-known/jwks.json"
		}
		if sb.Issuer == "" {
			sb.Issuer = sb.GoTrueURL()
		}
	}
	if sb.JWKSURL != "" && !isSupabaseHTTPURL(sb.JWKSURL) {
		errs = append(errs, fmt.Errorf("AICODE_SUPABASE_JWKS_URL: %q is not an http(s) URL", sb.JWKSURL))
	}
	if sb.JWTSecret == "" && sb.JWKSURL == "" {
		errs = append(errs, errors.New("set AICODE_SUPABASE_JWT_SECRET or AICODE_SUPABASE_JWKS_URL so access tokens can be verified"))
	}
	for _, e := range sb.AdminEmails {
		if !strings.Contains(e, "@") {
			errs = append(errs, fmt.Errorf("AICODE_SUPABASE_ADMIN_EMAILS: %q is not an email address", e))
		}
	}
	return errs
}

func isSupabaseHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
