package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
)

func TestTokensEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"both empty", "", "", false},
		{"first empty", "", "tok", false},
		{"second empty", "tok", "", false},
		{"equal", "tok", "tok", true},
		{"equal long", strings.Repeat("x", 100), strings.Repeat("x", 100), true},
		{"different", "tok", "tik", false},
		{"prefix", "tok", "toke", false},
		{"case differs", "Tok", "tok", false},
		{"trailing space", "tok", "tok ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TokensEqual(tt.a, tt.b); got != tt.want {
				t.Fatalf("TokensEqual(%q, %q) = %v; want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestSessionID(t *testing.T) {
	tests := []struct {
		token string
		want  string
	}{
		// SHA-256 test vectors.
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tt := range tests {
		if got := SessionID(tt.token); got != tt.want {
			t.Errorf("SessionID(%q) = %q; want %q", tt.token, got, tt.want)
		}
	}

	tok, err := NewCookieValue()
	if err != nil {
		t.Fatal(err)
	}
	a, b := SessionID(tok), SessionID(tok)
	if a != b {
		t.Fatalf("SessionID is not deterministic: %q vs %q", a, b)
	}
	if !hex64.MatchString(a) {
		t.Fatalf("SessionID = %q; want 64 lower-case hex digits", a)
	}
	if strings.Contains(a, tok) {
		t.Fatal("SessionID contains the token")
	}
	if SessionID(tok+"x") == a {
		t.Fatal("different tokens give the same id")
	}
}

func TestNewCookieValue(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		v, err := NewCookieValue()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(raw) != 32 {
			t.Fatalf("cookie value %q: %d bytes, %v; want 32 random bytes, URL-safe base64", v, len(raw), err)
		}
		if seen[v] {
			t.Fatalf("cookie value %q repeated", v)
		}
		seen[v] = true
	}
}

func TestAnonCSRFToken(t *testing.T) {
	secretA := []byte("0123456789abcdef0123456789abcdef")
	secretB := []byte("fedcba9876543210fedcba9876543210")
	sa := NewService(nil, nil, nil, Options{Secret: secretA})
	sa2 := NewService(nil, nil, nil, Options{Secret: append([]byte(nil), secretA...)})
	sb := NewService(nil, nil, nil, Options{Secret: secretB})

	tok := sa.AnonCSRFToken("cookie-1")
	if tok == "" {
		t.Fatal("empty token")
	}
	if raw, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(raw) != sha256.Size {
		t.Fatalf("token %q: %d bytes, %v; want a URL-safe base64 HMAC-SHA256", tok, len(raw), err)
	}
	// HMAC-SHA256 keyed by the secret over a domain-separated cookie.
	mac := hmac.New(sha256.New, secretA)
	mac.Write([]byte("anon-csrf:cookie-1"))
	if want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); tok != want {
		t.Fatalf("token = %q; want HMAC %q", tok, want)
	}

	tests := []struct {
		name  string
		other string
		same  bool
	}{
		{"same secret, same cookie", sa.AnonCSRFToken("cookie-1"), true},
		{"equal secret in another service, same cookie", sa2.AnonCSRFToken("cookie-1"), true},
		{"same secret, other cookie", sa.AnonCSRFToken("cookie-2"), false},
		{"same secret, empty cookie", sa.AnonCSRFToken(""), false},
		{"other secret, same cookie", sb.AnonCSRFToken("cookie-1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.other == tok; got != tt.same {
				t.Fatalf("token %q vs %q: equal = %v; want %v", tok, tt.other, got, tt.same)
			}
			if got := TokensEqual(tok, tt.other); got != tt.same {
				t.Fatalf("TokensEqual = %v; want %v", got, tt.same)
			}
		})
	}
	// The token is not the session-id form of the cookie.
	if tok == SessionID("cookie-1") || strings.EqualFold(tok, hex.EncodeToString([]byte("cookie-1"))) {
		t.Fatal("token is derivable without the secret")
	}
}
