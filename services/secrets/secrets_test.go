package secrets_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"aicode/services/secrets"
)

func testKey(seed byte) []byte {
	k := make([]byte, secrets.KeySize)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func newBox(t *testing.T, seed byte) *secrets.Box {
	t.Helper()
	b, err := secrets.New(testKey(seed))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	b := newBox(t, 1)
	for _, plain := range [][]byte{[]byte("sk-ant-api03-abcdefghijklmnop"), {}, bytes.Repeat([]byte{0, 0xff}, 5000)} {
		sealed, err := b.Seal(plain, "user:42:anthropic")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sealed, "v1.") || strings.ContainsAny(sealed, "+/= \n") {
			t.Fatalf("sealed form %q", sealed)
		}
		if len(plain) > 8 && strings.Contains(sealed, string(plain[:8])) {
			t.Fatal("plaintext visible in the sealed form")
		}
		got, err := b.Open(sealed, "user:42:anthropic")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) || got == nil {
			t.Fatalf("opened %q, want %q", got, plain)
		}
	}
	// Fresh nonces: the same secret never seals to the same text.
	a, _ := b.Seal([]byte("same"), "c")
	c, _ := b.Seal([]byte("same"), "c")
	if a == c {
		t.Fatal("two seals of one secret are equal")
	}
}

func TestOpenRefuses(t *testing.T) {
	b := newBox(t, 1)
	sealed, err := b.Seal([]byte("top secret value"), "user:42:anthropic")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimPrefix(sealed, "v1.")
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	flip := func(i int) string {
		r := bytes.Clone(raw)
		r[i] ^= 1
		return "v1." + base64.RawURLEncoding.EncodeToString(r)
	}

	cases := []struct {
		name, sealed, context string
		box                   *secrets.Box
		want                  error
	}{
		{"other row", sealed, "user:43:anthropic", b, secrets.ErrOpen},
		{"other field", sealed, "user:42:github", b, secrets.ErrOpen},
		{"wrong key", sealed, "user:42:anthropic", newBox(t, 2), secrets.ErrOpen},
		{"nonce altered", flip(0), "user:42:anthropic", b, secrets.ErrOpen},
		{"ciphertext altered", flip(14), "user:42:anthropic", b, secrets.ErrOpen},
		{"tag altered", flip(len(raw) - 1), "user:42:anthropic", b, secrets.ErrOpen},
		{"truncated", sealed[:len(sealed)-4], "user:42:anthropic", b, secrets.ErrOpen},
		{"too short", "v1." + base64.RawURLEncoding.EncodeToString(raw[:20]), "user:42:anthropic", b, secrets.ErrMalformed},
		{"not base64", "v1.***", "user:42:anthropic", b, secrets.ErrMalformed},
		{"padded base64", sealed + "==", "user:42:anthropic", b, secrets.ErrMalformed},
		{"no version", body, "user:42:anthropic", b, secrets.ErrMalformed},
		{"empty", "", "user:42:anthropic", b, secrets.ErrMalformed},
		{"empty version", "." + body, "user:42:anthropic", b, secrets.ErrMalformed},
		{"v2", "v2." + body, "user:42:anthropic", b, secrets.ErrUnknownVersion},
		{"V1", "V1." + body, "user:42:anthropic", b, secrets.ErrUnknownVersion},
		{"v0", "v0." + body, "user:42:anthropic", b, secrets.ErrUnknownVersion},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.box.Open(c.sealed, c.context)
			if !errors.Is(err, c.want) || got != nil {
				t.Fatalf("Open: %q, %v; want %v", got, err, c.want)
			}
			if strings.Contains(err.Error(), body[:10]) {
				t.Fatalf("error quotes the ciphertext: %v", err)
			}
		})
	}
}

func TestEmptyContextRefused(t *testing.T) {
	b := newBox(t, 1)
	if _, err := b.Seal([]byte("x"), ""); err == nil {
		t.Fatal("sealed with an empty context")
	}
	sealed, _ := b.Seal([]byte("x"), "c")
	if _, err := b.Open(sealed, ""); err == nil {
		t.Fatal("opened with an empty context")
	}
}

func TestNewKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := secrets.New(make([]byte, n)); !errors.Is(err, secrets.ErrBadKey) {
			t.Errorf("New with %d bytes: %v", n, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	key := testKey(7)
	good := map[string]string{
		"hex lower":         hex.EncodeToString(key),
		"hex upper":         strings.ToUpper(hex.EncodeToString(key)),
		"hex with newline":  hex.EncodeToString(key) + "\n",
		"std padded":        base64.StdEncoding.EncodeToString(key),
		"std unpadded":      base64.RawStdEncoding.EncodeToString(key),
		"url padded":        base64.URLEncoding.EncodeToString(key),
		"url unpadded":      base64.RawURLEncoding.EncodeToString(key),
		"spaces around b64": "  " + base64.StdEncoding.EncodeToString(key) + " \t",
	}
	// A key whose base64 uses the characters the two alphabets disagree on.
	urlish := bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:32]
	good["url alphabet"] = base64.RawURLEncoding.EncodeToString(urlish)
	good["std alphabet"] = base64.StdEncoding.EncodeToString(urlish)
	for name, s := range good {
		got, err := secrets.ParseKey(s)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := key
		if strings.Contains(name, "alphabet") {
			want = urlish
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %x", name, got)
		}
	}

	bad := map[string]string{
		"empty":            "",
		"blank":            " \n",
		"short hex":        hex.EncodeToString(key[:16]),
		"long hex":         hex.EncodeToString(append(key, 1)),
		"63 hex digits":    hex.EncodeToString(key)[:63],
		"hex with junk":    hex.EncodeToString(key)[:62] + "zz",
		"16-byte base64":   base64.StdEncoding.EncodeToString(key[:16]),
		"48-byte base64":   base64.StdEncoding.EncodeToString(append(key, key[:16]...)),
		"not a key":        "my secret password",
		"all zeros hex":    strings.Repeat("0", 64),
		"all zeros base64": base64.StdEncoding.EncodeToString(make([]byte, 32)),
	}
	for name, s := range bad {
		k, err := secrets.ParseKey(s)
		if !errors.Is(err, secrets.ErrBadKey) || k != nil {
			t.Errorf("%s: key %x, err %v; want ErrBadKey", name, k, err)
			continue
		}
		if len(s) > 20 && strings.Contains(err.Error(), s[:20]) {
			t.Errorf("%s: error repeats the key: %v", name, err)
		}
	}
	// A parsed key works.
	k, err := secrets.ParseKey(hex.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.New(k); err != nil {
		t.Fatal(err)
	}
}

func TestHint(t *testing.T) {
	cases := map[string]string{
		"":                                      "",
		"short":                                 "set",
		"sk-ant-123456789012":                   "set", // 19 characters
		"sk-ant-api03-AbCdEfGhIjKlMnOpWx9Q":     "sk-ant-…Wx9Q",
		"sk-ant-oat01-zzzzzzzzzzzzzzzzzz1234":   "sk-ant-…1234",
		"sk-proj-abcdefghijklmnop5678":          "sk-…5678",
		"ghp_abcdefghijklmnopqrstuvwxyz":        "…wxyz",
		"  sk-ant-api03-AbCdEfGhIjKlMnOpWx9Q\n": "sk-ant-…Wx9Q",
		"ääääääääääääääääääääöüß€": "…öüß€",
	}
	for in, want := range cases {
		if got := secrets.Hint(in); got != want {
			t.Errorf("Hint(%q) = %q, want %q", in, got, want)
		}
	}
}
