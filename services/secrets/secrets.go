// Package secrets seals credentials (API keys, tokens) for storage at rest
// with AES-256-GCM. Every sealed value is bound to a context naming where
// it belongs (e.g. "user:42:anthropic"), so a value copied into another
// row, or another column, no longer opens.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// Errors callers match with errors.Is.
var (
	// ErrBadKey: the key is missing, of the wrong size or unreadable.
	ErrBadKey = errors.New("bad secrets key")
	// ErrMalformed: the sealed text is not something Seal produced.
	ErrMalformed = errors.New("malformed sealed secret")
	// ErrUnknownVersion: sealed by a format this build does not know.
	ErrUnknownVersion = errors.New("unknown sealed secret version")
	// ErrOpen: the key or the context is not the one it was sealed with,
	// or the value was altered. GCM cannot tell these apart, on purpose.
	ErrOpen = errors.New("cannot open sealed secret (wrong key or context, or altered)")
)

// v1 is "v1." followed by unpadded URL-safe base64 of nonce||ciphertext,
// so a sealed value survives URLs, env files and text columns unquoted.
const v1Prefix = "v1."

var b64 = base64.RawURLEncoding

// Box seals and opens secrets with one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New makes a Box from a KeySize-byte key (see ParseKey).
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: %d bytes, need %d", ErrBadKey, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return &Box{aead: aead}, nil
}

// additionalData binds the format version as well as the context, so a
// value cannot be replayed under another version's rules either. The NUL
// keeps "v1"+"x" and "v"+"1x" apart.
func additionalData(version, context string) []byte {
	return []byte("aicode-secret\x00" + version + "\x00" + context)
}

// Seal encrypts plaintext for the given context with a fresh random nonce.
// An empty context is refused: it would bind the value to nothing.
func (b *Box) Seal(plaintext []byte, context string) (string, error) {
	if context == "" {
		return "", errors.New("seal secret: empty context")
	}
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal secret: nonce: %w", err)
	}
	out := b.aead.Seal(nonce, nonce, plaintext, additionalData("v1", context))
	return v1Prefix + b64.EncodeToString(out), nil
}

// Open decrypts a value made by Seal with the same key and context.
func (b *Box) Open(sealed, context string) ([]byte, error) {
	if context == "" {
		return nil, errors.New("open secret: empty context")
	}
	version, body, ok := strings.Cut(sealed, ".")
	if !ok || version == "" {
		return nil, ErrMalformed
	}
	if version != "v1" {
		// Quote only the version: the body is ciphertext, but keep even
		// that out of logs.
		if len(version) > 16 || !isPrintable(version) {
			return nil, ErrUnknownVersion
		}
		return nil, fmt.Errorf("%w %q", ErrUnknownVersion, version)
	}
	raw, err := b64.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrMalformed)
	}
	ns := b.aead.NonceSize()
	if len(raw) < ns+b.aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	plain, err := b.aead.Open(nil, raw[:ns], raw[ns:], additionalData("v1", context))
	if err != nil {
		return nil, ErrOpen
	}
	if plain == nil {
		plain = []byte{}
	}
	return plain, nil
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// ParseKey reads a key as configured: 64 hex digits, or base64 (standard or
// URL alphabet, padded or not) of exactly KeySize bytes. Surrounding
// whitespace is ignored, since keys often come from files.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty; generate one with `openssl rand -hex 32`", ErrBadKey)
	}
	var key []byte
	if len(s) == 2*KeySize && isHex(s) {
		key, _ = hex.DecodeString(s)
	} else {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if k, err := enc.DecodeString(s); err == nil {
				key = k
				break
			}
		}
		if key == nil {
			return nil, fmt.Errorf("%w: neither %d hex digits nor base64; generate one with `openssl rand -hex 32`", ErrBadKey, 2*KeySize)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("%w: base64 of %d bytes, need %d", ErrBadKey, len(key), KeySize)
		}
	}
	// A key of one repeated byte is a placeholder someone forgot to
	// replace (all zeros, all 0xff), never a generated key.
	same := true
	for _, c := range key[1:] {
		if c != key[0] {
			same = false
			break
		}
	}
	if same {
		return nil, fmt.Errorf("%w: a placeholder (one byte repeated); generate a real one with `openssl rand -hex 32`", ErrBadKey)
	}
	return key, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// hintPrefixes are well-known key prefixes: they say which kind of key is
// set without saying anything about the key itself.
var hintPrefixes = []string{"sk-ant-", "sk-"}

// Hint describes a stored secret for display without revealing it: a
// known prefix and the last four characters (e.g. "sk-ant-…Wx9Q") when it
// is long enough (20+ characters) that four say little, else just "set";
// "" for no secret.
func Hint(secret string) string {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return ""
	}
	n := utf8.RuneCountInString(secret)
	if n < 20 {
		return "set"
	}
	prefix := ""
	for _, p := range hintPrefixes {
		if strings.HasPrefix(secret, p) {
			prefix = p
			break
		}
	}
	r := []rune(secret)
	return prefix + "…" + string(r[n-4:])
}
