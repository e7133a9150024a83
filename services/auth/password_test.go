package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatalf("HashPassword: %v", err)
	}
	return h
}

func TestHashPasswordFormat(t *testing.T) {
	h := mustHash(t, "correct horse battery staple")
	const prefix = "$argon2id$v=19$m=19456,t=2,p=1$"
	if !strings.HasPrefix(h, prefix) {
		t.Fatalf("hash %q does not start with %q", h, prefix)
	}
	parts := strings.Split(h, "$")
	if len(parts) != 6 {
		t.Fatalf("hash %q has %d $-separated parts; want 6", h, len(parts))
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) != 16 {
		t.Fatalf("salt %q: %d bytes, %v; want 16 bytes of unpadded base64", parts[4], len(salt), err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) != 32 {
		t.Fatalf("key %q: %d bytes, %v; want 32 bytes of unpadded base64", parts[5], len(key), err)
	}
	if strings.Contains(h, "correct horse") {
		t.Fatal("the hash contains the password")
	}
}

func TestCheckPasswordRoundTrip(t *testing.T) {
	const pw = "correct horse battery staple"
	h := mustHash(t, pw)
	tests := []struct {
		name string
		try  string
		want bool
	}{
		{"right password", pw, true},
		{"wrong password", "correct horse battery stapler", false},
		{"different case", strings.ToUpper(pw), false},
		{"trailing space", pw + " ", false},
		{"prefix", pw[:10], false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // argon2 is slow under -race
			ok, err := CheckPassword(h, tt.try)
			if err != nil {
				t.Fatalf("CheckPassword: %v", err)
			}
			if ok != tt.want {
				t.Fatalf("CheckPassword(hash, %q) = %v; want %v", tt.try, ok, tt.want)
			}
		})
	}
}

func TestCheckPasswordUnicode(t *testing.T) {
	const pw = "pässwörd-日本語-🔑"
	h := mustHash(t, pw)
	if ok, err := CheckPassword(h, pw); !ok || err != nil {
		t.Fatalf("CheckPassword(own unicode password) = %v, %v; want true, nil", ok, err)
	}
	// The NFD spelling is a different byte string and must not match.
	if ok, err := CheckPassword(h, "pa\u0308sswörd-日本語-🔑"); ok || err != nil {
		t.Fatalf("CheckPassword(decomposed spelling) = %v, %v; want false, nil", ok, err)
	}
}

func TestHashPasswordSalted(t *testing.T) {
	const pw = "same password twice"
	a, b := mustHash(t, pw), mustHash(t, pw)
	if a == b {
		t.Fatalf("two hashes of the same password are identical: %q", a)
	}
	saltA, saltB := strings.Split(a, "$")[4], strings.Split(b, "$")[4]
	if saltA == saltB {
		t.Fatalf("two hashes share the salt %q", saltA)
	}
	for _, h := range []string{a, b} {
		if ok, err := CheckPassword(h, pw); !ok || err != nil {
			t.Fatalf("CheckPassword(%q) = %v, %v; want true, nil", h, ok, err)
		}
	}
}

