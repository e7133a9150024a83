package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"aicode/services/auth"
	"aicode/testutil/fakegotrue"
)

func hsVerifier(t *testing.T, f *fakegotrue.Server, mod func(*auth.VerifierOptions)) *auth.Verifier {
	t.Helper()
	o := auth.VerifierOptions{Secret: []byte(f.Secret()), Issuer: f.Issuer(), Audience: fakegotrue.Audience}
	if mod != nil {
		mod(&o)
	}
	v, err := auth.NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func jwksVerifier(t *testing.T, f *fakegotrue.Server, mod func(*auth.VerifierOptions)) *auth.Verifier {
	t.Helper()
	o := auth.VerifierOptions{JWKSURL: f.GoTrueURL() + "/.well-known/jwks.json", Issuer: f.Issuer(), Audience: fakegotrue.Audience}
	if mod != nil {
		mod(&o)
	}
	v, err := auth.NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantInvalid(t *testing.T, v *auth.Verifier, token, what string) {
	t.Helper()
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("%s: got %v, want ErrInvalidToken", what, err)
	}
}

func TestVerifierHS256(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{})
	v := hsVerifier(t, f, nil)
	ctx := context.Background()
	claims := func() jwt.MapClaims { return f.Claims("user-1", "ada@example.com", "s-1", time.Hour) }

	c, err := v.Verify(ctx, f.Sign(claims()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user-1" || c.Email != "ada@example.com" || c.SessionID != "s-1" || c.Role != "authenticated" {
		t.Fatalf("claims %+v", c)
	}

	mut := func(k string, val any) string {
		m := claims()
		if val == nil {
			delete(m, k)
		} else {
			m[k] = val
		}
		return f.Sign(m)
	}
	wantInvalid(t, v, mut("exp", time.Now().Add(-time.Hour).Unix()), "expired")
	wantInvalid(t, v, mut("exp", nil), "no exp")
	wantInvalid(t, v, mut("nbf", time.Now().Add(time.Hour).Unix()), "not valid yet")
	wantInvalid(t, v, mut("iat", time.Now().Add(time.Hour).Unix()), "issued in the future")
	wantInvalid(t, v, mut("iss", "https://evil.example/auth/v1"), "wrong issuer")
	wantInvalid(t, v, mut("iss", nil), "no issuer")
	wantInvalid(t, v, mut("aud", "anon"), "wrong audience")
	wantInvalid(t, v, mut("sub", nil), "no subject")
	wantInvalid(t, v, "", "empty")
	wantInvalid(t, v, "not.a.jwt", "garbage")
	wantInvalid(t, v, strings.Repeat("a", 20<<10), "oversized")

	// Small clock skew is tolerated.
	if _, err := v.Verify(ctx, mut("exp", time.Now().Add(-2*time.Second).Unix())); err != nil {
		t.Errorf("2s past exp (within leeway): %v", err)
	}

	// A changed payload or signature fails.
	good := f.Sign(claims())
	parts := strings.Split(good, ".")
	other := strings.Split(mut("sub", "user-2"), ".")
	wantInvalid(t, v, parts[0]+"."+other[1]+"."+parts[2], "payload swapped")
	sig := []byte(parts[2])
	sig[3] ^= 1
	wantInvalid(t, v, parts[0]+"."+parts[1]+"."+string(sig), "signature tampered")

	// Another secret, and "none", are refused.
	wrong, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims()).SignedString([]byte("another-secret-another-secret-another"))
	wantInvalid(t, v, wrong, "other secret")
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	wantInvalid(t, v, none, "alg none")
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, claims()).SignedString([]byte(f.Secret()))
	wantInvalid(t, v, hs512, "HS512 (not allow-listed)")

	// Without a JWKS, asymmetric tokens are refused.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wantInvalid(t, v, fakegotrue.SignES256(claims(), "k1", key), "ES256 without JWKS")
}

func TestVerifierCachesUntilExpiry(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{})
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	v := hsVerifier(t, f, func(o *auth.VerifierOptions) { o.Now = clock; o.Leeway = time.Second })
	tok := f.Sign(f.Claims("user-1", "a@example.com", "s", 10*time.Second))
	for i := 0; i < 2; i++ {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("verify %d: %v", i, err)
		}
	}
	mu.Lock()
	now = now.Add(12 * time.Second)
	mu.Unlock()
	wantInvalid(t, v, tok, "cached token after expiry")
}

