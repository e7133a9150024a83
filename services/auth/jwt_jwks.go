package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// errUnknownKey: the token's kid is not in the (recently fetched) JWKS.
var errUnknownKey = errors.New("unknown signing key")

type publicKey struct {
	pub crypto.PublicKey
	alg string // as declared by the JWK; may be empty
}

// jwksCache holds the project's public signing keys. Keys are fetched on
// first need, again when a token names a key not in the set (at most once
// per minInterval) and when the set is older than maxAge.
type jwksCache struct {
	url         string
	client      *http.Client
	minInterval time.Duration
	maxAge      time.Duration
	now         func() time.Time

	mu          sync.Mutex
	keys        map[string]publicKey
	fetchedAt   time.Time
	lastAttempt time.Time
	fetches     singleflight.Group
}

func newJWKSCache(url string, c *http.Client, minInterval, maxAge time.Duration, now func() time.Time) *jwksCache {
	return &jwksCache{url: url, client: c, minInterval: minInterval, maxAge: maxAge, now: now}
}

func (c *jwksCache) key(ctx context.Context, kid string) (publicKey, error) {
	c.mu.Lock()
	k, ok := c.keys[kid]
	now := c.now()
	stale := c.keys == nil || now.Sub(c.fetchedAt) >= c.maxAge
	mayFetch := c.lastAttempt.IsZero() || now.Sub(c.lastAttempt) >= c.minInterval
	c.mu.Unlock()
	if ok && !stale {
		return k, nil
	}
	if !mayFetch {
		if ok {
			return k, nil
		}
		return publicKey{}, fmt.Errorf("%w %q", errUnknownKey, kid)
	}
	// One fetch for every concurrent caller; it must not fail because the
	// first of them went away.
	fctx := context.WithoutCancel(ctx)
	_, err, _ := c.fetches.Do("jwks", func() (any, error) { return nil, c.fetch(fctx) })
	c.mu.Lock()
	k, found := c.keys[kid]
	c.mu.Unlock()
	if found {
		return k, nil
	}
	if err != nil {
		return publicKey{}, fmt.Errorf("fetch signing keys: %w", err)
	}
	return publicKey{}, fmt.Errorf("%w %q", errUnknownKey, kid)
}

// fetch replaces the key set; on failure the old keys stay in use.
func (c *jwksCache) fetch(ctx context.Context) error {
	c.mu.Lock()
	c.lastAttempt = c.now()
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("JWKS answered %s", resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("decode JWKS: %w", err)
	}
	keys := map[string]publicKey{}
	for _, raw := range set.Keys {
		kid, k, err := parseJWK(raw)
		if err != nil || kid == "" {
			// One odd key (another type, another use) must not hide the rest.
			continue
		}
		keys[kid] = k
	}
	c.mu.Lock()
	c.keys, c.fetchedAt = keys, c.now()
	c.mu.Unlock()
	return nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// parseJWK reads a public EC P-256 or RSA (2048 bits or more) signing key.
// Symmetric ("oct") keys are refused: a secret never comes from a URL.
func parseJWK(raw []byte) (string, publicKey, error) {
	var j jwk
	if err := json.Unmarshal(raw, &j); err != nil {
		return "", publicKey{}, err
	}
	if j.Use != "" && j.Use != "sig" {
		return "", publicKey{}, fmt.Errorf("key %q is not for signatures", j.Kid)
	}
	b64 := base64.RawURLEncoding
	switch j.Kty {
	case "EC":
		if j.Crv != "P-256" {
			return "", publicKey{}, fmt.Errorf("curve %q not supported", j.Crv)
		}
		x, errX := b64.DecodeString(j.X)
		y, errY := b64.DecodeString(j.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return "", publicKey{}, errors.New("bad EC coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return "", publicKey{}, err
		}
		return j.Kid, publicKey{pub: pub, alg: j.Alg}, nil
	case "RSA":
		n, errN := b64.DecodeString(j.N)
		e, errE := b64.DecodeString(j.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return "", publicKey{}, errors.New("bad RSA parameters")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 || pub.E < 3 {
			return "", publicKey{}, errors.New("RSA key too weak")
		}
		return j.Kid, publicKey{pub: pub, alg: j.Alg}, nil
	}
	return "", publicKey{}, fmt.Errorf("key type %q not supported", j.Kty)
}
