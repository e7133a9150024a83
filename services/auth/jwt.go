package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken: an access token failed verification (signature,
// algorithm, issuer, audience, expiry...). The reason is wrapped for logs;
// callers only ever tell a client "unauthenticated".
var ErrInvalidToken = errors.New("invalid access token")

// TokenClaims are the parts of a Supabase access token the app uses.
type TokenClaims struct {
	jwt.RegisteredClaims
	Email string `json:"email"`
	// Role is GoTrue's database role ("authenticated"), not the app's.
	Role string `json:"role"`
	// SessionID names the GoTrue session the token belongs to.
	SessionID string `json:"session_id"`
}

// VerifierOptions configure access-token verification.
type VerifierOptions struct {
	// Secret verifies HS256 tokens; empty refuses HS256 altogether.
	Secret []byte
	// JWKSURL publishes ES256/RS256 keys; empty refuses asymmetric tokens.
	JWKSURL  string
	Issuer   string
	Audience string
	// Leeway tolerates clock skew on exp, nbf and iat (default 5s).
	Leeway time.Duration
	// HTTPClient fetches the JWKS (default: 10s timeout).
	HTTPClient *http.Client
	// JWKSMinInterval bounds how often a token with an unknown key id can
	// make the verifier fetch the JWKS again (default 30s), so a flood of
	// forged kids cannot turn into a flood of requests.
	JWKSMinInterval time.Duration
	// JWKSMaxAge is how long fetched keys are used before they are fetched
	// again, so a key removed from the set stops verifying (default 10m).
	JWKSMaxAge time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Verifier checks access tokens locally: HS256 with the shared secret, or
// ES256/RS256 with a key from the JWKS, never "none" and never HS256 keyed
// by anything but the secret. A verified token is remembered until it
// expires, so requests that repeat it cost a map lookup.
type Verifier struct {
	opts    VerifierOptions
	methods []string
	jwks    *jwksCache

	mu    sync.Mutex
	cache map[[32]byte]TokenClaims
}

// maxTokenLen bounds what is parsed at all; real access tokens are ~1 KB.
const maxTokenLen = 16 << 10

const maxVerifiedCache = 10_000

// NewVerifier returns a verifier; it needs at least one key source.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	if len(o.Secret) == 0 && o.JWKSURL == "" {
		return nil, errors.New("token verifier: neither a JWT secret nor a JWKS URL is configured")
	}
	if o.Issuer == "" || o.Audience == "" {
		return nil, errors.New("token verifier: issuer and audience are required")
	}
	if o.Leeway <= 0 {
		o.Leeway = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.JWKSMinInterval <= 0 {
		o.JWKSMinInterval = 30 * time.Second
	}
	if o.JWKSMaxAge <= 0 {
		o.JWKSMaxAge = 10 * time.Minute
	}
	v := &Verifier{opts: o, cache: map[[32]byte]TokenClaims{}}
	if len(o.Secret) > 0 {
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if o.JWKSURL != "" {
		v.methods = append(v.methods, jwt.SigningMethodES256.Alg(), jwt.SigningMethodRS256.Alg())
		v.jwks = newJWKSCache(o.JWKSURL, o.HTTPClient, o.JWKSMinInterval, o.JWKSMaxAge, o.Now)
	}
	return v, nil
}

// Verify checks token and returns its claims. Every failure wraps
// ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, token string) (TokenClaims, error) {
	if token == "" || len(token) > maxTokenLen {
		return TokenClaims{}, fmt.Errorf("%w: empty or oversized", ErrInvalidToken)
	}
	now := v.opts.Now()
	sum := sha256.Sum256([]byte(token))
	if c, ok := v.cached(sum, now); ok {
		return c, nil
	}
	var claims TokenClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods(v.methods),
		jwt.WithIssuer(v.opts.Issuer),
		jwt.WithAudience(v.opts.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.opts.Leeway),
		jwt.WithTimeFunc(v.opts.Now),
	)
	if _, err := parser.ParseWithClaims(token, &claims, v.keyFunc(ctx)); err != nil {
		return TokenClaims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if claims.Subject == "" {
		return TokenClaims{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	v.remember(sum, claims, now)
	return claims, nil
}

func (v *Verifier) cached(sum [32]byte, now time.Time) (TokenClaims, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.cache[sum]
	if !ok {
		return TokenClaims{}, false
	}
	if !now.Before(c.ExpiresAt.Add(v.opts.Leeway)) {
		delete(v.cache, sum)
		return TokenClaims{}, false
	}
	return c, true
}

func (v *Verifier) remember(sum [32]byte, c TokenClaims, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxVerifiedCache {
		for k, e := range v.cache {
			if !now.Before(e.ExpiresAt.Add(v.opts.Leeway)) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= maxVerifiedCache {
			v.cache = map[[32]byte]TokenClaims{}
		}
	}
	v.cache[sum] = c
}

// keyFunc picks the key by algorithm: the secret for HS256 only, a JWKS
// key of the matching type (and declared alg) for ES256/RS256.
func (v *Verifier) keyFunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		switch alg {
		case jwt.SigningMethodHS256.Alg():
			if len(v.opts.Secret) == 0 {
				return nil, errors.New("HS256 is not accepted without a JWT secret")
			}
			return v.opts.Secret, nil
		case jwt.SigningMethodES256.Alg(), jwt.SigningMethodRS256.Alg():
			if v.jwks == nil {
				return nil, fmt.Errorf("%s is not accepted without a JWKS", alg)
			}
			kid, _ := t.Header["kid"].(string)
			if kid == "" {
				return nil, errors.New("token names no key (kid)")
			}
			k, err := v.jwks.key(ctx, kid)
			if err != nil {
				return nil, err
			}
			if k.alg != "" && k.alg != alg {
				return nil, fmt.Errorf("key %q is for %s, token says %s", kid, k.alg, alg)
			}
			switch pub := k.pub.(type) {
			case *ecdsa.PublicKey:
				if alg == jwt.SigningMethodES256.Alg() && pub.Curve == elliptic.P256() {
					return pub, nil
				}
			case *rsa.PublicKey:
				if alg == jwt.SigningMethodRS256.Alg() {
					return pub, nil
				}
			}
			return nil, fmt.Errorf("key %q does not fit %s", kid, alg)
		}
		return nil, fmt.Errorf("algorithm %q is not accepted", alg)
	}
}