func TestCheckPasswordMalformed(t *testing.T) {
	good := mustHash(t, "a valid password")
	p := strings.Split(good, "$") // "", argon2id, v=19, m=..,t=..,p=.., salt, key
	join := func(parts ...string) string { return strings.Join(parts, "$") }
	tests := []struct {
		name string
		hash string
	}{
		{"empty", ""},
		{"plain text", "a valid password"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"too few parts", join(p[0], p[1], p[2], p[3], p[4])},
		{"too many parts", good + "$extra"},
		{"trailing dollar", good + "$"},
		{"no leading dollar", strings.TrimPrefix(good, "$")},
		{"argon2i", join(p[0], "argon2i", p[2], p[3], p[4], p[5])},
		{"argon2d", join(p[0], "argon2d", p[2], p[3], p[4], p[5])},
		{"upper-case algorithm", join(p[0], "ARGON2ID", p[2], p[3], p[4], p[5])},
		{"old version", join(p[0], p[1], "v=16", p[3], p[4], p[5])},
		{"future version", join(p[0], p[1], "v=20", p[3], p[4], p[5])},
		{"version not a number", join(p[0], p[1], "v=x", p[3], p[4], p[5])},
		{"version missing", join(p[0], p[1], "", p[3], p[4], p[5])},
		{"params missing", join(p[0], p[1], p[2], "", p[4], p[5])},
		{"params not numbers", join(p[0], p[1], p[2], "m=a,t=b,p=c", p[4], p[5])},
		{"params in another order", join(p[0], p[1], p[2], "t=2,m=19456,p=1", p[4], p[5])},
		{"params incomplete", join(p[0], p[1], p[2], "m=19456,t=2", p[4], p[5])},
		{"negative memory", join(p[0], p[1], p[2], "m=-1,t=2,p=1", p[4], p[5])},
		{"parallelism overflows a byte", join(p[0], p[1], p[2], "m=19456,t=2,p=300", p[4], p[5])},
		{"salt not base64", join(p[0], p[1], p[2], p[3], "!!!!", p[5])},
		{"salt padded base64", join(p[0], p[1], p[2], p[3], p[4]+"==", p[5])},
		{"key not base64", join(p[0], p[1], p[2], p[3], p[4], "####")},
		{"key empty", join(p[0], p[1], p[2], p[3], p[4], "")},
		{"key padded base64", join(p[0], p[1], p[2], p[3], p[4], p[5]+"=")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := CheckPassword(tt.hash, "a valid password")
			if ok {
				t.Fatalf("CheckPassword(%q) accepted the password", tt.hash)
			}
			if !errors.Is(err, errMalformedHash) {
				t.Fatalf("CheckPassword(%q) error = %v; want errMalformedHash", tt.hash, err)
			}
		})
	}
}

// TestCheckPasswordRefusesAbsurdCostParams: a stored hash whose cost
// parameters are zero (argon2 would panic) or far beyond what HashPassword
// writes is reported as malformed instead of crashing or exhausting memory.
func TestCheckPasswordRefusesAbsurdCostParams(t *testing.T) {
	good := mustHash(t, "a valid password")
	p := strings.Split(good, "$")
	for _, params := range []string{"m=19456,t=0,p=1", "m=19456,t=2,p=0"} {
		t.Run(params, func(t *testing.T) {
			hash := strings.Join([]string{p[0], p[1], p[2], params, p[4], p[5]}, "$")
			ok, err := func() (ok bool, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				return CheckPassword(hash, "a valid password")
			}()
			if ok || !errors.Is(err, errMalformedHash) {
				t.Fatalf("CheckPassword(%q) = %v, %v; want false, errMalformedHash", hash, ok, err)
			}
		})
	}
}

func TestValidatePassword(t *testing.T) {
	tests := []struct {
		name    string
		pw      string
		wantErr string // substring; empty means valid
	}{
		{"empty", "", "at least 10 characters"},
		{"9 characters", "123456789", "at least 10 characters"},
		{"10 characters", "1234567890", ""},
		{"11 characters", "12345678901", ""},
		{"9 two-byte runes (18 bytes)", strings.Repeat("é", 9), "at least 10 characters"},
		{"10 two-byte runes", strings.Repeat("é", 10), ""},
		{"9 four-byte runes (36 bytes)", strings.Repeat("🔑", 9), "at least 10 characters"},
		{"10 four-byte runes", strings.Repeat("🔑", 10), ""},
		{"10 three-byte runes", strings.Repeat("日", 10), ""},
		{"spaces count", "          ", ""},
		{"256 bytes", strings.Repeat("a", 256), ""},
		{"257 bytes", strings.Repeat("a", 257), "at most 256 bytes"},
		{"128 two-byte runes (256 bytes)", strings.Repeat("é", 128), ""},
		{"129 two-byte runes (258 bytes)", strings.Repeat("é", 129), "at most 256 bytes"},
		{"65 four-byte runes (260 bytes)", strings.Repeat("🔑", 65), "at most 256 bytes"},
		{"very long", strings.Repeat("a", 1<<16), "at most 256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePassword(tt.pw)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidatePassword(%d bytes) = %v; want nil", len(tt.pw), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidatePassword(%d bytes) = %v; want an error containing %q", len(tt.pw), err, tt.wantErr)
			}
		})
	}
}
