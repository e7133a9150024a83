package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestAuthDefaultsToBuiltin(t *testing.T) {
	c, err := LoadFrom(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Provider != AuthBuiltin {
		t.Fatalf("provider %q, want builtin", c.Auth.Provider)
	}
	// Supabase settings are not required (nor checked) with builtin.
	c, err = LoadFrom(env(map[string]string{"AICODE_SUPABASE_URL": "not a url"}))
	if err != nil || c.Auth.Provider != AuthBuiltin {
		t.Fatalf("builtin with stray supabase settings: %v", err)
	}
}

func TestAuthSupabaseDefaultsDeriveFromURL(t *testing.T) {
	c, err := LoadFrom(env(map[string]string{
		"AICODE_AUTH_PROVIDER":         "Supabase",
		"AICODE_SUPABASE_URL":          "https://abc.supabase.co/",
		"AICODE_SUPABASE_ANON_KEY":     "anon",
		"AICODE_SUPABASE_ADMIN_EMAILS": " Boss@Example.com , ops@example.com,",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := AuthConfig{Provider: AuthSupabase, Supabase: SupabaseConfig{
		URL:         "https://abc.supabase.co",
		AnonKey:     "anon",
		JWKSURL:     "https://abc.supabase.co/auth/v1/.well-known/jwks.json",
		Issuer:      "https://abc.supabase.co/auth/v1",
		Audience:    "authenticated",
		AdminEmails: []string{"boss@example.com", "ops@example.com"},
	}}
	if !reflect.DeepEqual(c.Auth, want) {
		t.Fatalf("got %+v\nwant %+v", c.Auth, want)
	}
	if c.Auth.Supabase.GoTrueURL() != "https://abc.supabase.co/auth/v1" {
		t.Error(c.Auth.Supabase.GoTrueURL())
	}
	if !c.Auth.Supabase.IsAdminEmail("BOSS@example.com ") || c.Auth.Supabase.IsAdminEmail("other@example.com") {
		t.Error("IsAdminEmail")
	}
}

func TestAuthSupabaseExplicitSettings(t *testing.T) {
	c, err := LoadFrom(env(map[string]string{
		"AICODE_AUTH_PROVIDER":       "supabase",
		"AICODE_SUPABASE_URL":        "http://127.0.0.1:9999",
		"AICODE_SUPABASE_ANON_KEY":   "anon",
		"AICODE_SUPABASE_JWT_SECRET": strings.Repeat("s", 40),
		"AICODE_SUPABASE_JWKS_URL":   "http://keys.internal/jwks.json",
		"AICODE_SUPABASE_ISSUER":     "http://issuer.example/auth/v1/",
		"AICODE_SUPABASE_AUDIENCE":   "app",
	}))
	if err != nil {
		t.Fatal(err)
	}
	sb := c.Auth.Supabase
	if sb.JWTSecret != strings.Repeat("s", 40) || sb.JWKSURL != "http://keys.internal/jwks.json" ||
		sb.Issuer != "http://issuer.example/auth/v1" || sb.Audience != "app" || len(sb.AdminEmails) != 0 {
		t.Fatalf("%+v", sb)
	}
}

func TestAuthSupabaseValidation(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{
			"AICODE_AUTH_PROVIDER":     "supabase",
			"AICODE_SUPABASE_URL":      "https://abc.supabase.co",
			"AICODE_SUPABASE_ANON_KEY": "anon",
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unknown provider", map[string]string{"AICODE_AUTH_PROVIDER": "ldap"}, "AICODE_AUTH_PROVIDER"},
		{"no url", base("AICODE_SUPABASE_URL", ""), "AICODE_SUPABASE_URL is required"},
		{"bad url", base("AICODE_SUPABASE_URL", "ftp://x"), "AICODE_SUPABASE_URL"},
		{"no anon key", base("AICODE_SUPABASE_ANON_KEY", ""), "AICODE_SUPABASE_ANON_KEY is required"},
		{"short secret", base("AICODE_SUPABASE_JWT_SECRET", "short"), "AICODE_SUPABASE_JWT_SECRET"},
		{"bad jwks", base("AICODE_SUPABASE_JWKS_URL", "file:///etc/keys"), "AICODE_SUPABASE_JWKS_URL"},
		{"bad admin", base("AICODE_SUPABASE_ADMIN_EMAILS", "boss"), "AICODE_SUPABASE_ADMIN_EMAILS"},
		// Without a URL there is no JWKS default either.
		{"no way to verify", base("AICODE_SUPABASE_URL", ""), "AICODE_SUPABASE_JWT_SECRET or AICODE_SUPABASE_JWKS_URL"},
	} {
		_, err := LoadFrom(env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	// The secret never appears in an error.
	_, err := LoadFrom(env(base("AICODE_SUPABASE_JWT_SECRET", "tiny-secret-value")))
	if err == nil || strings.Contains(err.Error(), "tiny-secret-value") {
		t.Errorf("short secret error leaks it or is missing: %v", err)
	}
}