func TestVerifierJWKS(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{Signing: fakegotrue.ES256})
	v := jwksVerifier(t, f, func(o *auth.VerifierOptions) { o.JWKSMinInterval = time.Hour })
	ctx := context.Background()
	claims := func() jwt.MapClaims { return f.Claims("user-1", "ada@example.com", "s-1", time.Hour) }

	c, err := v.Verify(ctx, f.Sign(claims()))
	if err != nil || c.Subject != "user-1" {
		t.Fatalf("ES256 via JWKS: %+v %v", c, err)
	}
	if n := f.JWKSGets(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}

	// A key the JWKS does not list: refused, and a flood of such tokens
	// fetches the set at most once per interval (here: not again).
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for i := 0; i < 20; i++ {
		wantInvalid(t, v, fakegotrue.SignES256(claims(), "kid-unknown", stranger), "unknown kid")
	}
	// A listed kid with the wrong key (signature does not match).
	wantInvalid(t, v, fakegotrue.SignES256(claims(), f.CurrentKID(), stranger), "listed kid, other key")
	// No kid at all.
	noKid, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims()).SignedString(stranger)
	wantInvalid(t, v, noKid, "no kid")
	if n := f.JWKSGets(); n != 1 {
		t.Errorf("JWKS fetched %d times after unknown kids, want 1 (rate bounded)", n)
	}

	// HS256 is never accepted with a key from the JWKS: neither keyed by
	// the public key's bytes (algorithm confusion) nor by anything else.
	pubKID := f.CurrentKID()
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, claims())
	confused.Header["kid"] = pubKID
	s, _ := confused.SignedString([]byte(pubKID))
	wantInvalid(t, v, s, "HS256 with a JWKS kid")
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims())
	none.Header["kid"] = pubKID
	ns, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	wantInvalid(t, v, ns, "alg none with a JWKS kid")
	// RS256 naming an EC key does not fit.
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	rs := jwt.NewWithClaims(jwt.SigningMethodRS256, claims())
	rs.Header["kid"] = pubKID
	rss, _ := rs.SignedString(rk)
	wantInvalid(t, v, rss, "RS256 naming an EC key")

	// Expired, wrong issuer and audience fail the same way as with HS256.
	m := claims()
	m["exp"] = time.Now().Add(-time.Hour).Unix()
	wantInvalid(t, v, f.Sign(m), "expired ES256")
	m = claims()
	m["aud"] = "other"
	wantInvalid(t, v, f.Sign(m), "wrong audience ES256")
	m = claims()
	m["iss"] = "https://evil.example"
	wantInvalid(t, v, f.Sign(m), "wrong issuer ES256")
}

func TestVerifierJWKSRotation(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{Signing: fakegotrue.ES256})
	v := jwksVerifier(t, f, func(o *auth.VerifierOptions) { o.JWKSMinInterval = 50 * time.Millisecond })
	ctx := context.Background()
	old := f.Sign(f.Claims("u", "u@example.com", "s", time.Hour))
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}
	// The project rotates its key: a token with the new kid makes the
	// verifier fetch the set again.
	f.RotateKey(false)
	time.Sleep(60 * time.Millisecond)
	if _, err := v.Verify(ctx, f.Sign(f.Claims("u", "u@example.com", "s2", time.Hour))); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	if n := f.JWKSGets(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2", n)
	}
}

func TestVerifierJWKSUnreachable(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{Signing: fakegotrue.ES256})
	tok := f.Sign(f.Claims("u", "u@example.com", "s", time.Hour))
	v := jwksVerifier(t, f, nil)
	f.Close()
	wantInvalid(t, v, tok, "JWKS unreachable")
}

func TestNewVerifierNeedsAKeySource(t *testing.T) {
	if _, err := auth.NewVerifier(auth.VerifierOptions{Issuer: "i", Audience: "a"}); err == nil {
		t.Error("no secret and no JWKS accepted")
	}
	if _, err := auth.NewVerifier(auth.VerifierOptions{Secret: []byte("x"), Audience: "a"}); err == nil {
		t.Error("no issuer accepted")
	}
}
